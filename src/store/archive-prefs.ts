import type { ArchiveMode, ArchivePrefs, ArchiveStore } from "./archive-store.js";

/** A user kept: its preferences (null: none stored, the writer applies xmpp.mam.defaultMode), and whether used since it was last passed over. */
interface Slot {
  p: ArchivePrefs | null;
  used: boolean;
}

/**
 * The archive preferences (XEP-0313 §6) of the users whose archives this worker writes, kept in
 * memory: every batch needed them, and reading them from SQLite on the event loop cost ~10 µs per
 * message (docs/benchmarks.md, "Archives"). A user is read once, with the other users of its batch
 * missing here (one store call), and kept until its preferences change (`forget`, told over the bus
 * by the worker where they were set) or it is dropped, past `max` users, by the clock algorithm (an
 * approximation of least recently used: a hit only sets a flag, where moving the entry to the end of
 * the Map cost a delete and an insert per user and batch).
 */
export class ArchivePrefsCache {
  /** Insertion order is the clock's hand: the first is looked at first when one must go. */
  private readonly kept = new Map<string, Slot>();
  /** Users kept whose preferences are stored (not null): none, and the default is "always": no row needs a look. */
  private stored = 0;
  /** Bumped by every `forget`: a read that began before one does not keep what it read (it may be older). */
  private epoch = 0;
  /** Reads from the store (metrics, tests). */
  reads = 0;

  constructor(
    private readonly store: Pick<ArchiveStore, "prefs">,
    private readonly max: number,
  ) {}

  get size(): number {
    return this.kept.size;
  }

  /** Whether some user kept has preferences stored (else every user kept follows the default). */
  get anyStored(): boolean {
    return this.stored > 0;
  }

  /** `user`'s preferences if kept (null: none stored); undefined: not kept, to be read. */
  get(user: string): ArchivePrefs | null | undefined {
    const s = this.kept.get(user);
    if (s === undefined) return undefined;
    s.used = true;
    return s.p;
  }

  /**
   * The preferences of `users` (absent: none set); the users not kept are read in one call. A Map when
   * every user was kept (no promise, no store call), else a promise of one.
   */
  lookup(users: Iterable<string>): Map<string, ArchivePrefs> | Promise<Map<string, ArchivePrefs>> {
    const out = new Map<string, ArchivePrefs>();
    let missing: string[] | null = null;
    for (const u of users) {
      const p = this.get(u);
      if (p === undefined) (missing ??= []).push(u);
      else if (p !== null) out.set(u, p);
    }
    return missing === null ? out : this.read(missing, out);
  }

  /** Reads `users` from the store (one call) into `out`, and keeps them unless a change was told meanwhile. */
  async read(users: readonly string[], out = new Map<string, ArchivePrefs>()): Promise<Map<string, ArchivePrefs>> {
    const epoch = this.epoch;
    this.reads++;
    const got = await this.store.prefs(users);
    const keep = epoch === this.epoch;
    for (const u of users) {
      const p = got.get(u);
      if (p !== undefined) out.set(u, p);
      if (keep) this.keep(u, p ?? null);
    }
    return out;
  }

  private keep(user: string, p: ArchivePrefs | null): void {
    this.drop(user);
    this.kept.set(user, { p, used: false });
    if (p !== null) this.stored++;
    // The clock: a user used since the hand last passed gets another round (to the end), the first one not used goes.
    for (let turns = this.kept.size; this.kept.size > this.max && turns > 0; turns--) {
      const [first, slot] = this.kept.entries().next().value as [string, Slot];
      if (slot.used && first !== user) {
        slot.used = false;
        this.kept.delete(first);
        this.kept.set(first, slot);
      } else this.drop(first);
    }
    if (this.kept.size > this.max) this.drop(this.kept.keys().next().value as string);
  }

  private drop(user: string): void {
    const s = this.kept.get(user);
    if (s === undefined) return;
    if (s.p !== null) this.stored--;
    this.kept.delete(user);
  }

  /** `user`'s preferences changed (here or on another worker); null: anyone's may have (a membership change: told ones may be lost). */
  forget(user: string | null): void {
    this.epoch++;
    if (user !== null) return this.drop(user);
    this.kept.clear();
    this.stored = 0;
  }
}

/**
 * XEP-0313 §6: is a message with `contact` (a bare JID) archived for a user with preferences `p` (null: none
 * stored, `defaultMode` applies)? "roster": if the contact is in the user's roster, which the caller asks.
 */
export function decide(p: ArchivePrefs | null | undefined, contact: string, defaultMode: ArchiveMode): boolean | "roster" {
  if (p != null) {
    if (p.never.includes(contact)) return false;
    if (p.always.includes(contact)) return true;
  }
  const mode = p?.default ?? defaultMode;
  return mode === "always" ? true : mode === "never" ? false : "roster";
}
