import { monotonicMs } from "../timer/clock.js";
import type { BusMessage } from "../cluster/bus.js";

/** How long a worker that left is still told what clients received (Core.receivedUpTo): past a stall, it is dead. */
const DEPARTED_MS = 120_000;

/**
 * Whether this worker was just stopped (SIGSTOP, a starved machine) longer than the others wait for
 * it (the bus's heal window): its TimerDaemon's sweep came that late. For a heal window after that,
 * held messages read from before the stop are set aside (StallAside, ProxyDaemon.fromBeforeStall): a
 * custodian that took this worker off the ring meanwhile routes them again.
 */
export class StallWatch {
  private lastSweep = monotonicMs();
  private dropHeldUntil = 0;
  /** When the last stall past the heal window was noticed (0: never). */
  private lastStall = 0;

  constructor(private readonly healMs: () => number) {}

  /** The sweep itself may be the first to run after a stop (libuv's timers before its I/O): it notices too. */
  swept(now: number): void {
    const heal = this.healMs();
    if (heal > 0 && now - this.lastSweep >= heal) this.stalled(now, heal);
    this.lastSweep = now;
  }

  /** Monotonic ms until which what is read counts as read right after a stall (justStalled). */
  get until(): number {
    return this.dropHeldUntil;
  }

  private stalled(now: number, heal: number): void {
    this.dropHeldUntil = now + heal;
    this.lastStall = now;
  }

  /** Core.stalledWithin: this worker was stopped past the heal window at most `ms` ago. */
  stalledWithin(ms: number): boolean {
    this.justStalled();
    return this.lastStall > 0 && monotonicMs() - this.lastStall <= ms;
  }

  /** Core.justStalled: the sweep came later than the others wait (healMs), and for healMs after that. */
  justStalled(): boolean {
    const heal = this.healMs();
    if (heal <= 0) return false;
    const now = monotonicMs();
    if (now - this.lastSweep >= heal) this.stalled(now, heal);
    return now < this.dropHeldUntil;
  }
}

/**
 * Workers that left the ring lately, and when: one merely stalled may come back with sessions whose
 * clients have left meanwhile, and must hear their clients' counts (Core.receivedUpTo). And those that
 * came back, and when: what such a worker writes first may have been gathered before its stop
 * (ProxyDaemon.fromDeparted).
 */
export class Departed {
  private readonly at = new Map<string, number>();
  private readonly back = new Map<string, number>();
  private live: Set<string>;

  constructor(
    private readonly self: string,
    live: Set<string>,
  ) {
    this.live = live;
  }

  /** The new membership's live workers; true when a worker that was live is not any more. */
  update(live: Set<string>): boolean {
    const now = monotonicMs();
    let left = false;
    for (const [w, at] of this.at) {
      if (live.has(w)) this.back.set(w, now);
      if (live.has(w) || now - at > DEPARTED_MS) this.at.delete(w);
    }
    for (const [w, at] of this.back) if (now - at > DEPARTED_MS) this.back.delete(w);
    for (const w of this.live) {
      if (live.has(w) || w === this.self) continue;
      this.at.set(w, now);
      left = true;
    }
    this.live = live;
    return left;
  }

  workers(): IterableIterator<string> {
    return this.at.keys();
  }

  /** None off the ring, none back lately: the one question asked per held message read. */
  get none(): boolean {
    return this.at.size === 0 && this.back.size === 0;
  }

  /** `worker` is off the ring here, or came back within `windowMs`. */
  offOrBack(worker: string, now: number, windowMs: number): boolean {
    if (this.at.has(worker)) return true;
    const t = this.back.get(worker);
    if (t === undefined) return false;
    if (now - t <= windowMs) return true;
    this.back.delete(worker);
    return false;
  }
}

/**
 * Held messages (custody) read right after a stall of this worker, set aside until the stall's window
 * closes, in arrival order, with the worker holding each in custody. A custodian that welcomes this
 * worker meanwhile had dropped it (expired it: the others' patience is the same window) and routes what
 * it held again: its messages set aside are dropped, or they would come twice. The others' are read
 * again when the window closes: their custodians never gave up on this worker, and would route them
 * again only after confirmTimeoutMs — or never, if they die meanwhile. Dropping them all, as before,
 * lost messages whose senders had been told they arrived (kill-worker: a worker starved for a second
 * at the start, its peer killed two seconds later). Bounded: past `max`, the caller drops as before.
 */
export class StallAside {
  private list: { custodian: string; msg: BusMessage }[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    /** The window's end now (StallWatch.until): a later stall moves it. */
    private readonly until: () => number,
    /** Called when the window closes, with what is set aside, in arrival order. */
    private readonly release: (msgs: BusMessage[]) => void,
    private readonly max = 50_000,
  ) {}

  get size(): number {
    return this.list.length;
  }

  /** False: full. */
  add(custodian: string, msg: BusMessage): boolean {
    if (this.list.length >= this.max) return false;
    this.list.push({ custodian, msg });
    this.schedule();
    return true;
  }

  /** `custodian` welcomed this worker: what it holds in custody travels again from it. Returns how many were dropped. */
  forget(custodian: string): number {
    const n = this.list.length;
    if (n === 0) return 0;
    this.list = this.list.filter((e) => e.custodian !== custodian);
    return n - this.list.length;
  }

  private schedule(): void {
    if (this.timer !== null) return;
    this.timer = setTimeout(this.closed, Math.max(1, this.until() - monotonicMs()));
    this.timer.unref();
  }

  private readonly closed = (): void => {
    this.timer = null;
    if (this.list.length === 0) return;
    // Stalled again meanwhile: wait for the new end.
    if (monotonicMs() < this.until()) return this.schedule();
    const out = this.list.map((e) => e.msg);
    this.list = [];
    this.release(out);
  };
}
