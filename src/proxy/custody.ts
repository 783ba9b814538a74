import type { Envelope } from "../envelope/envelope.js";
import { KeyRing } from "../pending/key-ring.js";
import { numberAt, valueAt } from "./receipt.js";

export interface CustodyOptions {
  /** A message not taken by any worker within this long is routed again. */
  confirmTimeoutMs: number;
  /** Routings of one message (the first included) before its sender gets an error instead. */
  maxTries: number;
  /** How long a worker remembers the receipts of messages it delivered, to drop one that arrives again. */
  dedupWindowMs: number;
  /** Messages one worker holds at most; past it, messages travel unheld (counted). */
  maxHeld: number;
  /** A message taken by a session that waits for its client's ack is let go after this long (the session still has it). */
  heldMaxMs: number;
  /**
   * After a membership change, how long before what it affects is routed again:
   * the other workers learn of the change up to a heartbeat later, and an owner
   * that has not yet would send the message to the dead worker again.
   */
  rerouteAfterMs?: number;
  /**
   * What a session of a worker that died had taken waits this much longer:
   * its client, reconnecting, may say what it received (Core.receivedUpTo),
   * which then is not delivered twice.
   */
  resumeGraceMs: number;
}

/** One message this worker accepted and sent to another worker, held until that one confirms (seed 004's PendingResponse). */
interface Held {
  env: Envelope;
  /** When it was (last) routed, or taken. */
  at: number;
  tries: number;
  /** When it was first routed: with maxTries, its sender is told only once maxTries × confirmTimeoutMs have passed. */
  first: number;
  /** The worker whose session took it and waits for the client's acknowledgement. */
  by: string;
  /** The worker it was (last) routed to; "": not known (it stayed here, or a route that does not say). */
  to: string;
  /** That session's Session.keepKey, and the message's place in its count (Session.keptCount after it). */
  tag: string;
  count: number;
}

/** What the custodian does with a message that must travel again or cannot. */
export interface CustodyActions {
  /** Routes env (which keeps its receipt) again, to whoever owns its address now; gives the worker it went to ("": none). */
  reroute(env: Envelope): string | void;
  /** Tried maxTries times: its sender gets an error. */
  giveUp(env: Envelope): void;
  /** A message `watch` named is taken, settled, given up or voided: no longer only travelling (resume-records.ts, *Pinned*). */
  released?(key: number): void;
  /**
   * Asks worker `to` to answer `probed(to, at)` behind everything it was sent before, on the same ordered way
   * (*Slow, not lost*). Without it a message whose timeout passes is routed again at once, as before.
   */
  probe?(to: string, at: number): void;
}

/**
 * The sender's side of custody: every message that leaves this worker over the
 * bus is held here under a receipt `<worker>.<tag>_<n>` until the worker that settles
 * it (delivers it to a session, stores it, or bounces it) confirms. Held by number in
 * rings (KeyRing: no hash table whose rebuilt copies keep held messages alive for the
 * collector), each with one deadline for all its entries, so a sweep stops at the
 * first entry still in time, as PendingList does per timeout.
 */
export class Custody {
  /** Routed once, not yet taken, in routing order (numbers rise with time): timeout confirmTimeoutMs. */
  private readonly travelling = new KeyRing<Held>();
  /** Routed again (a membership change, a timeout), not yet taken: few, in the order of their last routing. */
  private readonly retried = new Map<number, Held>();
  /**
   * Taken by a session that waits for its client's acknowledgement (XEP-0198): timeout heldMaxMs. By number, so
   * nearly in the order taken: a sweep lets one go no sooner than heldMaxMs, some a little later.
   */
  private readonly taken = new KeyRing<Held>();
  /** From 0: keys stay small integers (no heap number per entry, nor per receipt made); the prefix tells incarnations apart. */
  private next = 0;
  /** Keys whose first taking (or settling, or giving up) `released` is told of (watch): few, and empty on one host. */
  private readonly watched = new Set<number>();
  /** Keys to route again once their time comes (membership changes), in time order. */
  private readonly due: { at: number; since: number; keys: number[] }[] = [];
  /**
   * Timed out at a worker that has answered for nothing routed to it since (*Slow, not lost*): waiting for it, by
   * key, and per worker in the order they timed out. Routed again only once that worker answers for something sent
   * after them (then they were lost on the way), or when it leaves the ring.
   */
  private readonly slow = new Map<number, Held>();
  private readonly slowAt = new Map<string, number[]>();
  /** Per worker: the latest routing time of a message routed to it that was confirmed, or of a probe it answered. */
  private readonly heard = new Map<string, number>();
  /** Per worker: when the probe not yet answered was sent. */
  private readonly probing = new Map<string, number>();
  private readonly prefix: string;
  /** Messages held now (a gauge), routed again, given up, let go after heldMaxMs, sent unheld for want of room. */
  rerouted = 0;
  givenUp = 0;
  letGo = 0;
  unheld = 0;
  /** Settled by a client's count after its worker died (receivedUpTo). */
  receivedByClients = 0;
  /** Timed out at a worker that was slow, not lost: waited for instead of routed again (a counter; `waiting` is the gauge). */
  waited = 0;
  /** Dropped because the bus message that carried them was composed before a stall (voidSince). */
  voided = 0;

  constructor(
    workerId: string,
    private readonly opts: CustodyOptions,
    private readonly act: CustodyActions,
  ) {
    // A restarted worker (same id) must not reuse receipts the others still remember (Receipts): its own random tag.
    this.prefix = `${workerId}.${Math.floor(Math.random() * 2 ** 40).toString(36)}_`;
  }

  get size(): number {
    return this.travelling.size + this.retried.size + this.taken.size + this.slow.size;
  }

  /** Timed out and waiting for a slow worker (*Slow, not lost*). */
  get waiting(): number {
    return this.slow.size;
  }

  /** Holds env, which goes to worker `to`; its copy with a receipt is what travels. Null: no room, it travels as it is. */
  hold(env: Envelope, now: number, to = ""): Envelope | null {
    if (this.size >= this.opts.maxHeld) {
      this.unheld++;
      return null;
    }
    const n = this.next++;
    const sent = env.withReceipt(this.prefix + n);
    this.travelling.set(n, { env: sent, at: now, tries: 1, first: now, by: "", to, tag: "", count: 0 });
    return sent;
  }

  /**
   * `released` hears when the message held under `key` (just held: mark() before hold) stops travelling: taken by a
   * session, settled, given up or voided. Routed again, it still travels.
   */
  watch(key: number): void {
    if (this.travellingOf(key) !== undefined) this.watched.add(key);
  }

  /** Whether a message is watched: a property test on every path when none is. */
  private release(key: number): void {
    if (this.watched.size !== 0 && this.watched.delete(key)) this.act.released?.(key);
  }

  /** The key a confirmation names (ReceiptLog: `prefix`, `key`) when it is one of this incarnation's; -1 for another's. */
  keyIn(prefix: string, key: number): number {
    return prefix === this.prefix ? key : -1;
  }

  /** The key of one of this worker's receipts; -1 for anything else. */
  keyOf(receipt: string): number {
    // Read in place: no slice of the receipt, no string parsed as a number.
    return numberAt(receipt) === this.prefix.length && receipt.startsWith(this.prefix) ? valueAt(receipt, this.prefix.length) : -1;
  }

  /**
   * Worker `by` delivered it to a session that keeps it until its client
   * acknowledges it; or that session moved to `by` (XEP-0198 resumption, a
   * drain) and keeps it there now. Returns how many times it was routed, as done() does.
   */
  takenBy(key: number, by: string, now: number, tag = "", count = 0): number {
    const h = this.travellingOf(key) ?? this.taken.get(key);
    if (h === undefined) return 0;
    if (h.by === "") this.heardOf(h);
    this.remove(key);
    this.release(key);
    h.by = by;
    h.at = now;
    // A duplicate's "taken again" names no session: the first one's stays.
    if (tag !== "") {
      h.tag = tag;
      h.count = count;
    }
    this.taken.set(key, h);
    return h.tries;
  }

  /**
   * The client of session `tag`, whose worker died, received its first `count`
   * stanzas (XEP-0198 h, modulo 2^32): what that session took up to there
   * reached it and is settled, instead of coming again from offline storage.
   * With `resumedOn`, the session lives again on that worker (rebuilt from its
   * resume record): the rest it had taken is routed again at once, to it.
   */
  receivedUpTo(tag: string, count: number, resumedOn = "", now = 0): number {
    let n = 0;
    const again: number[] = [];
    for (const [key, h] of this.taken) {
      if (h.tag !== tag) continue;
      if ((count - h.count + 0x1_0000_0000) % 0x1_0000_0000 >= 0x8000_0000) {
        // The session was rebuilt on `resumedOn` (resume-records.ts): what its client did not get goes there now.
        if (resumedOn !== "" && h.by !== resumedOn) again.push(key);
        continue;
      }
      this.taken.delete(key);
      n++;
    }
    this.receivedByClients += n;
    if (again.length > 0) {
      for (const key of again) this.again(key, this.taken.get(key)!, now);
      // Routed now: the later routing the death scheduled for them no longer applies.
      const gone = new Set(again);
      for (const d of this.due) d.keys = d.keys.filter((k) => !gone.has(k));
    }
    return n;
  }

  /** The receipt key the next held message gets: what is held from here on has keys at least this. */
  mark(): number {
    return this.next;
  }

  /**
   * Held since `mark` and still travelling, from a sender `void` names: dropped without a trace, neither
   * routed again nor given up. The bus message that carried each was composed before this worker was
   * stopped past the others' patience and is dropped where it arrives, and the sender's client sends it
   * again (Session.stalledBack). Returns how many.
   */
  voidSince(mark: number, voided: (env: Envelope) => boolean): number {
    let n = 0;
    for (const [key, h] of this.travelling) {
      if (key < mark || h.tries > 1 || !voided(h.env)) continue;
      this.travelling.delete(key);
      this.release(key);
      n++;
    }
    this.voided += n;
    return n;
  }

  /**
   * Settled: acknowledged, delivered to a session without acknowledgements, stored or bounced. Returns how
   * many times it was routed (0: not held, or settled already): more than once, and another copy may follow.
   */
  done(key: number): number {
    // Each entry is in one place only.
    const h = this.travelling.delete(key) ?? (this.retried.size === 0 ? undefined : this.deleted(this.retried, key)) ?? this.taken.delete(key) ?? (this.slow.size === 0 ? undefined : this.deleted(this.slow, key));
    if (h === undefined) return 0;
    if (h.by === "") this.heardOf(h);
    this.release(key);
    return h.tries;
  }

  /**
   * Workers left or restarted: what was travelling may have been on one of
   * them, and what one of them took is gone with it. Both go again.
   */
  lost(gone: (worker: string) => boolean, now: number): void {
    const after = now + (this.opts.rerouteAfterMs ?? 0);
    const keys = [...this.travelling.keyList(), ...this.retried.keys(), ...this.slow.keys()];
    // What waited for a worker that left goes with the rest; a worker back under its id starts unheard.
    for (const w of [...this.slowAt.keys(), ...this.heard.keys(), ...this.probing.keys()]) {
      if (!gone(w)) continue;
      this.slowAt.delete(w);
      this.heard.delete(w);
      this.probing.delete(w);
    }
    if (keys.length > 0) this.due.push({ at: after, since: now, keys });
    const taken: number[] = [];
    for (const [key, h] of this.taken) if (gone(h.by)) taken.push(key);
    if (taken.length > 0) this.later(after + this.opts.resumeGraceMs, now, taken);
  }

  /** Due lists stay in time order: a later one goes where it belongs. */
  private later(at: number, since: number, keys: number[]): void {
    let i = this.due.length;
    while (i > 0 && this.due[i - 1].at > at) i--;
    this.due.splice(i, 0, { at, since, keys });
  }

  /** The TimerDaemon's sweep. */
  readonly expire = (now: number): void => {
    while (this.due.length > 0 && this.due[0].at <= now) {
      const { since, keys } = this.due.shift()!;
      for (const key of keys) {
        // Settled meanwhile, taken since (by a live session, or its new place), or routed again already: nothing to do.
        // Judged by the membership change's time, not the sweep's, which may come late.
        const h = this.travellingOf(key) ?? this.taken.get(key);
        if (h !== undefined && h.at <= since) this.again(key, h, now);
      }
    }
    const late = now - this.opts.confirmTimeoutMs;
    for (let key = this.travelling.firstKey(); key >= 0; key = this.travelling.firstKey()) {
      const h = this.travelling.get(key)!;
      if (h.at > late) break;
      this.timedOut(key, h, now);
    }
    for (const [key, h] of this.retried) {
      if (h.at > late) break;
      this.timedOut(key, h, now);
    }
    if (this.slowAt.size !== 0) this.sweepSlow(now, late);
    const old = now - this.opts.heldMaxMs;
    for (let key = this.taken.firstKey(); key >= 0; key = this.taken.firstKey()) {
      if (this.taken.get(key)!.at > old) break;
      this.taken.delete(key);
      this.letGo++;
    }
  };

  /** Routed and not yet taken, once or again. */
  private travellingOf(key: number): Held | undefined {
    return this.travelling.get(key) ?? (this.retried.size === 0 ? undefined : this.retried.get(key)) ?? (this.slow.size === 0 ? undefined : this.slow.get(key));
  }

  private remove(key: number): void {
    this.travelling.delete(key);
    if (this.retried.size !== 0) this.retried.delete(key);
    this.taken.delete(key);
    if (this.slow.size !== 0) this.slow.delete(key);
  }

  /** Worker `to` answered `probe(to, at)`: everything routed to it before `at` has reached it. */
  probed(to: string, at: number): void {
    if (this.probing.get(to) === at) this.probing.delete(to);
    if (at > (this.heard.get(to) ?? -1)) this.heard.set(to, at);
  }

  /**
   * A confirmation for h, routed to h.to at h.at: that worker has had everything routed to it up to then. Only for
   * a message routed once: a copy routed again at h.at may be confirmed by its first copy, read long before — and
   * every message routed in between and still unconfirmed would then look lost (under overload, a cascade of copies).
   */
  private heardOf(h: Held): void {
    if (h.to === "" || h.tries !== 1) return;
    const t = this.heard.get(h.to);
    if (t === undefined || h.at > t) this.heard.set(h.to, h.at);
  }

  /**
   * No confirmation within confirmTimeoutMs. If its worker has since answered for something routed to it after
   * this one, this one was lost on the way (a bus that dropped it): routed again. If not, that worker is slow, not
   * proven to have lost it — under load its backlog can pass the timeout, and a copy sent behind that backlog only
   * adds to it, then meets a receipt forgotten meanwhile and is delivered twice: it waits, and the worker is probed.
   */
  private timedOut(key: number, h: Held, now: number): void {
    if (h.to === "" || this.act.probe === undefined || (this.heard.get(h.to) ?? -1) > h.at) return this.again(key, h, now);
    this.remove(key);
    this.slow.set(key, h);
    let keys = this.slowAt.get(h.to);
    if (keys === undefined) this.slowAt.set(h.to, (keys = []));
    keys.push(key);
    this.waited++;
    if (!this.probing.has(h.to)) this.sendProbe(h.to, now);
  }

  private sendProbe(to: string, now: number): void {
    this.probing.set(to, now);
    this.act.probe!(to, now);
  }

  /**
   * What waits for slow workers: routed again once its worker answered for something sent after it; given up after
   * heldMaxMs (a worker that stays in the ring and never answers). An unanswered probe is sent again after
   * confirmTimeoutMs (a bus may drop it too).
   */
  private sweepSlow(now: number, late: number): void {
    for (const [to, keys] of this.slowAt) {
      const heard = this.heard.get(to) ?? -1;
      let i = 0;
      for (; i < keys.length; i++) {
        const h = this.slow.get(keys[i]);
        // Settled, taken or routed again meanwhile.
        if (h === undefined) continue;
        if (heard > h.at) {
          this.slow.delete(keys[i]);
          this.again(keys[i], h, now);
        } else if (now - h.first >= this.opts.heldMaxMs) {
          this.slow.delete(keys[i]);
          this.giveUp(keys[i], h);
        } else break;
      }
      if (i > 0) keys.splice(0, i);
      if (keys.length === 0) {
        this.slowAt.delete(to);
        continue;
      }
      const asked = this.probing.get(to);
      if (asked === undefined || asked <= late) this.sendProbe(to, now);
    }
  }

  private deleted(m: Map<number, Held>, key: number): Held | undefined {
    const h = m.get(key);
    if (h !== undefined) m.delete(key);
    return h;
  }

  /** Its sender gets an error; no longer held (removed by the caller). */
  private giveUp(key: number, h: Held): void {
    this.givenUp++;
    this.release(key);
    this.act.giveUp(h.env);
  }

  private again(key: number, h: Held, now: number): void {
    this.remove(key);
    // Routed maxTries times, and for as long as that many confirmation timeouts: a few membership changes in a row
    // (a worker stopped again and again) route everything held again each time, and must not give up on a message
    // whose recipient stays online while what its timeouts would have allowed has not passed.
    if (h.tries >= this.opts.maxTries && now - h.first >= this.opts.maxTries * this.opts.confirmTimeoutMs) return this.giveUp(key, h);
    h.tries++;
    h.at = now;
    h.by = "";
    h.to = "";
    // At the end of the order of routings again, so the sweep's early stop still holds.
    this.retried.set(key, h);
    this.rerouted++;
    const to = this.act.reroute(h.env);
    // Still held (not settled here at once): where it went, for its next timeout.
    if (typeof to === "string" && this.retried.get(key) === h) h.to = to;
  }
}
