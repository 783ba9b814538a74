import type { Envelope } from "../envelope/envelope.js";
import type { Taken } from "../cluster/bus.js";

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
  /** The worker whose session took it and waits for the client's acknowledgement. */
  by: string;
  /** That session's Session.keepKey, and the message's place in its count (Session.keptCount after it). */
  tag: string;
  count: number;
}

/** What the custodian does with a message that must travel again or cannot. */
export interface CustodyActions {
  /** Routes env (which keeps its receipt) again, to whoever owns its address now. */
  reroute(env: Envelope): void;
  /** Tried maxTries times: its sender gets an error. */
  giveUp(env: Envelope): void;
  /** A message `watch` named is taken, settled, given up or voided: no longer only travelling (resume-records.ts, *Pinned*). */
  released?(key: number): void;
}

/**
 * The sender's side of custody: every message that leaves this worker over the
 * bus is held here under a receipt `<worker>.<tag>_<n>` until the worker that settles
 * it (delivers it to a session, stores it, or bounces it) confirms. Two maps in
 * routing order, each with one deadline for all its entries, so a sweep stops at
 * the first entry still in time, as PendingList does per timeout.
 */
export class Custody {
  /** Routed, not yet taken: timeout confirmTimeoutMs. */
  private readonly travelling = new Map<number, Held>();
  /** Taken by a session that waits for its client's acknowledgement (XEP-0198): timeout heldMaxMs. */
  private readonly taken = new Map<number, Held>();
  /** From 0: keys stay small integers (no heap number per entry, nor per receipt made); the prefix tells incarnations apart. */
  private next = 0;
  /** Keys whose first taking (or settling, or giving up) `released` is told of (watch): few, and empty on one host. */
  private readonly watched = new Set<number>();
  /** Keys to route again once their time comes (membership changes), in time order. */
  private readonly due: { at: number; since: number; keys: number[] }[] = [];
  private readonly prefix: string;
  /** Messages held now (a gauge), routed again, given up, let go after heldMaxMs, sent unheld for want of room. */
  rerouted = 0;
  givenUp = 0;
  letGo = 0;
  unheld = 0;
  /** Settled by a client's count after its worker died (receivedUpTo). */
  receivedByClients = 0;
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
    return this.travelling.size + this.taken.size;
  }

  /** Holds env; its copy with a receipt is what travels. Null: no room, it travels as it is. */
  hold(env: Envelope, now: number): Envelope | null {
    if (this.size >= this.opts.maxHeld) {
      this.unheld++;
      return null;
    }
    const n = this.next++;
    const sent = env.withReceipt(this.prefix + n);
    this.travelling.set(n, { env: sent, at: now, tries: 1, by: "", tag: "", count: 0 });
    return sent;
  }

  /**
   * `released` hears when the message held under `key` (just held: mark() before hold) stops travelling: taken by a
   * session, settled, given up or voided. Routed again, it still travels.
   */
  watch(key: number): void {
    if (this.travelling.has(key)) this.watched.add(key);
  }

  /** Whether a message is watched: a property test on every path when none is. */
  private release(key: number): void {
    if (this.watched.size !== 0 && this.watched.delete(key)) this.act.released?.(key);
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
    const h = this.travelling.get(key) ?? this.taken.get(key);
    if (h === undefined) return 0;
    this.travelling.delete(key);
    this.taken.delete(key);
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
    // Each entry is in one map only.
    let h = this.travelling.get(key);
    if (h !== undefined) this.travelling.delete(key);
    else {
      h = this.taken.get(key);
      if (h === undefined) return 0;
      this.taken.delete(key);
    }
    this.release(key);
    return h.tries;
  }

  /**
   * Workers left or restarted: what was travelling may have been on one of
   * them, and what one of them took is gone with it. Both go again.
   */
  lost(gone: (worker: string) => boolean, now: number): void {
    const after = now + (this.opts.rerouteAfterMs ?? 0);
    const keys = [...this.travelling.keys()];
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
        const h = this.travelling.get(key) ?? this.taken.get(key);
        if (h !== undefined && h.at <= since) this.again(key, h, now);
      }
    }
    const late = now - this.opts.confirmTimeoutMs;
    for (const [key, h] of this.travelling) {
      if (h.at > late) break;
      this.again(key, h, now);
    }
    const old = now - this.opts.heldMaxMs;
    for (const [key, h] of this.taken) {
      if (h.at > old) break;
      this.taken.delete(key);
      this.letGo++;
    }
  };

  private again(key: number, h: Held, now: number): void {
    this.travelling.delete(key);
    this.taken.delete(key);
    if (h.tries >= this.opts.maxTries) {
      this.givenUp++;
      this.release(key);
      this.act.giveUp(h.env);
      return;
    }
    h.tries++;
    h.at = now;
    h.by = "";
    // At the end of the routing order again, so the sweep's early stop still holds.
    this.travelling.set(key, h);
    this.rerouted++;
    this.act.reroute(h.env);
  }
}

/**
 * The deliverer's side: receipts of messages settled (or taken: the value is
 * negative) here lately,
 * so that one arriving again — routed again by a custodian that did not hear
 * in time, or an original that was late behind its re-routed twin — is
 * confirmed again and dropped instead of delivered twice. Kept per custodian
 * (the receipt up to its number) as numbers: tens of thousands of entries
 * for `windowMs` that point nowhere, so the GC has nothing to copy or trace,
 * and a receipt read off the bus (a slice of its message's text) does not keep
 * that text alive. Insertion order is time order in each map, so expiry stops
 * at the first entry still in the window.
 */
export class Receipts {
  /** Custodian → receipt number → time; a receipt that does not end in a number is kept whole under "". */
  private readonly byCustodian = new Map<string, Map<number | string, number>>();
  private count = 0;
  /** The custodian of the last lookup: consecutive receipts mostly come from the same one. */
  private lastName = "";
  private lastMap: Map<number | string, number> | null = null;
  /** The custodian of the lookup before (two workers' receipts alternate on a host of two). */
  private prevName = "";
  private prevMap: Map<number | string, number> | null = null;
  /** The receipt last found, its map and key: a message's receipt is looked up (has) and then added, in a row. */
  private lastReceipt = "";
  private lastReceiptMap: Map<number | string, number> | null = null;
  private lastReceiptKey: number | string = 0;
  /** Set by `find`: the key of the receipt in its custodian's map. */
  private key: number | string = 0;

  constructor(
    private readonly windowMs: number,
    private readonly max: number,
  ) {}

  get size(): number {
    return this.count;
  }

  has(receipt: string): boolean {
    const m = this.find(receipt, false);
    return m !== null && m.has(this.key);
  }

  /** Taken by a session here that waits for its client's acknowledgement, not settled. */
  isTaken(receipt: string): boolean {
    const m = this.find(receipt, false);
    return m !== null && (m.get(this.key) ?? 0) < 0;
  }

  /** Settled here at `now`, or with `taken` only taken (the time kept negative, so one number per entry). */
  add(receipt: string, now: number, taken = false): void {
    // Full: the oldest goes first (its window shortens; counted nowhere, the cap is in config).
    if (this.count >= this.max) this.dropOldest();
    const m = this.find(receipt, true)!;
    const k = this.key;
    // Delete first: a receipt taken and then settled moves to the end, keeping time order.
    if (m.delete(k)) this.count--;
    m.set(k, taken ? -now : now);
    this.count++;
  }

  /** A session gave the message back (its client never acknowledged it): it may be delivered here again. */
  forget(receipt: string): void {
    const m = this.find(receipt, false);
    if (m !== null && m.delete(this.key)) this.count--;
  }

  readonly expire = (now: number): void => {
    const old = now - this.windowMs;
    for (const [c, m] of this.byCustodian) {
      for (const [k, t] of m) {
        if (Math.abs(t) > old) break;
        m.delete(k);
        this.count--;
      }
      if (m.size === 0) this.drop(c, m);
    }
  };

  private dropOldest(): void {
    let oldest: Map<number | string, number> | null = null;
    let at = Infinity;
    for (const m of this.byCustodian.values()) {
      for (const t of m.values()) {
        if (Math.abs(t) < at) {
          at = Math.abs(t);
          oldest = m;
        }
        break;
      }
    }
    if (oldest === null) return;
    for (const k of oldest.keys()) {
      oldest.delete(k);
      this.count--;
      break;
    }
  }

  private drop(name: string, m: Map<number | string, number>): void {
    this.byCustodian.delete(name);
    if (this.lastMap === m) {
      this.lastMap = null;
      this.lastName = "";
    }
    if (this.prevMap === m) {
      this.prevMap = null;
      this.prevName = "";
    }
    if (this.lastReceiptMap === m) {
      this.lastReceiptMap = null;
      this.lastReceipt = "";
    }
  }

  /** The map of `receipt`'s custodian (made with `make`), its key in it left in `this.key`. */
  private find(receipt: string, make: boolean): Map<number | string, number> | null {
    if (this.lastReceiptMap !== null && receipt === this.lastReceipt) {
      this.key = this.lastReceiptKey;
      return this.lastReceiptMap;
    }
    const d = numberAt(receipt);
    let m: Map<number | string, number> | undefined;
    if (d < 0) {
      this.key = receipt;
      m = this.mapOf("", make);
    } else {
      this.key = valueAt(receipt, d);
      if (this.lastMap !== null && d === this.lastName.length && receipt.startsWith(this.lastName)) m = this.lastMap;
      else {
        const lastName = this.lastName;
        const lastMap = this.lastMap;
        if (this.prevMap !== null && d === this.prevName.length && receipt.startsWith(this.prevName)) {
          this.lastName = this.prevName;
          m = this.lastMap = this.prevMap;
        } else {
          const name = receipt.slice(0, d);
          m = this.mapOf(name, make);
          if (m === undefined) return null;
          this.lastName = name;
          this.lastMap = m;
        }
        this.prevName = lastName;
        this.prevMap = lastMap;
      }
    }
    if (m === undefined) return null;
    this.lastReceipt = receipt;
    this.lastReceiptMap = m;
    this.lastReceiptKey = this.key;
    return m;
  }

  private mapOf(name: string, make: boolean): Map<number | string, number> | undefined {
    let m = this.byCustodian.get(name);
    if (m === undefined && make) {
      m = new Map();
      this.byCustodian.set(name, m);
    }
    return m;
  }
}

/**
 * Where the number that ends `receipt` starts (1 to 15 digits after something else, so that it is exact as a
 * double, without a leading zero), else -1.
 */
function numberAt(receipt: string): number {
  let i = receipt.length;
  while (i > 0) {
    const c = receipt.charCodeAt(i - 1);
    if (c < 48 || c > 57) break;
    i--;
  }
  const digits = receipt.length - i;
  // "07" is not "7": a leading zero makes it a receipt kept whole.
  return i > 0 && digits > 0 && digits <= 15 && (digits === 1 || receipt.charCodeAt(i) !== 48) ? i : -1;
}

/** The number written from `from` to the end of `receipt` (digits only, as numberAt found them). */
function valueAt(receipt: string, from: number): number {
  let n = 0;
  for (let i = from; i < receipt.length; i++) n = n * 10 + receipt.charCodeAt(i) - 48;
  return n;
}

/** A microtask without Node's queueMicrotask, which makes an AsyncResource and a bound function per call. */
const resolved = Promise.resolve();

/**
 * Confirmations for custodians on other workers, gathered over one callback
 * (the bus batch or the socket read that delivered): one bus message per
 * custodian and callback, published at once.
 */
export class Confirmations {
  /** Per custodian; an entry stays (its lists start empty again), so a callback's gathering makes no map entry. */
  private readonly byWorker = new Map<string, { taken: Taken[]; done: string[] }>();
  private queued = false;
  /** Taken, waiting for `afterCopies` (takenAfterCopies); null: none. */
  private later: [string, Taken][] | null = null;

  constructor(
    private readonly send: (worker: string, taken: Taken[], done: string[]) => void,
    /** After each gathering is sent: publish it now. */
    private readonly sent: () => void = () => {},
    /** Calls back once the copies this worker made for its sessions' keeper are published (ResumeRecordDesk.afterCopies). */
    private readonly afterCopies: (cb: () => void) => void = (cb) => cb(),
  ) {}

  taken(worker: string, t: Taken): void {
    this.of(worker).taken.push(t);
  }

  /** As taken, once the copies made so far are published: one callback for all that wait. */
  takenAfterCopies(worker: string, t: Taken): void {
    if (this.later === null) {
      this.later = [];
      this.afterCopies(this.copied);
    }
    this.later.push([worker, t]);
  }

  private readonly copied = (): void => {
    const later = this.later;
    this.later = null;
    if (later !== null) for (const [w, t] of later) this.taken(w, t);
  };

  done(worker: string, receipt: string): void {
    this.of(worker).done.push(receipt);
  }

  private of(worker: string): { taken: Taken[]; done: string[] } {
    let c = this.byWorker.get(worker);
    if (c === undefined) {
      // Workers that left keep no entry for long: a membership change is rare, a sweep of this map cheap.
      if (this.byWorker.size >= 64) for (const [w, e] of this.byWorker) if (e.taken.length === 0 && e.done.length === 0) this.byWorker.delete(w);
      c = { taken: [], done: [] };
      this.byWorker.set(worker, c);
    }
    if (!this.queued) {
      this.queued = true;
      // At the end of the callback that delivered (a microtask), so before the turn's client writes
      // (setImmediate): a confirmation reaches the bus no later than the stanzas it counts reach their clients.
      void resolved.then(this.flush);
    }
    return c;
  }

  readonly flush = (): void => {
    this.queued = false;
    for (const [w, c] of this.byWorker) {
      if (c.taken.length === 0 && c.done.length === 0) continue;
      const { taken, done } = c;
      // New lists: the bus message may keep these (an in-process bus hands the message over as it is).
      c.taken = taken.length === 0 ? taken : [];
      c.done = done.length === 0 ? done : [];
      this.send(w, taken, done);
    }
    this.sent();
  };
}

/** Worker ids seen in receipts lately: a receipt's worker is then that string, not a slice made (and hashed) again. */
const knownWorkers: string[] = [];
let nextKnown = 0;

/** The worker named by a receipt or ref `<worker>.<n>`; "" when it names none. */
export function workerOf(receipt: string): string {
  let dot = receipt.length - 1;
  while (dot >= 0 && receipt.charCodeAt(dot) !== 46) dot--;
  if (dot <= 0) return "";
  for (let i = 0; i < knownWorkers.length; i++) {
    const w = knownWorkers[i];
    if (w.length === dot && receipt.startsWith(w)) return w;
  }
  const w = receipt.slice(0, dot);
  if (knownWorkers.length < 16) knownWorkers.push(w);
  else {
    knownWorkers[nextKnown] = w;
    nextKnown = (nextKnown + 1) & 15;
  }
  return w;
}
