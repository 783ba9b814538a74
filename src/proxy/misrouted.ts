import type { Envelope } from "../envelope/envelope.js";

/**
 * What reached this worker as the owner of a user whose owner, by this
 * worker's ring, is another: the sender's worker has seen a membership change
 * this one has not seen yet (or the other way round). Workers see a change up
 * to a heartbeat apart, so it waits here for the change, then travels again by
 * the new ring; if no change comes within the heal window, it goes to the
 * owner this worker's ring names. Never stored offline for want of a binding
 * that was on its way elsewhere. Bounded: past `max`, the caller treats it as
 * before.
 */
export class Misrouted {
  private held: { env: Envelope; at: number }[] = [];
  private head = 0;
  /** Held, and sent on by the ring that named another owner (the window passed with no change). */
  taken = 0;
  passedOn = 0;

  constructor(private readonly max = 50_000) {}

  get size(): number {
    return this.held.length - this.head;
  }

  take(env: Envelope, now: number): boolean {
    if (this.size >= this.max) return false;
    this.held.push({ env, at: now });
    this.taken++;
    return true;
  }

  /** A membership change: everything held travels again, by the new ring. */
  drain(): Envelope[] {
    const out: Envelope[] = [];
    for (let i = this.head; i < this.held.length; i++) out.push(this.held[i].env);
    this.held = [];
    this.head = 0;
    return out;
  }

  /** The sweep: what waited `ms` with no change goes where this worker's ring says. */
  expire(now: number, ms: number, pass: (env: Envelope) => void): void {
    while (this.head < this.held.length && this.held[this.head].at <= now - ms) {
      const { env } = this.held[this.head++];
      this.passedOn++;
      pass(env);
    }
    if (this.head > 1024 && this.head * 2 > this.held.length) {
      this.held = this.held.slice(this.head);
      this.head = 0;
    }
  }
}
