import type { Logger } from "../log/logger.js";

/**
 * What every worker of one cluster must share to compute the same owners
 * (seed 000's two rings): the bus protocol's version, the hash, and vnodes.
 * The subject needs no check: it is part of every NATS subject, so workers
 * with different subjects never meet.
 */
export const BUS_PROTOCOL = 6;
export const ringOf = (vnodes: number): string => `${BUS_PROTOCOL}/murmur3/${vnodes}`;

/** What each worker says on `<subject>.hb`. `inc` changes when a worker restarts under the same id. */
export interface Beat {
  id: string;
  host: string;
  inc: string;
  up: boolean;
  /**
   * Bumped when this worker may have lost touch (its timer ran late past the expiry window, or its NATS
   * connection dropped): peers drop its bindings and it binds again, without counting as restarted.
   */
  gen?: number;
  /** The ring parameters (ringOf); absent from workers older than the field, which count as different. */
  ring?: string;
  /** Every member the sender knows, as it holds it: PeerView.token(inc, gen). Absent from workers older than the field. */
  holds?: Record<string, string>;
  /** A newcomer asks everyone to beat at once instead of on their next tick. */
  hello?: boolean;
  /** Sent by a newcomer that has not joined yet: answered, never made a member. */
  probe?: boolean;
}

/**
 * Start-up safety of one worker (docs/operations.md, "Refused starts"). A newcomer
 * first probes: it says hello marked `probe`, which every worker answers and
 * none counts as a member, and listens for a while. If an answer comes from a
 * worker with other ring parameters, or from another process with its own
 * worker id, it refuses to join: the running cluster changed nothing. Should
 * such a beat come later but within its first three heartbeats as a member,
 * it still refuses (and its host stops); a worker that has run longer only
 * logs, for it is the newcomer that must go. Each beat is judged by admit().
 */
export class JoinGuard {
  /** When this worker joined (left the probe); null while probing. */
  private joinedAt: number | null = null;
  /** Why this worker refuses to be in this cluster; null while it may. */
  refusal: string | null = null;
  /** Called once, for a refusal after the probe (before it, the probe's caller reads `refusal`). */
  onRefuse: ((reason: string) => void) | null = null;
  /** Workers (id and incarnation) already logged, so that each is logged once. */
  private readonly logged = new Set<string>();

  constructor(
    private readonly workerId: string,
    private readonly inc: string,
    readonly ring: string,
    private readonly earlyMs: number,
    private readonly log: Logger | null,
  ) {}

  get joined(): boolean {
    return this.joinedAt !== null;
  }

  join(): void {
    this.joinedAt = Date.now();
  }

  private get early(): boolean {
    return this.joinedAt === null || Date.now() - this.joinedAt < this.earlyMs;
  }

  /** True when the beat may count for membership; false for a foreign, duplicate or probing worker. */
  admit(b: Beat): boolean {
    if (b.ring !== this.ring) {
      const theirs = b.ring ?? "(none: an older version)";
      this.once(b, () => this.log?.error("cluster worker with other ring parameters not let in", { workerId: b.id, host: b.host, theirs, ours: this.ring }));
      // A newcomer's probe is its own reason to go, never ours: it will hear our answer.
      if (!b.probe && b.up && this.early) this.refuse(`worker ${b.id} (host ${b.host}) uses ring parameters ${theirs}, this one ${this.ring} (protocol/hash/cluster.vnodes)`);
      return false;
    }
    if (b.id === this.workerId) {
      const why = `another process (host ${b.host}) already runs worker ${b.id}: the same configuration started twice?`;
      if (b.probe) {
        // Two newcomers at once: the one with the greater incarnation gives way. A running worker only tells.
        if (!this.joined && b.inc < this.inc) this.refuse(why);
        else if (this.joined) this.once(b, () => this.log?.error("a second process with this worker id tried to join; it is refused", { workerId: b.id, host: b.host }));
      } else if (b.up) {
        if (this.early) this.refuse(why);
        else this.once(b, () => this.log?.error("another process has the same worker id; the newer one should have refused to start", { workerId: b.id, host: b.host }));
      }
      return false;
    }
    // A probe changes nothing, ours neither: members are learnt from the answers to the hello that joins.
    return b.probe !== true && this.joined;
  }

  private once(b: Beat, f: () => void): void {
    const k = `${b.id} ${b.inc}`;
    if (this.logged.has(k)) return;
    this.logged.add(k);
    f();
  }

  private refuse(reason: string): void {
    if (this.refusal !== null) return;
    this.refusal = reason;
    if (this.joined) {
      this.log?.error("refusing to stay in the cluster", { reason });
      this.onRefuse?.(reason);
    }
  }
}
