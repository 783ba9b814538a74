import type { ArchivePrefs, ArchiveStore } from "./archive-store.js";

/** A user with no preferences stored: the writer applies xmpp.mam.defaultMode. Kept too, so that most users cost no read. */
const NONE = null;

/**
 * The archive preferences (XEP-0313 §6) of the users whose archives this worker writes, kept in
 * memory: every batch needed them, and reading them from SQLite on the event loop cost ~10 µs per
 * message (docs/benchmarks.md, "Archives"). A user is read once, with the other users of its batch
 * missing here (one store call), and kept until its preferences change (`forget`, told over the bus
 * by the worker where they were set) or it is the least recently used of more than `max` users.
 */
export class ArchivePrefsCache {
  /** Insertion order is use order: a hit moves the user to the end, the first is dropped first. */
  private readonly kept = new Map<string, ArchivePrefs | typeof NONE>();
  /** Bumped by every `forget`: a read that began before one does not keep what it read (it may be older). */
  private epoch = 0;
  /** Reads from the store (metrics, tests). */
  reads = 0;

  constructor(
    private readonly store: ArchiveStore,
    private readonly max: number,
  ) {}

  get size(): number {
    return this.kept.size;
  }

  /**
   * The preferences of `users` (absent: none set); the users not kept are read in one call. A Map when
   * every user was kept (the usual case: no promise, no store call), else a promise of one.
   */
  lookup(users: Iterable<string>): Map<string, ArchivePrefs> | Promise<Map<string, ArchivePrefs>> {
    const out = new Map<string, ArchivePrefs>();
    let missing: string[] | null = null;
    for (const u of users) {
      const p = this.kept.get(u);
      if (p === undefined) {
        (missing ??= []).push(u);
        continue;
      }
      this.kept.delete(u);
      this.kept.set(u, p);
      if (p !== NONE) out.set(u, p);
    }
    return missing === null ? out : this.read(missing, out);
  }

  private async read(users: string[], out: Map<string, ArchivePrefs>): Promise<Map<string, ArchivePrefs>> {
    const epoch = this.epoch;
    this.reads++;
    const got = await this.store.prefs(users);
    const keep = epoch === this.epoch;
    for (const u of users) {
      const p = got.get(u);
      if (p !== undefined) out.set(u, p);
      if (keep) this.keep(u, p ?? NONE);
    }
    return out;
  }

  private keep(user: string, p: ArchivePrefs | typeof NONE): void {
    this.kept.delete(user);
    this.kept.set(user, p);
    if (this.kept.size > this.max) this.kept.delete(this.kept.keys().next().value as string);
  }

  /** `user`'s preferences changed (here or on another worker); null: anyone's may have (a membership change: told ones may be lost). */
  forget(user: string | null): void {
    this.epoch++;
    if (user === null) this.kept.clear();
    else this.kept.delete(user);
  }
}
