import { workerOf } from "./receipt.js";

/** Client counts remembered at most: the oldest go first. */
const MAX_COUNTS = 10_000;

/**
 * Counts clients gave (XEP-0198 h, the relay's acks) for sessions whose workers seemed gone
 * (Core.receivedUpTo), by Session.keepKey, for custody's dedup window: a stalled worker that comes
 * back gives back only what its client had not got. And of those, the sessions rebuilt on another
 * worker from their resume records: what the rebuild resent from the keeper's copies is not given
 * back here either (Core.replayedElsewhere).
 */
export class ClientCounts {
  private readonly counts = new Map<string, number>();
  private readonly rebuiltElsewhere = new Map<string, number>();
  /** Callbacks waiting for a key's count (whenNoted). */
  private readonly waiting = new Map<string, (() => void)[]>();

  constructor(
    private readonly self: string,
    private readonly windowMs: number,
  ) {}

  /** Core.clientReceived: -1 when none is known. */
  received(key: string): number {
    return this.counts.get(key) ?? -1;
  }

  /** Core.replayedElsewhere: the stanza numbered `n` of session `key` was resent by its rebuild elsewhere. */
  replayedElsewhere(key: string, receipt: string, n: number): boolean {
    const upTo = this.rebuiltElsewhere.get(key);
    return upTo !== undefined && ((upTo - n) >>> 0) < 0x8000_0000 && (receipt === "" || workerOf(receipt) === this.self);
  }

  /** Kept for the dedup window; `copied`: how far a rebuild on `rebuiltOn` resent. */
  note(key: string, count: number, rebuiltOn = "", copied?: number): void {
    if (this.counts.size >= MAX_COUNTS) this.counts.delete(this.counts.keys().next().value!);
    this.counts.set(key, count);
    if (rebuiltOn !== "" && rebuiltOn !== this.self && copied !== undefined) this.rebuiltElsewhere.set(key, copied);
    setTimeout(() => {
      if (this.counts.get(key) === count) this.counts.delete(key);
      this.rebuiltElsewhere.delete(key);
    }, this.windowMs).unref();
    const ws = this.waiting.get(key);
    if (ws !== undefined) {
      this.waiting.delete(key);
      for (const w of ws) w();
    }
  }

  /** Calls `done` when `key`'s count is noted (at once if it is), or after `ms` whatever comes. */
  whenNoted(key: string, ms: number, done: () => void): void {
    if (this.counts.has(key)) return done();
    let fired = false;
    const fire = () => {
      if (fired) return;
      fired = true;
      clearTimeout(timer);
      const ws = this.waiting.get(key);
      if (ws !== undefined) {
        const rest = ws.filter((w) => w !== fire);
        if (rest.length > 0) this.waiting.set(key, rest);
        else this.waiting.delete(key);
      }
      done();
    };
    const timer = setTimeout(fire, ms);
    timer.unref();
    const ws = this.waiting.get(key);
    if (ws === undefined) this.waiting.set(key, [fire]);
    else ws.push(fire);
  }
}
