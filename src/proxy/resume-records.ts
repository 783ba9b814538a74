import { monotonicMs } from "../timer/clock.js";
import { hash32 } from "../router/hash.js";
import type { BusMessage } from "../cluster/bus.js";
import type { Envelope } from "../envelope/envelope.js";
import type { Membership } from "../router/router.js";
import type { Session } from "../session/session.js";
import type { HeldCopy, Recalled, ResumeRecord, ResumeRecords } from "../session/resume-record.js";
import { workerOf } from "./receipt.js";

/** How long a recall waits for the other workers; the silent ones count as not having the record. */
const RECALL_TIMEOUT_MS = 2000;
/** Records per bus message: a worker sending all of its records to a new keeper stays under NATS's max_payload. */
const RECORDS_PER_MESSAGE = 500;
/** Default of how often the keeper's copies of the counts follow the sessions' (cluster.resume.countEveryMs). */
const COUNT_EVERY_MS = 1000;
/** Bytes of held copies per bus message when a whole set goes to a new keeper (NATS's max_payload is 1 MiB). */
const HELD_BYTES_PER_MESSAGE = 256 * 1024;

/** What the desk needs of the worker it serves. */
export interface RecordsHost {
  readonly workerId: string;
  send(worker: string, msg: BusMessage): void;
  membership(): Membership;
  /** Publishes what was sent so far now, not at the end of the turn. */
  flushNow?(): void;
  /** Calls `cb` once at the start of this turn's bus publish (ClusterBus.beforePublish); absent: at once. */
  beforePublish?(cb: () => void): void;
  /** The bus holds messages it publishes at the end of this turn (ClusterBus.pending). */
  busPending?(): boolean;
  /** Routes a message again, as custody does (a held copy whose record's window passed). */
  route(env: Envelope): void;
  /** Calls `cb` once this turn's bus batch is published (Core.afterPublish); absent: at once. */
  afterPublish?(cb: () => void): void;
}

/** Counters, read as metrics. */
export class RecordStats {
  /** Recalls this worker made (a resumption that found no live session on its host), and those that found a record. */
  recalls = 0;
  found = 0;
  /** Records this worker kept for a worker that died, and let go when their window passed unclaimed. */
  orphaned = 0;
  expired = 0;
  /** Copies of written, unacknowledged messages sent to this worker's keeper; and, as keeper, sent on when a window passed. */
  copied = 0;
  copiesRouted = 0;
}

/**
 * The keeper of `self`'s resume records: a worker on another host when there
 * is one (a host's death then takes no session's record with it), else
 * another worker of its own host; "" when it is alone. Workers spread over the
 * candidates by a hash of their id, so one keeper does not keep everyone's.
 */
export function keeperOf(self: string, m: Membership): string {
  let own = "";
  for (const [host, ids] of Object.entries(m.hosts)) if (ids.includes(self)) own = host;
  const others: string[] = [];
  const mine: string[] = [];
  for (const [host, ids] of Object.entries(m.hosts)) for (const id of ids) if (id !== self) (host === own ? mine : others).push(id);
  const c = others.length > 0 ? others : mine;
  if (c.length === 0) return "";
  c.sort();
  return c[hash32(self) % c.length];
}

/** A record kept here for another worker. */
interface Kept {
  holder: string;
  rec: ResumeRecord;
  /** Infinity while its holder lives; then when its window passes; then (lapsed) when its copies go. */
  deadline: number;
  /** Copies of what the session wrote and its client has not acknowledged, oldest first. */
  held: HeldCopy[];
  /** The window passed: not resumable; its copies wait resumeGraceMs for the client's count (a failed resumption). */
  lapsed: boolean;
}

/** One of this worker's resumable sessions, as its keeper knows it. */
interface Mine {
  key: string;
  /** The count the keeper is told (at most `raw`, and below the first pin). */
  count: number;
  /** The count as the session's stanzas' effects allow it (published: advance), before pins. */
  raw: number;
  /** The copies the keeper has (oldest first), kept here too: a new keeper gets them again. Null: none. */
  held: HeldCopy[] | null;
  /** Messages it sent to another worker of this host that has not taken them yet, in its count's order (pin). Null: none. */
  pins: Pin[] | null;
  /** Answers (XEP-0198 <a h/>) waiting for a pin at or below their h to go, in order (whenCounted). Null: none. */
  waiting: [h: number, cb: () => void][] | null;
}

/**
 * A message a resumable session sent to another worker of this host, held in custody here (under `key`) until that
 * worker takes it: the session's count stays below `count` (the stanza's place) meanwhile, at its keeper on another
 * host and in the <a/> its client gets (docs/architecture.md, "Resumption after a death", *Pinned*).
 */
interface Pin {
  s: Session;
  key: number;
  count: number;
  open: boolean;
}

/** A microtask without Node's queueMicrotask (an AsyncResource per call). */
const resolved = Promise.resolve();

/** A recall waiting for the other workers' answers. */
interface Recall {
  done: (r: Recalled | null) => void;
  waiting: Set<string>;
  best: Recalled | null;
  /** The worker whose answer `best` is ("": this one's own). */
  bestFrom: string;
  /** Asked once more, the record's keeper, to give up the record of a holder only this worker saw leave (finish). */
  taking: boolean;
  timer: NodeJS.Timeout;
  ask: [protocol: string, key: string, user: string, h: number];
}

/** Whether a (modulo 2^32) is at or before b. */
function upTo(a: number, b: number): boolean {
  return ((b - a) >>> 0) < 0x8000_0000;
}

/**
 * Resume records (docs/architecture.md, "Resumption after a death"). As a
 * holder, this worker sends its resumable sessions' records to its keeper:
 * whole when a session becomes resumable, moves here or changes its
 * presence, only the count (XEP-0198 h) as its session handles stanzas, all
 * batched per turn into one bus message. As a keeper, it keeps other
 * workers' records and, when one of them dies, holds them until their window
 * passes, for whichever worker a client resumes on. Nothing here waits.
 */
export class ResumeRecordDesk implements ResumeRecords {
  readonly stats = new RecordStats();
  private readonly describers = new Map<string, (s: Session) => ResumeRecord | null>();
  private readonly counters = new Map<string, (s: Session) => number>();
  private readonly leftovers = new Map<string, (rec: ResumeRecord, held: readonly HeldCopy[]) => Envelope[]>();
  private lastCount = 0;
  // ---- holder
  /** This worker's sessions whose records its keeper has: the key and the count last told to the client. */
  private readonly mine = new Map<Session, Mine>();
  private keeper = "";
  /** The next message to the keeper makes it drop what it kept from here (a new keeper, or one that restarted). */
  private reset = true;
  private readonly outKeep = new Set<Session>();
  private readonly outCounts = new Set<Session>();
  private outDrop: string[] = [];
  private outHeld: [string, number, string][] = [];
  /** afterCopies callbacks waiting for outHeld to be handed to the bus (sendHeld, flush). Null: none. */
  private copiesOut: (() => void)[] | null = null;
  private readonly outAcks = new Map<Session, number>();
  private queued = false;
  /** Copies wait in outHeld for the start of this turn's publish (sendHeld). */
  private heldQueued = false;
  /** Sessions that submitted something since the bus last published (their counts go right after it). */
  private readonly touchedSet = new Set<Session>();
  private touchQueued = false;
  private counted1 = new Map<Session, number>();
  /** counted1 maps whose counts wait for the next turn (turnEnd). */
  private readonly counting = new Set<Map<Session, number>>();
  // ---- keeper
  private readonly kept = new Map<string, Kept>();
  private readonly byHolder = new Map<string, Set<string>>();
  private readonly orphans = new Set<string>();
  // ---- asker
  private readonly recalls = new Map<number, Recall>();
  private nextToken = 1;
  private liveSet = new Set<string>();
  /** Each live worker's host; and whether this worker's keeper is on another host than this worker. */
  private hostOf = new Map<string, string>();
  private ownHost: string | undefined = undefined;
  /** The ring has more than one host. */
  private hosts = 0;
  private keeperElsewhere = false;
  // ---- pins (holder, keeper on another host)
  /** Pins by custody key; empty on one host. */
  private readonly pinned = new Map<number, Pin>();
  /** Sessions whose first pin went in this callback: their counts and answers move at its end (reopen). */
  private readonly reopened = new Set<Session>();
  private reopenQueued = false;

  constructor(
    private readonly host: RecordsHost,
    private readonly countEveryMs = COUNT_EVERY_MS,
    /** How long a lapsed record's copies wait for their client's count (cluster.custody.resumeGraceMs, as custody's taken messages do). */
    private readonly graceMs = 10_000,
  ) {
    this.membershipChanged(host.membership(), [], []);
  }

  /** Records kept here for other workers (a gauge). */
  get size(): number {
    return this.kept.size;
  }

  /** This worker's keeper now ("": none, it is alone). */
  get keeperNow(): string {
    return this.keeper;
  }

  describer(protocol: string, describe: (s: Session) => ResumeRecord | null, count: (s: Session) => number, leftover?: (rec: ResumeRecord, held: readonly HeldCopy[]) => Envelope[]): void {
    this.describers.set(protocol, describe);
    this.counters.set(protocol, count);
    if (leftover !== undefined) this.leftovers.set(protocol, leftover);
  }

  live(worker: string): boolean {
    return this.liveSet.has(worker);
  }

  // ---- holder ------------------------------------------------------------

  keep(s: Session): void {
    const rec = this.describe(s);
    if (rec === null) return;
    const e = this.mine.get(s);
    if (e === undefined) {
      const count = this.counters.get(s.protocol)?.(s) ?? rec.count;
      this.mine.set(s, { key: rec.key, count, raw: count, held: null, pins: null, waiting: null });
    }
    else e.key = rec.key;
    this.outKeep.add(s);
    this.queue();
  }

  /** What the record says changed (presence): sent again if the session has one. */
  refresh(s: Session): void {
    if (!this.mine.has(s)) return;
    this.outKeep.add(s);
    this.queue();
  }

  counted(s: Session, count: number): void {
    this.advance(s, count);
    if (this.outCounts.size > 0) this.queue();
  }

  /**
   * `s` (resumable) submitted something, which its count covers now. The
   * keeper hears the count in the bus publish of this turn's messages
   * (ClusterBus.onPublishing: behind them, in the keeper's batch, written last), or,
   * in a turn that published nothing on the bus (the stanza's effects stayed
   * on this worker, written to its clients at the turn's end), as counted
   * at the turn's end, a turn later. Either way a count never covers a
   * stanza whose effect died unpublished with this worker. A Set write per
   * stanza; one pair per session and turn. Alone (no keeper), nothing: the
   * sweep keeps the counts current once a second (expire), and a keeper
   * that appears gets them from there.
   */
  touched(s: Session): void {
    if (this.keeper === "" || !this.mine.has(s)) return;
    this.touchedSet.add(s);
    if (this.touchQueued) return;
    this.touchQueued = true;
    setImmediate(this.turnEnd);
  }

  /** This turn's counts, read now (its stanzas are all handled), are sent next turn (if busPublishing did not send them). */
  private readonly turnEnd = (): void => {
    this.touchQueued = false;
    if (this.touchedSet.size === 0) return;
    // The bus publishes this turn's batch after this (both at setImmediate; the first touch came before the first
    // send): busPublishing sends these counts with it, in the keeper's batch. Taken here, they went a turn or two
    // later, and a worker stopped or killed in between left its clients' counts behind what it had published:
    // each resumption elsewhere then had its client send again what was delivered already.
    if (this.host.busPending?.() === true) return;
    const counts = this.counted1;
    for (const s of this.touchedSet) {
      const c = this.counters.get(s.protocol)?.(s);
      if (c !== undefined) counts.set(s, c);
    }
    this.touchedSet.clear();
    this.counting.add(counts);
    setImmediate(() => {
      this.counting.delete(counts);
      for (const [s, c] of counts) this.advance(s, c);
      counts.clear();
      this.flush();
    });
    this.counted1 = new Map();
  };

  /**
   * The bus is about to publish what it gathered before this worker was stopped past the others'
   * patience (ClusterBus stalled): the resumable sessions that submitted since their counts last went to
   * the keeper, each with that count (their clients, resumed elsewhere from it, send the rest again).
   * Their counts in waiting are forgotten: they would cover stanzas whose effects are dropped.
   */
  untouch(): [Session, number][] {
    const out: [Session, number][] = [];
    const seen = new Set<Session>();
    const take = (s: Session) => {
      if (seen.has(s)) return;
      seen.add(s);
      const e = this.mine.get(s);
      if (e !== undefined) out.push([s, e.count]);
    };
    for (const s of this.touchedSet) take(s);
    this.touchedSet.clear();
    for (const counts of this.counting) {
      for (const s of counts.keys()) take(s);
      counts.clear();
    }
    return out;
  }

  /**
   * The bus is about to write what this worker routed so far (ClusterBus.onPublishing): the counts of the
   * sessions that caused it ride in the same publish, in the keeper's batch, which the bus writes last. A
   * count sent after the publish, in a write of its own, was lost when this worker died between the two
   * writes (a woken peer preempts the writer on a busy host): the keeper's count then lagged what was
   * delivered, and each client resumed from it sent those stanzas again (kill-worker: 4 duplicates in one run).
   */
  readonly busPublishing = (): string => {
    if (this.touchedSet.size === 0) return "";
    for (const s of this.touchedSet) {
      const c = this.counters.get(s.protocol)?.(s);
      if (c !== undefined) this.advance(s, c);
    }
    this.touchedSet.clear();
    this.flush();
    return this.keeper;
  };

  /**
   * A count only moves forward (modulo 2^32): one read later may have gone out first. Alone: nobody to tell. It stays
   * below the session's first pin (a message its next hop on this host has not taken).
   */
  private advance(s: Session, c: number): void {
    const e = this.mine.get(s);
    if (e === undefined) return;
    e.raw = c;
    if (e.pins !== null && upTo(e.pins[0].count, c)) c = (e.pins[0].count - 1) >>> 0;
    if (c === e.count || ((c - e.count) >>> 0) >= 0x8000_0000) return;
    e.count = c;
    if (this.keeper !== "") this.outCounts.add(s);
  }

  // ---- pins ------------------------------------------------------------------

  /**
   * Whether the count of a resumable session must stay below a message it sends to another worker of this host
   * until that worker takes it: when the keeper is on another host. A whole host's death then takes the message's
   * custodian (this worker) and its next hop together, and a count that covered it would have the client, resumed
   * from the keeper, not send it again: lost. On one host (keeper here or none) nothing is pinned.
   */
  get pinning(): boolean {
    return this.keeperElsewhere;
  }

  /**
   * Whether a death of one host would take workers `a` and `b` together while this worker, on another host,
   * survives it. False on one host, where nothing survives a host's death.
   */
  dieTogether(a: string, b: string): boolean {
    if (this.hosts < 2) return false;
    const h = this.hostOf.get(a);
    return h !== undefined && h !== this.ownHost && h === this.hostOf.get(b);
  }

  /** Whether `worker` is a live worker of this worker's host. */
  onThisHost(worker: string): boolean {
    return this.ownHost !== undefined && this.hostOf.get(worker) === this.ownHost;
  }

  /**
   * `s` (resumable) just submitted a message that custody holds under `key` and sent to another worker of this host:
   * its count (the stanza's place, read now) is not told to the keeper, nor in an <a/>, until `unpin(key)`. False
   * when `s` has no record (nothing to pin).
   */
  pin(s: Session, key: number): boolean {
    const e = this.mine.get(s);
    const c = e === undefined ? undefined : this.counters.get(s.protocol)?.(s);
    if (e === undefined || c === undefined) return false;
    const p: Pin = { s, key, count: c, open: true };
    (e.pins ??= []).push(p);
    this.pinned.set(key, p);
    return true;
  }

  /** The message held under `key` was taken (or settled, bounced, voided): the count may pass it now. */
  unpin(key: number): void {
    const p = this.pinned.get(key);
    if (p === undefined) return;
    this.pinned.delete(key);
    p.open = false;
    const e = this.mine.get(p.s);
    // Taken out of order: the first pin still holds the count.
    if (e === undefined || e.pins === null || e.pins[0] !== p) return;
    let i = 1;
    while (i < e.pins.length && !e.pins[i].open) i++;
    if (i === e.pins.length) e.pins = null;
    else e.pins.splice(0, i);
    this.reopened.add(p.s);
    if (this.reopenQueued) return;
    this.reopenQueued = true;
    // At the end of the callback that confirmed (a bus batch): all its confirmations in one count message.
    void resolved.then(this.reopen);
  }

  /**
   * Sessions whose first pin went: their counts move to what their stanzas' effects allow (raw: those effects were
   * published), into this turn's bus batch; then the answers that waited for it go, after that batch is published
   * (the <a/> never ahead of the keeper's count). A session that submitted this turn has its count read at this
   * turn's publish instead (busPublishing), behind what those stanzas caused.
   */
  private readonly reopen = (): void => {
    this.reopenQueued = false;
    for (const s of this.reopened) if (!this.touchedSet.has(s)) this.advance(s, this.mine.get(s)?.raw ?? 0);
    if (this.outCounts.size > 0) this.flush();
    for (const s of this.reopened) this.answer(s);
    this.reopened.clear();
  };

  /** The answers of `s` that no pin holds back go (after this turn's publish), in order. */
  private answer(s: Session): void {
    const e = this.mine.get(s);
    const w = e?.waiting;
    if (e === undefined || w === null || w === undefined) return;
    let i = 0;
    while (i < w.length && (e.pins === null || !upTo(e.pins[0].count, w[i][0]))) this.afterPublish(w[i++][1]);
    if (i === w.length) e.waiting = null;
    else if (i > 0) w.splice(0, i);
  }

  /**
   * Calls `cb` (an XEP-0198 <a h/> of `s`) once no message counted up to `h` waits for its next hop on this host, and
   * after this turn's bus batch is published (Core.afterPublish): the client forgets what <a/> covers, so it never
   * covers more than the keeper is told. Answers go in order: one behind a waiting answer waits too.
   */
  whenCounted(s: Session, h: number, cb: () => void): void {
    const e = this.heldBack(s, h);
    if (e !== null) (e.waiting ??= []).push([h, cb]);
    else this.afterPublish(cb);
  }

  /** `s`'s entry when a pin at or below `h`, or an answer waiting before it, holds an answer of `h` back; else null. */
  private heldBack(s: Session, h: number): Mine | null {
    if (this.pinned.size === 0) return null;
    const e = this.mine.get(s);
    return e !== undefined && (e.waiting !== null || (e.pins !== null && upTo(e.pins[0].count, h))) ? e : null;
  }

  /** Whether whenCounted(s, h, cb) would call `cb` at once: nothing pinned holds `s`'s answers back, and nothing waits in the bus. */
  countedNow(s: Session, h: number): boolean {
    if (this.heldBack(s, h) !== null) return false;
    if (this.host.afterPublish === undefined) return true;
    return this.host.busPending !== undefined && !this.host.busPending();
  }

  private afterPublish(cb: () => void): void {
    if (this.host.afterPublish !== undefined) this.host.afterPublish(cb);
    else cb();
  }

  /** Every pin of `e` goes, and its answers: its session left (ended, or moved on with its count). */
  private unpinAll(e: Mine): void {
    if (e.pins !== null) for (const p of e.pins) this.pinned.delete(p.key);
    e.pins = null;
    e.waiting = null;
  }

  get copying(): boolean {
    return this.keeper !== "";
  }

  replicate(s: Session, n: number, wire: string, receipt: string): void {
    // Alone (no keeper): nothing to copy, and no lookup per message written.
    if (this.keeper === "") return;
    const e = this.mine.get(s);
    if (e === undefined) return;
    if (receipt !== "") {
      const w = workerOf(receipt);
      // Held in custody by a live worker elsewhere: it routes the message again if this worker dies. If it is on this
      // worker's host and the keeper is not, a death of the host takes both: the copy is what survives.
      const self = this.host.workerId;
      if (w !== "" && w !== self && this.liveSet.has(w) && (this.hostOf.get(w) !== this.hostOf.get(self) || !this.keeperElsewhere)) return;
    }
    // The record (and a new keeper's whole set) goes first: a copy is kept only beside its record.
    if (this.reset || this.outKeep.has(s)) this.flush();
    (e.held ??= []).push([n, wire]);
    this.outHeld.push([e.key, n, wire]);
    this.stats.copied++;
    // Into this turn's bus batch, all of the turn's copies in one message: the sender's <a/> waits until
    // that batch is published (Core.afterPublish).
    if (this.heldQueued) return;
    this.heldQueued = true;
    if (this.host.beforePublish !== undefined) this.host.beforePublish(this.sendHeld);
    else this.sendHeld();
  }

  /**
   * Calls `cb` once the copies made so far (replicate) have gone to the bus and it published them: at once when none
   * waits and nothing is unpublished. A confirmation that this worker's session took a message from another worker of
   * its host waits for it (ProxyDaemon.taken): that host's death takes the message's custodian and this session
   * together, and what survives is the copy at the keeper on another host. The host link is written as a publish
   * begins, the keeper's batch on another host last, so the confirmation, in the same publish, would go first; a
   * SIGKILL between the two writes, once the custodian had read it and let its sender's count pass the message, lost it.
   */
  afterCopies(cb: () => void): void {
    if (this.outHeld.length === 0) return this.afterPublish(cb);
    (this.copiesOut ??= []).push(cb);
  }

  /** The copies waited for went to the bus: their confirmations go after its publish. */
  private copiesSent(): void {
    const cbs = this.copiesOut;
    if (cbs === null) return;
    this.copiesOut = null;
    for (const cb of cbs) this.afterPublish(cb);
  }

  /** The turn's copies (those flush has not taken with records) to the keeper, by size. */
  private readonly sendHeld = (): void => {
    this.heldQueued = false;
    // A new keeper's records (and the reset) go first: it keeps a copy only beside its record.
    if (this.reset || this.outKeep.size > 0) return this.flush();
    const held = this.outHeld;
    if (held.length === 0 || this.keeper === "") return this.copiesSent();
    this.outHeld = [];
    const from = this.host.workerId;
    let start = 0;
    let bytes = 0;
    for (let i = 0; i < held.length; i++) {
      if (bytes + held[i][2].length > HELD_BYTES_PER_MESSAGE && i > start) {
        this.host.send(this.keeper, { op: "records", from, reset: false, keep: [], counts: [], drop: [], held: held.slice(start, i), acks: [] });
        start = i;
        bytes = 0;
      }
      bytes += held[i][2].length;
    }
    this.host.send(this.keeper, { op: "records", from, reset: false, keep: [], counts: [], drop: [], held: start === 0 ? held : held.slice(start), acks: [] });
    this.copiesSent();
  };

  acked(s: Session, h: number): void {
    const e = this.mine.get(s);
    if (e === undefined || e.held === null) return;
    let i = 0;
    while (i < e.held.length && upTo(e.held[i][0], h)) i++;
    if (i === 0) return;
    if (i === e.held.length) e.held = null;
    else e.held.splice(0, i);
    this.outAcks.set(s, h);
    this.queue();
  }

  drop(s: Session): void {
    const e = this.mine.get(s);
    if (e === undefined) return;
    // Its stream is gone (ended, or moved on with its counts): no answer to write, no count to hold.
    if (e.pins !== null || e.waiting !== null) this.unpinAll(e);
    this.mine.delete(s);
    this.outKeep.delete(s);
    this.outCounts.delete(s);
    this.outAcks.delete(s);
    this.outDrop.push(e.key);
    this.queue();
  }

  private describe(s: Session): ResumeRecord | null {
    return this.describers.get(s.protocol)?.(s) ?? null;
  }

  private queue(): void {
    if (this.queued) return;
    this.queued = true;
    setImmediate(this.flush);
  }

  /** One turn's changes, to the keeper, in one bus message (a few when a whole set goes to a new keeper). */
  readonly flush = (): void => {
    this.queued = false;
    const keeper = this.keeper;
    const keep: ResumeRecord[] = [];
    const counts: [string, number][] = [];
    const acks: [string, number][] = [];
    const held = this.outHeld;
    this.outHeld = [];
    if (keeper !== "") {
      for (const s of this.outKeep) {
        const e = this.mine.get(s);
        const rec = e === undefined ? null : this.describe(s);
        if (rec === null) continue;
        rec.count = e!.count;
        keep.push(rec);
      }
      for (const s of this.outCounts) {
        const e = this.mine.get(s);
        if (e !== undefined && !this.outKeep.has(s)) counts.push([e.key, e.count]);
      }
      for (const [s, h] of this.outAcks) {
        const e = this.mine.get(s);
        if (e !== undefined) acks.push([e.key, h]);
      }
    }
    const drop = this.outDrop;
    this.outKeep.clear();
    this.outCounts.clear();
    this.outAcks.clear();
    this.outDrop = [];
    if (keeper === "" || (keep.length === 0 && counts.length === 0 && drop.length === 0 && held.length === 0 && acks.length === 0 && !this.reset)) return this.copiesSent();
    let reset = this.reset;
    this.reset = false;
    const from = this.host.workerId;
    // Records first (a copy is kept only beside its record), then copies by size, then counts, acks and drops.
    for (let i = 0; i < keep.length; i += RECORDS_PER_MESSAGE) {
      this.host.send(keeper, { op: "records", from, reset, keep: keep.slice(i, i + RECORDS_PER_MESSAGE), counts: [], drop: [], held: [], acks: [] });
      reset = false;
    }
    let part: [string, number, string][] = [];
    let bytes = 0;
    for (const c of held) {
      if (bytes + c[2].length > HELD_BYTES_PER_MESSAGE && part.length > 0) {
        this.host.send(keeper, { op: "records", from, reset, keep: [], counts: [], drop: [], held: part, acks: [] });
        reset = false;
        part = [];
        bytes = 0;
      }
      part.push(c);
      bytes += c[2].length;
    }
    if (reset || part.length > 0 || counts.length > 0 || drop.length > 0 || acks.length > 0) this.host.send(keeper, { op: "records", from, reset, keep: [], counts, drop, held: part, acks });
    this.copiesSent();
  };

  // ---- membership ----------------------------------------------------------

  /**
   * As a holder: a new keeper (or the old one restarted, or lost touch) gets
   * every record again. As a keeper: the records of a worker that left or
   * restarted are its dead sessions': kept until their window passes. Recalls
   * stop waiting for workers that left.
   */
  membershipChanged(m: Membership, restarted: readonly string[], resynced: readonly string[]): void {
    const live = new Set<string>();
    for (const ids of Object.values(m.hosts)) for (const id of ids) live.add(id);
    this.liveSet = live;
    const hostOf = new Map<string, string>();
    for (const [h, ids] of Object.entries(m.hosts)) for (const id of ids) hostOf.set(id, h);
    this.hostOf = hostOf;
    this.ownHost = hostOf.get(this.host.workerId);
    this.hosts = Object.keys(m.hosts).length;
    const k = keeperOf(this.host.workerId, m);
    this.keeperElsewhere = k !== "" && hostOf.get(k) !== hostOf.get(this.host.workerId);
    // The keeper is on this host now (or there is none): a host's death takes it too, nothing to hold counts back for.
    if (!this.keeperElsewhere && this.pinned.size !== 0) {
      this.pinned.clear();
      for (const [s, e] of this.mine) {
        if (e.pins === null && e.waiting === null) continue;
        e.pins = null;
        this.advance(s, e.raw);
        this.answer(s);
      }
    }
    const fresh = new Set([...restarted, ...resynced]);
    if (k !== this.keeper || fresh.has(k)) {
      if (this.keeper !== "" && this.keeper !== k && live.has(this.keeper)) this.host.send(this.keeper, { op: "records", from: this.host.workerId, reset: true, keep: [], counts: [], drop: [], held: [], acks: [] });
      this.keeper = k;
      this.reset = true;
      this.outHeld = [];
      for (const [s, e] of this.mine) {
        this.outKeep.add(s);
        if (e.held !== null) for (const [n, wire] of e.held) this.outHeld.push([e.key, n, wire]);
      }
      this.queue();
    }
    const gone = new Set(restarted);
    const now = monotonicMs();
    for (const [holder, keys] of this.byHolder) {
      if (live.has(holder) && !gone.has(holder)) continue;
      this.byHolder.delete(holder);
      for (const key of keys) {
        const e = this.kept.get(key);
        if (e === undefined || e.holder !== holder || e.deadline !== Infinity) continue;
        e.deadline = now + e.rec.windowMs;
        this.orphans.add(key);
        this.stats.orphaned++;
      }
    }
    for (const [token, r] of this.recalls) {
      // The record found here names a holder that died or restarted (under the same id) while the others answered:
      // orphaned above, it is taken now, with its copies. Its holder's id is live again after a restart, and a claim
      // there would miss: the client would fail to resume a session this worker can rebuild.
      const b = r.best;
      if (b !== null && b.holder !== "" && (!live.has(b.holder) || gone.has(b.holder)) && this.kept.get(r.ask[1])?.holder === b.holder) {
        const taken = this.lookup(...r.ask);
        if (taken !== null) {
          this.finish(token, taken);
          continue;
        }
      }
      for (const w of r.waiting) if (!live.has(w) || gone.has(w)) r.waiting.delete(w);
      if (r.waiting.size === 0) this.finish(token, r.best);
    }
  }

  // ---- keeper ----------------------------------------------------------------

  onRecords(msg: Extract<BusMessage, { op: "records" }>): void {
    const from = msg.from;
    let keys = this.byHolder.get(from);
    if (msg.reset && keys !== undefined) {
      for (const key of keys) if (this.kept.get(key)?.holder === from) this.kept.delete(key);
      keys.clear();
    }
    for (const rec of msg.keep) {
      if (keys === undefined) this.byHolder.set(from, (keys = new Set()));
      keys.add(rec.key);
      this.orphans.delete(rec.key);
      const before = this.kept.get(rec.key);
      // Sent again (its presence changed): its copies stay.
      const held = before !== undefined && before.holder === from && before.deadline === Infinity ? before.held : [];
      this.kept.set(rec.key, { holder: from, rec, deadline: Infinity, held, lapsed: false });
    }
    for (const [key, n, wire] of msg.held) {
      const e = this.kept.get(key);
      if (e !== undefined && e.holder === from && e.deadline === Infinity) e.held.push([n, wire]);
    }
    for (const [key, count] of msg.counts) {
      const e = this.kept.get(key);
      if (e !== undefined && e.holder === from) e.rec.count = count;
    }
    for (const [key, h] of msg.acks) {
      const e = this.kept.get(key);
      if (e === undefined || e.holder !== from) continue;
      let i = 0;
      while (i < e.held.length && upTo(e.held[i][0], h)) i++;
      if (i > 0) e.held.splice(0, i);
    }
    for (const key of msg.drop) {
      if (this.kept.get(key)?.holder !== from) continue;
      this.kept.delete(key);
      keys?.delete(key);
    }
  }

  onRecall(msg: Extract<BusMessage, { op: "recall" }>): void {
    this.host.send(msg.from, { op: "recalled", token: msg.token, from: this.host.workerId, found: this.lookup(msg.protocol, msg.key, msg.user, msg.h, msg.gone) });
    // The copies may be large: the claimant's client waits for them.
    this.host.flushNow?.();
  }

  /**
   * The record of `key` if it is `user`'s; one whose holder is gone is taken: one resumption rebuilds it.
   * One whose window passed is not resumable: its copies beyond the client's count `h` go on now. `gone`: the
   * asker saw that holder leave, before this worker did; its record is taken as if this worker had seen it too.
   */
  private lookup(protocol: string, key: string, user: string, h: number, gone?: string): Recalled | null {
    const e = this.kept.get(key);
    // Another account's id finds nothing, as an unknown one (XEP-0198 §5: only its owner may resume it).
    if (e === undefined || e.rec.user !== user || e.rec.protocol !== protocol) return null;
    if (e.deadline === Infinity && (gone === undefined || gone !== e.holder)) return { record: e.rec, holder: e.holder };
    this.kept.delete(key);
    this.orphans.delete(key);
    this.byHolder.get(e.holder)?.delete(key);
    if (!e.lapsed) return { record: e.rec, holder: "", held: e.held };
    const after = e.held.filter(([n]) => !upTo(n, h));
    if (after.length > 0) this.leftover(e.rec, after);
    return null;
  }

  /**
   * The TimerDaemon's sweep. Every countEveryMs the keeper hears the counts
   * that moved (a few bytes per session that received anything): nothing is
   * done per stanza, and a count is read only after the bus has published
   * what the stanzas it counts caused (earlier turns), so a resumption never
   * says a stanza was handled whose effect died with its worker; it may say
   * less (those come again from the client: a duplicate at worst). Then records of
   * dead workers whose window passed go. A worker alone (no keeper) reads
   * its counts here too, telling nobody: a keeper that appears gets records
   * whose counts are at most a second behind (a duplicate at worst, never a
   * loss), then counts as stanzas are handled (touched).
   */
  readonly expire = (now: number): void => {
    if (now - this.lastCount >= this.countEveryMs) {
      this.lastCount = now;
      for (const s of this.mine.keys()) {
        // Touched since the last publish: its count may cover stanzas still unpublished (timers run before the
        // turn's publish, and first after a stall): it goes with that publish instead (busPublishing).
        if (this.touchedSet.has(s)) continue;
        const c = this.counters.get(s.protocol)?.(s);
        if (c !== undefined) this.advance(s, c);
      }
      if (this.outCounts.size > 0) this.queue();
    }
    for (const key of this.orphans) {
      const e = this.kept.get(key);
      if (e !== undefined && e.deadline !== Infinity && e.deadline > now) continue;
      if (e !== undefined && e.deadline !== Infinity && !e.lapsed) {
        this.stats.expired++;
        // Its client, back late, fails to resume and says what it received: that much is not sent twice.
        if (e.held.length > 0 && this.graceMs > 0) {
          e.lapsed = true;
          e.deadline = now + this.graceMs;
          continue;
        }
      }
      this.orphans.delete(key);
      if (e !== undefined && e.deadline !== Infinity) {
        this.kept.delete(key);
        if (e.held.length > 0) this.leftover(e.rec, e.held);
      }
    }
  };

  /** Nobody resumed the session: what its client never acknowledged goes to the user's next session, or the store. */
  private leftover(rec: ResumeRecord, held: readonly HeldCopy[]): void {
    const envs = this.leftovers.get(rec.protocol)?.(rec, held) ?? [];
    for (const env of envs) this.host.route(env);
    this.stats.copiesRouted += envs.length;
  }

  // ---- asker -------------------------------------------------------------------

  recall(protocol: string, key: string, user: string, h: number, done: (r: Recalled | null) => void): void {
    this.stats.recalls++;
    const local = this.lookup(protocol, key, user, h);
    const peers = [...this.liveSet].filter((w) => w !== this.host.workerId);
    if ((local !== null && local.holder === "") || peers.length === 0) {
      if (local !== null) this.stats.found++;
      return done(local);
    }
    // Every other worker: resumptions after a death are rare, and the record's keeper may have changed since.
    const token = this.nextToken++;
    const timer = setTimeout(() => this.finish(token, this.recalls.get(token)?.best ?? null), RECALL_TIMEOUT_MS);
    timer.unref();
    this.recalls.set(token, { done, waiting: new Set(peers), best: local, bestFrom: "", taking: false, timer, ask: [protocol, key, user, h] });
    for (const w of peers) this.host.send(w, { op: "recall", protocol, key, user, from: this.host.workerId, token, h });
  }

  onRecalled(msg: Extract<BusMessage, { op: "recalled" }>): void {
    const r = this.recalls.get(msg.token);
    if (r === undefined) return;
    r.waiting.delete(msg.from);
    const f = msg.found;
    // A record whose holder is gone was given to this recall alone: no need to wait for the others.
    if (f !== null && f.holder === "") return this.finish(msg.token, f);
    if (f !== null && (r.best === null || ((f.record.count - r.best.record.count) >>> 0) < 0x8000_0000)) {
      r.best = f;
      r.bestFrom = msg.from;
    }
    if (r.waiting.size === 0) this.finish(msg.token, r.best);
  }

  private finish(token: number, found: Recalled | null): void {
    const r = this.recalls.get(token);
    if (r === undefined) return;
    clearTimeout(r.timer);
    // Its keeper named the record's holder, which this worker has seen leave since (the keeper answered before it saw
    // the same: its heartbeats' timeout runs apart from this worker's by up to one). Rebuilt from that answer, the
    // session would lack the copies of what the dead one had written alone, and the keeper, holding them as an
    // orphan's, would send them on when the window passed, to a client that had them (kill-host: 20 duplicates from
    // offline storage, 30 s later). Asked once more, told the holder is gone, the keeper gives the record up with them.
    const k = r.bestFrom;
    if (found !== null && found.holder !== "" && !this.liveSet.has(found.holder) && !r.taking && k !== "" && this.liveSet.has(k)) {
      r.taking = true;
      r.best = found;
      r.waiting = new Set([k]);
      r.timer = setTimeout(() => this.finish(token, this.recalls.get(token)?.best ?? null), RECALL_TIMEOUT_MS);
      r.timer.unref();
      const [protocol, key, user, h] = r.ask;
      this.host.send(k, { op: "recall", protocol, key, user, from: this.host.workerId, token, h, gone: found.holder });
      this.host.flushNow?.();
      return;
    }
    this.recalls.delete(token);
    if (found !== null) this.stats.found++;
    r.done(found);
  }
}
