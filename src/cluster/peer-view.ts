/**
 * What each peer's heartbeats say it holds of this worker (Beat.holds: for
 * every member it knows, that member's incarnation and generation as it holds
 * them). A worker whose own timer ran late does not renew towards everyone on
 * suspicion (docs/architecture.md, "Membership changes and healing"): a peer
 * that expired it meanwhile welcomes it back when it hears it again, and one
 * that did not kept its bindings. This is the check behind that: a peer whose
 * beats, once it has had time to hear this worker, still do not hold it as it
 * is, for `misses` beats in a row, gets a resync of its own (both sides bind
 * again), and no other peer does. Pure: the caller passes the clock.
 */
export class PeerView {
  private readonly missed = new Map<string, number>();
  /** Beats read before this were made before the peer could have heard this worker as it is now. */
  private settledAt = 0;
  private readonly quietUntil = new Map<string, number>();

  constructor(
    /** How long a peer may take to hear this worker: the heal window (three beats). */
    private readonly windowMs: number,
    private readonly misses = 3,
  ) {}

  /** This worker as peers hold it: a short incarnation tag and the generation. */
  static token(inc: string, gen: number): string {
    return `${inc.slice(0, 8)}.${gen}`;
  }

  /** This worker was late, joined or renewed at `now`: peers' beats before now + windowMs prove nothing. */
  unsettled(now: number): void {
    this.settledAt = Math.max(this.settledAt, now + this.windowMs);
    this.missed.clear();
  }

  /**
   * A beat of peer `id` read at `now`, whose `holds` (undefined: a worker older than the field, which says
   * nothing) names this worker as `mine`, or not at all. True: resync with that peer now.
   */
  heard(id: string, holds: Record<string, string> | undefined, self: string, mine: string, now: number): boolean {
    if (holds === undefined || typeof holds !== "object" || holds === null) return false;
    if (holds[self] === mine) {
      this.missed.delete(id);
      return false;
    }
    if (now < this.settledAt || now < (this.quietUntil.get(id) ?? 0)) return false;
    const n = (this.missed.get(id) ?? 0) + 1;
    if (n < this.misses) {
      this.missed.set(id, n);
      return false;
    }
    this.missed.delete(id);
    // Its beats need a while to show the resync: not asked again before then.
    this.quietUntil.set(id, now + 2 * this.windowMs);
    return true;
  }

  forget(id: string): void {
    this.missed.delete(id);
    this.quietUntil.delete(id);
  }
}
