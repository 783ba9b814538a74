import type { Envelope } from "../envelope/envelope.js";
import type { PendingResponse, Requester } from "../pending/pending-list.js";

// Serials meet across worker processes in an owner's UserChannel: each process starts its count at a random point.
let serials = Math.floor(Math.random() * 2 ** 40);

/**
 * One client connection as the core sees it: an authenticated full address
 * and a way to hand it envelopes. Protocols subclass it; the core never looks
 * at a socket or a codec.
 */
export abstract class Session implements Requester {
  abstract readonly protocol: string;
  /** Distinguishes two sessions that held the same address one after the other. */
  readonly serial = ++serials;
  address = "";
  bare = "";
  resource = "";
  /** Receives messages sent to the bare address (XMPP: after initial presence). */
  available = false;
  priority = 0;
  /** The protocol's last presence payload, answered to probes. */
  presence: unknown = null;
  bound = false;
  closed = false;

  // Requester: this session's own requests still awaiting an answer.
  outstanding = 0;
  firstPending: PendingResponse | null = null;

  /** Requests delivered to this session and not answered yet: proxy id → deadline. */
  readonly inbound = new Map<string, number>();

  /** Hands an envelope to the client in this session's protocol; must not block or await. */
  abstract deliver(env: Envelope): void;

  /** Another session bound the same address: this one must go (XMPP <conflict/>, relay err conflict). */
  abstract replaced(): void;

  trackInbound(proxyId: string, deadline: number, now: number, cap: number): void {
    const inbound = this.inbound;
    if (inbound.size >= cap) {
      // Oldest first; an entry dropped here is still failed by the requester's own timeout.
      for (const [id, d] of inbound) {
        if (inbound.size < cap && d > now) break;
        inbound.delete(id);
      }
    }
    inbound.set(proxyId, deadline);
  }
}
