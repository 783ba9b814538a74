import { randomBytes } from "node:crypto";
import { parse, type Element } from "ltx";
import type { StreamManagementConfig } from "../../config/config.js";
import { SmCounts } from "../../metrics/metrics.js";
import type { XmppContext } from "../context.js";
import { storeUnacked } from "./offline.js";
import { CloseReason } from "../../transport/conn.js";
import { StreamCondition, StreamError } from "../errors.js";
import { Ev, type Hooks } from "../hooks.js";
import { NS } from "../ns.js";
import { Phase, type AckTracker, type ClientSession } from "../client-session.js";
import { UnackedQueue } from "./unacked-queue.js";

/** Counters are modulo 2^32 (XEP-0198 §4). */
const MOD = 0x1_0000_0000;

/**
 * XEP-0198 stream management: offered with bind after SASL (as Prosody's
 * mod_smacks does; @xmpp/client binds first and then enables, from the same
 * features), counted both ways once the client sent <enable/>. The server asks
 * for acks by the configured policy and cuts a client whose unacked output
 * passes `maxUnacked` as a slow consumer. With resume='true' a dropped
 * connection suspends the session (XmppSession.suspend) for resumeTimeoutMs;
 * a <resume/> on a new connection of the same account, on this worker, takes
 * it over. Sessions that end with stanzas unacknowledged have their chat and
 * normal messages stored offline.
 */
export function streamManagementModule(hooks: Hooks, x: XmppContext): void {
  const cfg = x.config.xmpp.sm;
  /** Resumable sessions of this worker by their id (unguessable: 144 random bits). */
  const resumable = new Map<string, ClientSession>();

  hooks.on(Ev.StreamFeatures, ({ session, features }) => {
    if (session.phase === Phase.Authenticated) features.c("sm", { xmlns: NS.SM });
  });

  // §3: enabling needs a bound resource; §5: resuming is what a client does instead of binding.
  hooks.on(Ev.Negotiation, ({ session, stanza }) => {
    if (session.phase !== Phase.Authenticated || stanza.attrs.xmlns !== NS.SM) return false;
    if (stanza.name === "enable") session.sendNonza(failed("unexpected-request"));
    else if (stanza.name === "resume") resume(session, stanza);
    else return false;
    return true;
  });

  function resume(session: ClientSession, stanza: Element): void {
    const previd = stanza.attrs.previd;
    const old = previd === undefined ? undefined : resumable.get(previd);
    // §5: unknown, expired, or another account's id (ids are bound to the account): all look the same.
    if (old === undefined || !(old.acks instanceof Acks) || old.user !== session.user || old.phase !== Phase.Bound) return session.sendNonza(failed("item-not-found"));
    // Only a session waiting for its client: a second resume of the same id, or one while the stream is still up, is refused.
    if (!old.suspended) return session.sendNonza(failed("unexpected-request"));
    const acks = old.acks;
    const h = stanza.attrs.h !== undefined && /^[0-9]{1,10}$/.test(stanza.attrs.h) ? Number(stanza.attrs.h) : -1;
    if (h < 0 || h >= MOD) return session.sendNonza(failed("bad-request"));
    if (!acks.fits(h)) {
      // §6's handled-count-too-high, as a failure of this resume: the suspended session is left as it was.
      return session.sendNonza(`<failed xmlns='${NS.SM}' h='${acks.handled}'><unexpected-request xmlns='${NS.STANZA_ERRORS}'/><handled-count-too-high xmlns='${NS.SM}' h='${h}' send-count='${acks.sentCount}'/></failed>`);
    }
    acks.acknowledged(h);
    old.takeOver(session);
    old.sendNonza(`<resumed xmlns='${NS.SM}' h='${acks.handled}' previd='${previd}'/>`);
    // §5: what the client had not acknowledged, again, in order (still unacknowledged: still queued).
    for (const wire of acks.queue.pending()) old.sendNonza(wire);
    acks.resumed();
    if (x.debug) x.log.debug("xmpp session resumed", { address: old.address, resent: acks.queue.length });
  }

  hooks.on(Ev.Nonza, ({ session, stanza }) => {
    if (stanza.attrs.xmlns !== NS.SM) return false;
    const acks = session.acks instanceof Acks ? session.acks : null;
    switch (stanza.name) {
      case "enable":
        // §3: enabling twice is an unexpected request (Prosody answers alike).
        if (acks !== null) session.sendNonza(failed("unexpected-request"));
        else {
          const id = randomBytes(18).toString("base64url");
          const resume = (stanza.attrs.resume === "true" || stanza.attrs.resume === "1") && cfg.resumeTimeoutMs > 0;
          session.acks = new Acks(session, cfg, resume ? id : "", x.metrics.sm);
          if (resume) resumable.set(id, session);
          // §5: max in seconds.
          const offer = resume ? ` resume='true' max='${Math.floor(cfg.resumeTimeoutMs / 1000)}'` : "";
          session.sendNonza(`<enabled xmlns='${NS.SM}' id='${id}'${offer}/>`);
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

  // The session ends for good (clean close, error, window passed, replaced): what the client never acknowledged is not lost.
  hooks.on(Ev.SessionClosing, ({ session }) => {
    const acks = session.acks;
    if (!(acks instanceof Acks)) return;
    acks.stop();
    if (acks.id !== "") resumable.delete(acks.id);
    let stored = 0;
    for (const wire of acks.queue.pending()) {
      try {
        if (storeUnacked(x, session.user, parse(wire) as Element)) stored++;
      } catch {
        // Our own output always parses; nothing to store if it did not.
      }
    }
    acks.discard();
    if (stored > 0 && x.debug) x.log.debug("unacknowledged messages stored offline", { address: session.address, stored });
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
    /** The resumption id; empty: not resumable. */
    readonly id = "",
    /** The worker's gauge of unacknowledged stanzas (its own when none is given: tests). */
    private readonly counts = new SmCounts(),
  ) {}

  get resumable(): boolean {
    return this.id !== "";
  }

  /** An h the client may send: no more than was sent. */
  fits(h: number): boolean {
    return (h - this.acked + MOD) % MOD <= this.queue.length;
  }

  /** After a resume resent the queue: ask for an ack of it. */
  resumed(): void {
    this.sinceRequest = 0;
    if (this.queue.length > 0) this.request();
  }

  /** Stanzas sent since <enabled/>, modulo 2^32. */
  get sentCount(): number {
    return (this.acked + this.queue.length) % MOD;
  }

  received(): void {
    this.handled = (this.handled + 1) % MOD;
  }

  sent(wire: string): void {
    this.queue.push(wire);
    this.counts.unacked++;
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
    if (!this.fits(h)) {
      const e = new StreamError(StreamCondition.UndefinedCondition, "acknowledged more stanzas than were sent");
      e.appCondition = `<handled-count-too-high xmlns='${NS.SM}' h='${h}' send-count='${this.sentCount}'/>`;
      throw e;
    }
    this.queue.drop(n);
    this.counts.unacked -= n;
    this.acked = h;
  }

  /** The session ended for good: its queue goes (what mattered of it was stored offline first). */
  discard(): void {
    this.counts.unacked -= this.queue.length;
    this.queue.drop(this.queue.length);
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
