import type { Taken } from "../cluster/bus.js";
import type { Envelope } from "../envelope/envelope.js";
import { numberAt, valueAt, workerOf } from "./receipt.js";

/** NaN: an entry forgotten (ReceiptLog.forget); its place stays until expiry passes it. */
const GONE = NaN;
/** Out of order by more than this many entries, a number goes to the side map instead of being moved into place. */
const MAX_SHIFT = 32;
const FIRST_CAPACITY = 64;

/**
 * The receipts of one custodian (one incarnation of a worker: `<worker>.<tag>_`) settled or taken here
 * lately, by number. A custodian numbers what it holds in order and the bus keeps each pair of workers in
 * order, so numbers mostly arrive rising: they are appended to two typed arrays sorted by number, and a
 * message not seen before (every message but a duplicate) is told by one comparison with the last. A
 * number that arrives a little late is moved into place; one far out of order (routed again after a
 * membership change) goes to a small side map. No object per entry and no hash table: nothing for the
 * collector to trace or copy, and no table that grows, shrinks and is rebuilt as the window slides.
 */
export class ReceiptLog {
  readonly worker: string;
  /** Numbers, rising, in [head, tail). */
  private keys = new Float64Array(FIRST_CAPACITY);
  /** When each was settled (ms), negated while only taken; GONE once forgotten. */
  private times = new Float64Array(FIRST_CAPACITY);
  private head = 0;
  private tail = 0;
  /** Numbers that came too far out of order to move into place: number → time, in time order. */
  private late: Map<number, number> | null = null;
  /** Entries held (forgotten ones not counted). */
  size = 0;
  /** Confirmations gathered for this custodian in this callback (Confirmations); null: none. */
  gathered: { taken: Taken[]; done: number[] } | null = null;

  constructor(readonly prefix: string) {
    this.worker = workerOf(prefix);
  }

  /** The time `key` was settled (negative: taken); NaN when not held. */
  time(key: number): number {
    const i = this.indexOf(key);
    if (i >= 0) return this.times[i];
    return this.late === null ? GONE : (this.late.get(key) ?? GONE);
  }

  has(key: number): boolean {
    return !Number.isNaN(this.time(key));
  }

  /** Held at `time` (negative: taken); returns whether it is a new entry. */
  add(key: number, time: number): boolean {
    const tail = this.tail;
    if (tail === this.head || key > this.keys[tail - 1]) {
      this.room();
      this.keys[this.tail] = key;
      this.times[this.tail++] = time;
      this.size++;
      return true;
    }
    const i = this.lowerBound(key);
    if (i < tail && this.keys[i] === key) {
      const was = this.times[i];
      this.times[i] = time;
      if (!Number.isNaN(was)) return false;
      this.size++;
      return true;
    }
    const late = this.late;
    if (late !== null && late.delete(key)) {
      // At the end again: the side map stays in time order for expiry.
      late.set(key, time);
      return false;
    }
    if (tail - i <= MAX_SHIFT) {
      this.room();
      // room() may have moved the entries down: the place is found again.
      const at = this.lowerBound(key);
      this.keys.copyWithin(at + 1, at, this.tail);
      this.times.copyWithin(at + 1, at, this.tail);
      this.keys[at] = key;
      this.times[at] = time;
      this.tail++;
    } else (this.late ??= new Map()).set(key, time);
    this.size++;
    return true;
  }

  /** Returns whether it was held. */
  forget(key: number): boolean {
    const i = this.indexOf(key);
    if (i >= 0) {
      if (Number.isNaN(this.times[i])) return false;
      this.times[i] = GONE;
      this.size--;
      return true;
    }
    if (this.late === null || !this.late.delete(key)) return false;
    this.size--;
    return true;
  }

  /**
   * Drops what was settled at or before `old`, from the lowest number up to the first still in the window:
   * one settled again later (taken, then acknowledged) keeps those above it a little longer, never less.
   */
  expire(old: number): void {
    let h = this.head;
    const t = this.tail;
    while (h < t) {
      const at = this.times[h];
      if (!Number.isNaN(at)) {
        if (Math.abs(at) > old) break;
        this.size--;
      }
      h++;
    }
    this.head = h;
    if (h === t) this.head = this.tail = 0;
    // A window's worth kept after a burst is given back once mostly empty.
    const cap = this.keys.length;
    if (cap > FIRST_CAPACITY && this.tail - this.head < cap >> 3) this.resize(cap >> 1);
    const late = this.late;
    if (late === null) return;
    for (const [k, at] of late) {
      if (Math.abs(at) > old) break;
      late.delete(k);
      this.size--;
    }
    if (late.size === 0) this.late = null;
  }

  /** When the oldest entry here was settled (by place, as expiry goes); Infinity when empty. */
  oldest(): number {
    this.skipGone();
    const a = this.head < this.tail ? Math.abs(this.times[this.head]) : Infinity;
    if (this.late === null) return a;
    for (const at of this.late.values()) return Math.min(a, Math.abs(at));
    return a;
  }

  /** Drops the entry oldest() named (the store is full). */
  dropOldest(): void {
    this.skipGone();
    const a = this.head < this.tail ? Math.abs(this.times[this.head]) : Infinity;
    if (this.late !== null) {
      for (const [k, at] of this.late) {
        if (Math.abs(at) < a) {
          this.late.delete(k);
          this.size--;
          return;
        }
        break;
      }
    }
    if (this.head === this.tail) return;
    this.head++;
    this.size--;
  }

  private skipGone(): void {
    while (this.head < this.tail && Number.isNaN(this.times[this.head])) this.head++;
  }

  private indexOf(key: number): number {
    const t = this.tail;
    // The common case, a number above all: one comparison.
    if (t === this.head || key > this.keys[t - 1] || key < this.keys[this.head]) return -1;
    const i = this.lowerBound(key);
    return this.keys[i] === key ? i : -1;
  }

  /** The first place in [head, tail) whose number is not below `key`. */
  private lowerBound(key: number): number {
    let lo = this.head;
    let hi = this.tail;
    const keys = this.keys;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys[mid] < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Room for one more at the end: the entries moved down if half the arrays lie before them, else twice the room. */
  private room(): void {
    const cap = this.keys.length;
    if (this.tail < cap) return;
    const n = this.tail - this.head;
    if (this.head >= cap >> 1) {
      this.keys.copyWithin(0, this.head, this.tail);
      this.times.copyWithin(0, this.head, this.tail);
      this.head = 0;
      this.tail = n;
    } else this.resize(cap * 2);
  }

  private resize(cap: number): void {
    const n = this.tail - this.head;
    const keys = new Float64Array(cap);
    const times = new Float64Array(cap);
    keys.set(this.keys.subarray(this.head, this.tail));
    times.set(this.times.subarray(this.head, this.tail));
    this.keys = keys;
    this.times = times;
    this.head = 0;
    this.tail = n;
  }
}

/**
 * The deliverer's side: receipts of messages settled (or taken) here lately, so that one arriving again —
 * routed again by a custodian that did not hear in time, or an original that was late behind its re-routed
 * twin — is confirmed again and dropped instead of delivered twice. Kept per custodian by number
 * (ReceiptLog), for `windowMs`; a receipt that does not end in a number (none of custody's) is kept whole. A
 * receipt read off the bus (a slice of its message's text) is never kept, so it does not keep that text alive.
 */
export class Receipts {
  /** Custodian prefix (the receipt up to its number) → its log. */
  private readonly logs = new Map<string, ReceiptLog>();
  /** Receipts that end in no number, whole → time. */
  private readonly whole = new Map<string, number>();
  private count = 0;
  /** The custodian of the last lookup: consecutive receipts mostly come from the same one. */
  private lastLog: ReceiptLog | null = null;
  /** The custodian of the lookup before (two workers' receipts alternate on a host of two). */
  private prevLog: ReceiptLog | null = null;
  /** The receipt last found, its log and number: a message's receipt is looked up (has) and then added, in a row. */
  private lastReceipt = "";
  private lastReceiptLog: ReceiptLog | null = null;
  private lastReceiptKey = 0;
  /** Set by `custodian`: the receipt's number in its custodian's log. */
  key = 0;

  constructor(
    private readonly windowMs: number,
    private readonly max: number,
  ) {}

  get size(): number {
    return this.count;
  }

  has(receipt: string): boolean {
    const log = this.find(receipt, false);
    if (log !== null) return log.has(this.key);
    return this.key < 0 && this.whole.has(receipt);
  }

  /** Taken by a session here that waits for its client's acknowledgement, not settled. */
  isTaken(receipt: string): boolean {
    const log = this.find(receipt, false);
    if (log !== null) return log.time(this.key) < 0;
    return this.key < 0 && (this.whole.get(receipt) ?? 0) < 0;
  }

  /** Settled here at `now`, or with `taken` only taken (the time kept negative, so one number per entry). */
  add(receipt: string, now: number, taken = false): void {
    // Full: the oldest goes first (its window shortens; counted nowhere, the cap is in config). One held already stays one.
    if (this.count >= this.max && !this.has(receipt)) this.dropOldest();
    const t = taken ? -now : now;
    const log = this.find(receipt, true);
    if (log !== null) {
      if (log.add(this.key, t)) this.count++;
      return;
    }
    // Delete first: a receipt taken and then settled moves to the end, keeping time order.
    if (this.whole.delete(receipt)) this.count--;
    this.whole.set(receipt, t);
    this.count++;
  }

  /** A session gave the message back (its client never acknowledged it): it may be delivered here again. */
  forget(receipt: string): void {
    const log = this.find(receipt, false);
    if (log !== null) {
      if (log.forget(this.key)) this.count--;
    } else if (this.key < 0 && this.whole.delete(receipt)) this.count--;
  }

  /** The log of `receipt`'s custodian (made if new), its number left in `key`; null for a receipt that ends in no number. */
  custodian(receipt: string): ReceiptLog | null {
    return this.find(receipt, true);
  }

  readonly expire = (now: number): void => {
    const old = now - this.windowMs;
    for (const [prefix, log] of this.logs) {
      const before = log.size;
      log.expire(old);
      this.count -= before - log.size;
      // A custodian that left (or restarted) keeps no log once its window is over; one with confirmations gathered stays.
      if (log.size === 0 && log.gathered === null) this.drop(prefix, log);
    }
    for (const [r, t] of this.whole) {
      if (Math.abs(t) > old) break;
      this.whole.delete(r);
      this.count--;
    }
  };

  private dropOldest(): void {
    let oldest: ReceiptLog | null = null;
    let at = Infinity;
    for (const log of this.logs.values()) {
      const t = log.oldest();
      if (t < at) {
        at = t;
        oldest = log;
      }
    }
    for (const t of this.whole.values()) {
      if (Math.abs(t) < at) oldest = null;
      else if (oldest === null) return;
      break;
    }
    if (oldest !== null) {
      const before = oldest.size;
      oldest.dropOldest();
      this.count -= before - oldest.size;
      return;
    }
    for (const r of this.whole.keys()) {
      this.whole.delete(r);
      this.count--;
      break;
    }
  }

  private drop(prefix: string, log: ReceiptLog): void {
    this.logs.delete(prefix);
    if (this.lastLog === log) this.lastLog = null;
    if (this.prevLog === log) this.prevLog = null;
    if (this.lastReceiptLog === log) {
      this.lastReceiptLog = null;
      this.lastReceipt = "";
    }
  }

  /**
   * The log of `receipt`'s custodian (made with `make`), its number left in `this.key`; null when it has
   * none (`key` 0), or when the receipt ends in no number (`key` -1: kept whole).
   */
  private find(receipt: string, make: boolean): ReceiptLog | null {
    if (this.lastReceiptLog !== null && receipt === this.lastReceipt) {
      this.key = this.lastReceiptKey;
      return this.lastReceiptLog;
    }
    const d = numberAt(receipt);
    if (d < 0) {
      this.key = -1;
      return null;
    }
    const key = valueAt(receipt, d);
    let log: ReceiptLog | null | undefined = this.lastLog;
    // A slice compared with ===: V8 compares the bytes at once, where startsWith reads them one by one.
    const prefix = receipt.slice(0, d);
    if (log === null || prefix !== log.prefix) {
      const prev = this.prevLog;
      if (prev !== null && prefix === prev.prefix) log = prev;
      else {
        log = this.logs.get(prefix);
        if (log === undefined) {
          if (!make) {
            this.key = 0;
            return null;
          }
          // Its own flat string: a slice would keep the bus message it was cut from alive with the log.
          log = new ReceiptLog(flat(prefix));
          this.logs.set(log.prefix, log);
        }
      }
      this.prevLog = this.lastLog;
      this.lastLog = log;
    }
    this.key = key;
    this.lastReceipt = receipt;
    this.lastReceiptLog = log;
    this.lastReceiptKey = key;
    return log;
  }
}

/**
 * A copy of `s` that shares no storage with the text it may have been cut from, and is one run of bytes
 * (a slice of a concatenation would be a view of it, read character by character through the view).
 */
function flat(s: string): string {
  return Buffer.from(s, "utf8").toString("utf8");
}

/** A microtask without Node's queueMicrotask, which makes an AsyncResource and a bound function per call. */
const resolved = Promise.resolve();

/**
 * Confirmations for custodians on other workers, gathered over one callback
 * (the bus batch or the socket read that delivered): one bus message per
 * custodian and callback, published at once. They name each message by its
 * number in the custodian's receipts (ReceiptLog), not by its receipt.
 *
 * Riding: a confirmation of a delivery whose client output is still held for
 * the bus batch (done with `rides`) need not be published at once: it goes
 * with that batch (`beforePublish`), ahead of the output, and until then it
 * can be taken back (`withdraw`) with the output. When every confirmation
 * gathered in a callback rides, the callback publishes nothing; one that does
 * not ride sends them all at once, as before.
 */
export class Confirmations {
  /** Custodians with confirmations gathered and not yet sent (ReceiptLog.gathered). */
  private pending: ReceiptLog[] = [];
  private queued = false;
  /** Something gathered must go at once: the callback's end publishes. */
  private urgent = false;
  /** A beforePublish callback is registered for what rides. */
  private waiting = false;
  /** Taken, waiting for `afterCopies` (takenAfterCopies); null: none. */
  private later: [ReceiptLog, Taken][] | null = null;

  constructor(
    private readonly send: (worker: string, prefix: string, taken: Taken[], done: number[]) => void,
    /** After each gathering is sent: publish it now. */
    private readonly sent: () => void = () => {},
    /** Calls back once the copies this worker made for its sessions' keeper are published (ResumeRecordDesk.afterCopies). */
    private readonly afterCopies: (cb: () => void) => void = (cb) => cb(),
    /** Calls `cb` at the start of the bus's next publish (ClusterBus.beforePublish); absent: nothing rides. */
    private readonly beforePublish: ((cb: () => void) => void) | null = null,
    /** Everything gathered has been handed to the bus: nothing can be withdrawn any more. */
    private readonly handedOn: () => void = () => {},
  ) {}

  /** Riding is possible on this bus. */
  get canRide(): boolean {
    return this.beforePublish !== null;
  }

  taken(c: ReceiptLog, t: Taken): void {
    this.of(c).taken.push(t);
    this.urgent = true;
  }

  /** As taken, once the copies made so far are published: one callback for all that wait. */
  takenAfterCopies(c: ReceiptLog, t: Taken): void {
    if (this.later === null) {
      this.later = [];
      this.afterCopies(this.copied);
    }
    this.later.push([c, t]);
  }

  private readonly copied = (): void => {
    const later = this.later;
    this.later = null;
    if (later !== null) for (const [c, t] of later) this.taken(c, t);
  };

  /** `rides`: the delivery's output waits for the bus batch, and can be taken back with `withdraw` until it goes. */
  done(c: ReceiptLog, key: number, rides = false): void {
    this.of(c).done.push(key);
    if (!rides || this.beforePublish === null) this.urgent = true;
    else if (!this.waiting) {
      // Now, not at the callback's end: the bus then holds a batch before anything can flush the output
      // (a busy turn's early flush is a microtask too, and may come first), so the output waits for it.
      this.waiting = true;
      this.beforePublish(this.sendRiding);
    }
  }

  /** Takes riding confirmations back before they are sent; returns how many were still gathered here. */
  withdraw(c: ReceiptLog, keys: ReadonlySet<number>): number {
    const g = c.gathered;
    if (g === null) return 0;
    const before = g.done.length;
    g.done = g.done.filter((k) => !keys.has(k));
    return before - g.done.length;
  }

  private of(c: ReceiptLog): { taken: Taken[]; done: number[] } {
    let g = c.gathered;
    if (g === null) {
      // New lists each time: the bus message may keep them (an in-process bus hands the message over as it is).
      g = c.gathered = { taken: [], done: [] };
      this.pending.push(c);
    }
    if (!this.queued) {
      this.queued = true;
      // At the end of the callback that delivered (a microtask), so before the turn's client writes
      // (setImmediate): a confirmation reaches the bus no later than the stanzas it counts reach their clients.
      void resolved.then(this.flush);
    }
    return g;
  }

  readonly flush = (): void => {
    this.queued = false;
    // All of it rides: it goes with the bus batch the deliveries' output waits for (sendRiding).
    if (!this.urgent) return;
    this.urgent = false;
    this.sendAll();
    this.sent();
  };

  /** At the start of the bus's publish: what rode goes in it. */
  private readonly sendRiding = (): void => {
    this.waiting = false;
    this.sendAll();
  };

  private sendAll(): void {
    const pending = this.pending;
    if (pending.length > 0) {
      this.pending = [];
      for (const c of pending) {
        const g = c.gathered!;
        c.gathered = null;
        if (g.taken.length > 0 || g.done.length > 0) this.send(c.worker, c.prefix, g.taken, g.done);
      }
    }
    this.handedOn();
  }
}

/** What a delivery whose confirmation rides needs to be taken back: where its output lies, its envelope (its receipt, its sender and id), and when. */
export interface RiderSession {
  cutOutput(from: number, to: number): boolean;
}

/**
 * The deliveries whose confirmations ride the bus batch (Confirmations, `rides`), until they are handed to
 * the bus: parallel arrays emptied at each hand-over, so a delivery costs no object of its own.
 */
export class Riders<S extends RiderSession = RiderSession> {
  private sessions: S[] = [];
  private marks: number[] = [];
  private logs: ReceiptLog[] = [];
  private keys: number[] = [];
  private envs: Envelope[] = [];
  private times: number[] = [];

  add(s: S, from: number, to: number, c: ReceiptLog, key: number, env: Envelope, at: number): void {
    this.sessions.push(s);
    this.marks.push(from, to);
    this.logs.push(c);
    this.keys.push(key);
    this.envs.push(env);
    this.times.push(at);
  }

  clear(): void {
    if (this.sessions.length === 0) return;
    this.sessions.length = 0;
    this.marks.length = 0;
    this.logs.length = 0;
    this.keys.length = 0;
    this.envs.length = 0;
    this.times.length = 0;
  }

  /**
   * Offers each delivery, the latest first (a cut leaves the places before it as they were), to `take`, which
   * returns whether it took it back; then forgets them all. Returns how many were taken back.
   */
  void(take: (s: S, from: number, to: number, c: ReceiptLog, key: number, env: Envelope, at: number) => boolean): number {
    let n = 0;
    for (let i = this.sessions.length - 1; i >= 0; i--) {
      if (take(this.sessions[i], this.marks[2 * i], this.marks[2 * i + 1], this.logs[i], this.keys[i], this.envs[i], this.times[i])) n++;
    }
    this.clear();
    return n;
  }
}
