import { monotonicMs } from "../timer/clock.js";

/** How long a worker that left is still told what clients received (Core.receivedUpTo): past a stall, it is dead. */
const DEPARTED_MS = 120_000;

/**
 * Whether this worker was just stopped (SIGSTOP, a starved machine) longer than the others wait for
 * it (the bus's heal window): its TimerDaemon's sweep came that late. For a heal window after that,
 * held messages read from before the stop are dropped (ProxyDaemon.fromBeforeStall): the others took
 * this worker off the ring meanwhile, and their custodians route those messages again.
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
 * clients have left meanwhile, and must hear their clients' counts (Core.receivedUpTo).
 */
export class Departed {
  private readonly at = new Map<string, number>();
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
    for (const [w, at] of this.at) if (live.has(w) || now - at > DEPARTED_MS) this.at.delete(w);
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
}
