import { randomBytes } from "node:crypto";
import type { StreamManagementConfig } from "../../config/config.js";
import { CloseReason } from "../../transport/conn.js";
import { StreamCondition, StreamError } from "../errors.js";
import { Ev, type Hooks } from "../hooks.js";
import { NS } from "../ns.js";
import { Phase, type AckTracker, type ClientSession } from "../client-session.js";
import { UnackedQueue } from "./unacked-queue.js";

/** Counters are modulo 2^32 (XEP-0198 §4). */
const MOD = 0x1_0000_0000;

/**
 * XEP-0198 stream management, acknowledgements only (no resumption yet):
 * offered with bind after SASL (as Prosody's mod_smacks does; @xmpp/client binds
 * first and then enables, from the same features), counted both ways once the
 * client sent <enable/>. The server asks for acks by the configured policy and
 * cuts a client whose unacked output passes `maxUnacked` as a slow consumer.
 */
export function streamManagementModule(hooks: Hooks, cfg: StreamManagementConfig): void {
  hooks.on(Ev.StreamFeatures, ({ session, features }) => {
    if (session.phase === Phase.Authenticated) features.c("sm", { xmlns: NS.SM });
  });

  // §3: before binding (resumption is not offered yet: every previd is unknown, §5 item-not-found).
  hooks.on(Ev.Negotiation, ({ session, stanza }) => {
    if (session.phase !== Phase.Authenticated || stanza.attrs.xmlns !== NS.SM) return false;
    if (stanza.name === "enable") session.sendNonza(failed("unexpected-request"));
    else if (stanza.name === "resume") session.sendNonza(failed("item-not-found"));
    else return false;
    return true;
  });

  hooks.on(Ev.Nonza, ({ session, stanza }) => {
    if (stanza.attrs.xmlns !== NS.SM) return false;
    const acks = session.acks instanceof Acks ? session.acks : null;
    switch (stanza.name) {
      case "enable":
        // §3: enabling twice is an unexpected request (Prosody answers alike).
        if (acks !== null) session.sendNonza(failed("unexpected-request"));
        else {
          session.acks = new Acks(session, cfg);
          // Resumption is not offered yet: no resume='true' and no max, whatever the client asked for.
          session.sendNonza(`<enabled xmlns='${NS.SM}' id='${randomBytes(18).toString("base64url")}'/>`);
        }
        return true;
      case "resume":
        // §5: resuming is for a new stream, before binding.
        session.sendNonza(failed("unexpected-request"));
        return true;
      case "r":
        if (acks === null) return false;
        session.sendNonza(`<a xmlns='${NS.SM}' h='${acks.handled}'/>`);
        return true;
      case "a":
        if (acks === null) return false;
        acks.acknowledged(parseH(stanza.attrs.h));
        return true;
      default:
        return false;
    }
  });

  hooks.on(Ev.SessionClosing, ({ session }) => {
    if (session.acks instanceof Acks) session.acks.stop();
  });
}

function failed(condition: string): string {
  return `<failed xmlns='${NS.SM}'><${condition} xmlns='${NS.STANZA_ERRORS}'/></failed>`;
}

function parseH(h: string | undefined): number {
  const n = h !== undefined && /^[0-9]{1,10}$/.test(h) ? Number(h) : MOD;
  if (n >= MOD) throw new StreamError(StreamCondition.BadFormat, "h must be an integer in [0, 2^32)");
  return n;
}

/** The counters, the unacked queue and the ack-request policy of one stream. */
export class Acks implements AckTracker {
  /** Stanzas handled from the client (§4 h), modulo 2^32. */
  handled = 0;
  /** The last h the client acknowledged: the sent count at the queue's head. */
  private acked = 0;
  readonly queue = new UnackedQueue();
  /** Stanzas sent since the last <r/>. */
  private sinceRequest = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly s: ClientSession,
    private readonly cfg: StreamManagementConfig,
  ) {}

  /** Stanzas sent since <enabled/>, modulo 2^32. */
  get sentCount(): number {
    return (this.acked + this.queue.length) % MOD;
  }

  received(): void {
    this.handled = (this.handled + 1) % MOD;
  }

  sent(wire: string): void {
    this.queue.push(wire);
    if (this.queue.length > this.cfg.maxUnacked) {
      // Not reading, or not acknowledging what it reads: like a full socket buffer (the listener counts it).
      this.stop();
      this.s.destroy(CloseReason.SlowConsumer);
      return;
    }
    const every = this.cfg.ackEveryStanzas;
    if (++this.sinceRequest >= every && every > 0) this.request();
    else if (this.timer === null && this.cfg.ackEveryMs > 0) {
      this.timer = setTimeout(() => {
        this.timer = null;
        if (this.sinceRequest > 0) this.request();
      }, this.cfg.ackEveryMs);
      this.timer.unref();
    }
  }

  /** An <a h/>: drops what it acknowledges; §6: more than was sent ends the stream. */
  acknowledged(h: number): void {
    const n = (h - this.acked + MOD) % MOD;
    if (n > this.queue.length) {
      const e = new StreamError(StreamCondition.UndefinedCondition, "acknowledged more stanzas than were sent");
      e.appCondition = `<handled-count-too-high xmlns='${NS.SM}' h='${h}' send-count='${this.sentCount}'/>`;
      throw e;
    }
    this.queue.drop(n);
    this.acked = h;
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private request(): void {
    this.sinceRequest = 0;
    this.stop();
    this.s.sendNonza(`<r xmlns='${NS.SM}'/>`);
  }
}
