import type { Envelope } from "../envelope/envelope.js";
import type { PendingResponse, Requester } from "../pending/pending-list.js";
import { InboundTable } from "./inbound-table.js";
import { RecentMessages } from "./recent-messages.js";

// Serials meet across worker processes in an owner's UserChannel: each process starts its count at a random point.
let serials = Math.floor(Math.random() * 2 ** 40);

/** A request delivered to this session and not answered yet. */
export interface InboundRequest {
  /** Where the answer goes: the ref of the requester's PendingResponse (it names the requester's worker). */
  ref: string;
  deadline: number;
  /** Its owner chose this session among a pool (Flag.Pool): the owner is told when it is settled. */
  pool: boolean;
}

/**
 * One client connection as the core sees it: an authenticated full address
 * and a way to hand it envelopes. Protocols subclass it; the core never looks
 * at a socket or a codec.
 */
export abstract class Session implements Requester {
  abstract readonly protocol: string;
  /**
   * How this protocol's clients name the request they answer. False: by the
   * proxy ref shown to them in its place (the relay, RELAY-PROTOCOL.md). True:
   * by the requester's own id, which passes through unchanged (XMPP, whose
   * clients correlate by the id they wrote); the answer is then matched by
   * (requester, id), the recipient being this session.
   */
  abstract readonly idPassThrough: boolean;
  /**
   * Whether a request to the bare address may come to this session as one of a
   * pool: the owner gives it to the user's pooled session with the fewest
   * requests in flight (the relay's gateways). False keeps the priority rule
   * (XMPP, RFC 6121 §8.5.2).
   */
  readonly pooled: boolean = false;
  /** Distinguishes two sessions that held the same address one after the other; kept when a session moves to another worker. */
  serial = ++serials;
  /** The worker this session moved to (Handovers): what still reaches it here is sent on. */
  movedTo: string | null = null;
  address = "";
  bare = "";
  resource = "";
  /** Receives messages sent to the bare address (XMPP: after initial presence). */
  available = false;
  priority = 0;
  /** The protocol's last presence payload, answered to probes. */
  presence: unknown = null;
  /** Takes copies of what the user's other sessions send and receive (XMPP: XEP-0280 carbons); told to the owner with presence. */
  wantsCopies = false;
  /** Set by the owner: another session of this user wants copies, so what this one sends or receives is copied (Flag.Copies). */
  peersWantCopies = false;
  /**
   * The client (one installation) this session belongs to, when its protocol knows one that several of the
   * user's sessions may share under different resources: clientPart(resource), or "" (XMPP: a XEP-0386 Bind2
   * binding with a XEP-0388 user-agent id). Binding it ends the user's earlier sessions of that client.
   */
  client = "";
  /** The address of the session that replaced this one, when it differs from this one's (a client's binding under another resource); else "". */
  successor = "";
  bound = false;
  closed = false;
  /** When its connection came to this worker, ms since the epoch (`switchboard sessions`). */
  readonly since = Date.now();

  /**
   * The last messages delivered to it by (sender, id), where its protocol has clients that send again after a
   * resumption (XMPP): a message marked Flag.Resent that it had already is dropped (ProxyDaemon). Null: kept none.
   */
  recent: RecentMessages | null = null;

  /** Its protocol's clients may send a message again after resuming (Flag.Resent): the core keeps `recent` for it. */
  get dropsResent(): boolean {
    return false;
  }

  /** `recent`, made at its first message. */
  recentMessages(): RecentMessages {
    return (this.recent ??= new RecentMessages());
  }

  /** Its client may resume it after a drop (XEP-0198); protocols that can say so override these two. */
  get resumable(): boolean {
    return false;
  }

  /** Its connection is gone and it waits to be resumed. */
  get suspended(): boolean {
    return false;
  }

  // Requester: this session's own requests still awaiting an answer.
  outstanding = 0;
  firstPending: PendingResponse | null = null;

  /** Made at first use: a session that is never asked anything (most) keeps no empty table. */
  private inboundTable: InboundTable<InboundRequest> | null = null;

  /** Requests delivered to this session and not answered yet, by the key its answer will carry (requestKey). */
  get inbound(): InboundTable<InboundRequest> {
    return (this.inboundTable ??= new InboundTable());
  }

  /**
   * What this session delivers it keeps until its client acknowledges it (XMPP
   * with XEP-0198 on): a message with a receipt is then settled when the
   * protocol calls Core.confirm, not when deliver returns.
   */
  get confirmsLater(): boolean {
    return false;
  }

  /**
   * With confirmsLater: names this session to the workers holding what it took,
   * so that its client, if the session dies with its worker, can say what it
   * received (Core.receivedUpTo); and the place of the last stanza delivered in
   * the session's count, which that client's count is compared with. "": none.
   */
  keepKey = "";
  get keptCount(): number {
    return 0;
  }

  /**
   * Hands an envelope to the client in this session's protocol; must not block
   * or await. False when the protocol cannot express it (a request it has no
   * form for): the core then fails that request at once.
   */
  abstract deliver(env: Envelope): boolean;

  /**
   * Where this session's output not yet sent ends now (Conn.heldMark), so that a delivery can be taken back
   * out before it leaves (cutOutput): custody's confirmations then ride the bus batch that the output waits
   * for (docs/architecture.md, "Riding confirmations"). -1: not known; the delivery's confirmation goes at once.
   */
  outputMark(): number {
    return -1;
  }

  /** Takes the output written between two outputMark places back before it is sent. False: it cannot. */
  cutOutput(_from: number, _to: number): boolean {
    return false;
  }

  /** Another session bound the same address: this one must go (XMPP <conflict/>, relay err conflict). */
  abstract replaced(): void;

  /** The server stops: a session without a connection (XEP-0198, waiting to be resumed) ends now. */
  endIfSuspended(): void {}

  /**
   * Its owner stored messages for its user while this session, online, was not bound there (cut off, or
   * slow to bind again after a ring change): a protocol with offline storage takes them now.
   */
  storedWhileAway(): void {}

  /**
   * What this session's client sent since its count last went to its resume record's keeper caused
   * bus messages composed before this worker was stopped past the others' patience and published only
   * after it (docs/architecture.md, "Back from a stop"): they are dropped where they arrive, and the client,
   * which may have resumed elsewhere from the keeper's count, sends them again. The session counts
   * `count` again and drops its connection, so that a resumption here asks for them too. False: the
   * protocol cannot (its messages then travel again from custody as any dropped held message does).
   */
  stalledBack(_count: number): boolean {
    return false;
  }

  /** The key under which a request delivered to this session waits for its answer. */
  requestKey(req: Envelope): string {
    return this.idPassThrough ? `${req.from}\u0000${req.id}` : req.ref;
  }

  /** The key of the request an answer from this session is for: see requestKey. */
  answerKey(answer: Envelope): string {
    return this.idPassThrough ? `${answer.to}\u0000${answer.responseFor}` : answer.responseFor;
  }

  trackInbound(key: string, ref: string, deadline: number, now: number, cap: number, pool = false): void {
    const inbound = this.inbound;
    if (inbound.size >= cap) {
      // Oldest first; an entry dropped here is still failed by the requester's own timeout.
      for (let r = inbound.oldest(); r !== undefined; r = inbound.oldest()) {
        if (inbound.size < cap && r.deadline > now) break;
        inbound.shift();
      }
    }
    inbound.set(key, { ref, deadline, pool });
  }
}
