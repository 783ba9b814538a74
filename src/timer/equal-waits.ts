import { inputMs, monotonicMs } from "./clock.js";

/**
 * Waits that are all equally long, so that their deadlines come in the order
 * they were added: a ring of entries and one timer for all of them, instead
 * of a timer (and its closure) per holder. Used for XEP-0198's held answers
 * and its timed <r/> (one queue each per worker, xmpp/modules/stream-management.ts).
 *
 * An entry is not removed when its holder no longer waits: when it comes due,
 * `due(holder, deadline)` is called and the holder checks that `deadline` is
 * still the one it waits for. Deadlines are whole milliseconds.
 */
export class EqualWaits<T> {
  private holders: (T | undefined)[] = new Array(16);
  private dues: number[] = new Array<number>(16).fill(0);
  /** Index of the oldest entry; entries are holders[head .. head + count) modulo the capacity (a power of two). */
  private head = 0;
  private count = 0;
  private timer: NodeJS.Timeout | null = null;
  /** In expire: entries added meanwhile are found by its own re-arming. */
  private expiring = false;
  /** The timer wakes no sooner than this after its last wake-up: the deadlines may be met up to this late. */
  private readonly slackMs: number;

  constructor(
    readonly delayMs: number,
    private readonly due: (holder: T, deadline: number) => void,
    /** Up to this share of the delay late, so that a busy queue wakes its timer at most every such interval. */
    slack = 0.1,
  ) {
    this.slackMs = Math.max(1, Math.floor(delayMs * slack));
  }

  /**
   * `holder` waits from now (inputMs: within a read, from when it began; so the wait ends no later than from the
   * clock, and deadlines still come in the order added): its deadline, to compare with when it comes due.
   */
  add(holder: T): number {
    const deadline = inputMs() + this.delayMs;
    if (this.count === this.holders.length) this.grow();
    const i = (this.head + this.count) & (this.holders.length - 1);
    this.holders[i] = holder;
    this.dues[i] = deadline;
    this.count++;
    if (this.timer === null && !this.expiring) this.arm(this.delayMs);
    return deadline;
  }

  /** Waiting entries (stale ones included until their deadline). */
  get size(): number {
    return this.count;
  }

  private grow(): void {
    const n = this.holders.length;
    const holders: (T | undefined)[] = new Array(n * 2);
    const dues = new Array<number>(n * 2).fill(0);
    for (let k = 0; k < n; k++) {
      const i = (this.head + k) & (n - 1);
      holders[k] = this.holders[i];
      dues[k] = this.dues[i];
    }
    this.holders = holders;
    this.dues = dues;
    this.head = 0;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(this.expire, Math.max(1, Math.ceil(ms)));
    this.timer.unref();
  }

  private readonly expire = (): void => {
    this.timer = null;
    const now = monotonicMs();
    this.expiring = true;
    try {
      while (this.count > 0) {
        const i = this.head;
        const deadline = this.dues[i];
        if (deadline > now) break;
        const holder = this.holders[i] as T;
        this.holders[i] = undefined;
        // Before `due`, which may add entries and grow the ring (which then starts at the new head).
        this.head = (i + 1) & (this.holders.length - 1);
        this.count--;
        this.due(holder, deadline);
      }
    } finally {
      this.expiring = false;
      // Not sooner than the slack: under load the head is due within a millisecond, and a wake-up per millisecond
      // costs more than the few entries each would serve.
      if (this.count > 0) this.arm(Math.max(this.dues[this.head] - now, this.slackMs));
    }
  };
}
