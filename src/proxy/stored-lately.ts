import { monotonicMs } from "../timer/clock.js";

/** How long after storing for a user a binding of one of its live sessions is told to take what was stored. */
const STORED_LATELY_MS = 120_000;
/** Users remembered at most: the oldest go first. */
const MAX_USERS = 100_000;

/**
 * The users this worker stored messages for lately (offline storage, as their owner). A live session
 * that binds here again afterwards (its worker was cut off, stopped or slow to bind again after a ring
 * change, and the owner's hold ran out) was online while they were stored: it is told to take them
 * now (Session.storedWhileAway) rather than at its client's next login.
 */
export class StoredLately {
  private readonly at = new Map<string, number>();

  note(bare: string, now = monotonicMs()): void {
    // Re-set: the Map's order stays the order of the last store, oldest first.
    this.at.delete(bare);
    if (this.at.size >= MAX_USERS) this.at.delete(this.at.keys().next().value!);
    this.at.set(bare, now);
  }

  has(bare: string, now = monotonicMs()): boolean {
    const t = this.at.get(bare);
    if (t === undefined) return false;
    if (now - t <= STORED_LATELY_MS) return true;
    this.at.delete(bare);
    return false;
  }

  /** Swept with the worker's timers: what is older than the window goes. */
  readonly expire = (now: number): void => {
    for (const [bare, t] of this.at) {
      if (now - t <= STORED_LATELY_MS) break;
      this.at.delete(bare);
    }
  };
}
