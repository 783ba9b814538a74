import { monotonicMs } from "../../timer/clock.js";

/** How long an ended session's count is kept: a phone asleep past the window comes back within the hour, or logs in. */
const KEEP_MS = 3_600_000;
/** Ended sessions kept at most per worker (~120 bytes each); the oldest go first. */
const MAX = 50_000;

/**
 * Resumable sessions (XEP-0198) that ended for good on this worker lately, by resumption id: their account and the
 * count of stanzas the server handled from their client. A <resume/> that comes after the end is refused, as ever,
 * but with that count (§5: "the server MAY also include a 'h' attribute"), so that its client sends again only what
 * the server never handled instead of every stanza it had not seen acknowledged: the rest would be delivered twice.
 */
export class EndedSessions {
  /** In the order they ended (a Map keeps insertion order): the oldest first. */
  private readonly byId = new Map<string, { user: string; h: number; at: number }>();

  note(id: string, user: string, h: number, now = monotonicMs()): void {
    this.byId.delete(id);
    for (const [k, e] of this.byId) {
      if (now - e.at <= KEEP_MS && this.byId.size < MAX) break;
      this.byId.delete(k);
    }
    this.byId.set(id, { user, h, at: now });
  }

  /** The count of `user`'s session `id` if it ended here lately; -1 otherwise (another account's id tells nothing). */
  handled(id: string, user: string, now = monotonicMs()): number {
    const e = this.byId.get(id);
    if (e === undefined || e.user !== user || now - e.at > KEEP_MS) return -1;
    return e.h;
  }

  get size(): number {
    return this.byId.size;
  }
}
