import type { Session } from "../session/session.js";
import type { SessionRef } from "../channel/user-channel.js";
import type { Logger } from "../log/logger.js";
import { monotonicMs } from "../timer/clock.js";

/** What the Rebinder needs of its worker. */
export interface RebindHost {
  /** Still connected here, bound, and not moved to another worker: worth binding again. */
  current(s: Session): boolean;
  /** The owner of `bare` by this worker's ring now (undefined: no ring). */
  ownerOf(bare: string): string | undefined;
  refOf(s: Session): SessionRef;
  /** One `binds` message to `owner` (this worker included: bound at once). */
  send(owner: string, refs: SessionRef[]): void;
}

export interface RebindOptions {
  /** Sessions looked at per event-loop turn; Infinity: all at once (a bus without a heal window). */
  perTurn: number;
  /** Refs per `binds` bus message. */
  perMessage: number;
}

/** Whether session `s`, whose owner is now `owner`, must bind there again after one membership change. */
export type RebindNeed = (s: Session, owner: string) => boolean;

interface Pass {
  sessions: Session[];
  at: number;
  need: RebindNeed;
  since: number;
}

/**
 * Sessions binding again after a membership change (docs/architecture.md,
 * "Membership changes and healing"), batched and paced: many refs per bus
 * message, and at most `perTurn` sessions looked at per event-loop turn, so
 * that a worker with tens of thousands of sessions keeps serving its clients
 * while it binds them again. Each pass is judged when it runs, by the ring
 * then: a session that ended meanwhile is skipped (its unbind went at once), a
 * session that logged in meanwhile bound itself, and one whose owner changed
 * again binds at its owner of now; a later change adds its own pass. The
 * owner holds what comes for a user with no binding yet for the heal window
 * (RehomeHold), which the paced binds fit well within.
 */
export class Rebinder {
  /** Sessions bound again (refs sent, this worker's own owner included). */
  bound = 0;
  /** `binds` messages that carried them. */
  messages = 0;
  private readonly passes: Pass[] = [];
  private scheduled = false;

  constructor(
    private readonly host: RebindHost,
    private readonly opts: RebindOptions,
    private readonly log: Logger | null = null,
  ) {}

  /** Sessions still to look at, over every pass not done. */
  get backlog(): number {
    let n = 0;
    for (const p of this.passes) n += p.sessions.length - p.at;
    return n;
  }

  /**
   * After a membership change: every session of `sessions` for which `need` holds binds again at its
   * owner. A pass not started yet takes this one's need too, rather than walking the sessions twice
   * (the welcomes of several peers after a stall come within a turn or two).
   */
  add(sessions: Iterable<Session>, need: RebindNeed): void {
    const last = this.passes[this.passes.length - 1];
    if (last !== undefined && last.at === 0) {
      const before = last.need;
      last.need = (s, owner) => before(s, owner) || need(s, owner);
    } else this.passes.push({ sessions: [...sessions], at: 0, need, since: monotonicMs() });
    if (this.opts.perTurn === Infinity) return this.run();
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.turn);
    }
  }

  private readonly turn = (): void => {
    this.scheduled = false;
    this.run();
    if (this.passes.length > 0) {
      this.scheduled = true;
      setImmediate(this.turn);
    }
  };

  /** Up to perTurn sessions, from the oldest pass on; what one owner gets goes in messages of perMessage refs. */
  private run(): void {
    let budget = this.opts.perTurn;
    const out = new Map<string, SessionRef[]>();
    while (budget > 0 && this.passes.length > 0) {
      const p = this.passes[0];
      const end = Math.min(p.sessions.length, p.at + budget);
      budget -= end - p.at;
      for (; p.at < end; p.at++) {
        const s = p.sessions[p.at];
        if (!this.host.current(s)) continue;
        const owner = this.host.ownerOf(s.bare);
        if (owner === undefined || !p.need(s, owner)) continue;
        let refs = out.get(owner);
        if (refs === undefined) out.set(owner, (refs = []));
        refs.push(this.host.refOf(s));
        if (refs.length >= this.opts.perMessage) {
          this.sendTo(owner, refs);
          out.set(owner, []);
        }
      }
      if (p.at >= p.sessions.length) {
        this.passes.shift();
        this.log?.debug("sessions bound again after a membership change", { sessions: p.sessions.length, bound: this.bound, ms: Math.round(monotonicMs() - p.since) });
      }
    }
    for (const [owner, refs] of out) if (refs.length > 0) this.sendTo(owner, refs);
  }

  private sendTo(owner: string, refs: SessionRef[]): void {
    this.bound += refs.length;
    this.messages++;
    this.host.send(owner, refs);
  }
}
