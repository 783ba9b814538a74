/**
 * XEP-0313 message archives: each user's messages, both directions, kept by
 * the owner worker of the user's bare JID (docs/architecture.md, "Archives").
 * Users are named by their local part, like the XMPP store.
 */

/** One archived message as written (ArchiveWriter). */
export interface ArchiveRow {
  user: string;
  /** The XEP-0359 stanza-id the message was delivered with: unique in the user's archive. */
  id: string;
  /** Bare JID of the other party, and its resource ("" when none). */
  with: string;
  withResource: string;
  /** When the owner archived it (ms since the epoch): the order of the archive. */
  ts: number;
  /** The user sent it. */
  outgoing: boolean;
  /** The message as the recipient got it (from, to, children), without our stanza-id. */
  stanza: string;
}

/** A query on one user's archive (XEP-0313 §4 fields, XEP-0059 paging). */
export interface ArchiveQuery {
  user: string;
  /** Bare JID of the other party; with `withResource`, only that full JID. */
  with?: string;
  withResource?: string;
  /** Inclusive bounds on the archive time, ms. */
  start?: number;
  end?: number;
  /** RSM: the page after this id (forwards) or before it (backwards). */
  after?: string;
  before?: string;
  /** RSM <before/> empty: the last page. */
  last?: boolean;
  /** At most this many (0: only a count). */
  max: number;
}

export interface ArchiveItem {
  id: string;
  ts: number;
  stanza: string;
}

export interface ArchivePage {
  /** Oldest first, whichever way the page was asked. */
  items: ArchiveItem[];
  /** XEP-0313 §5.2 complete: the page was not cut by `max` in the direction asked. */
  complete: boolean;
  /** Matching messages in the whole set; only for max 0 (a count costs a scan). */
  count?: number;
}

/** XEP-0313 §6 preferences: what is archived by default, and JIDs always or never archived. */
export type ArchiveMode = "always" | "never" | "roster";
export interface ArchivePrefs {
  default: ArchiveMode;
  always: string[];
  never: string[];
}

/**
 * A writer's batch as the event loop hands it to a store that makes the rows off the event loop (SQLite's
 * thread): per entry (ArchiveEntry) its text as written, its owner's bare JID, from and to, end to end in
 * `strs` (joined); in `nums`, TEXT_FIELDS numbers per entry: those four lengths in that order (the text's -1: none
 * here, the previous entry's text, the same message archived for the other user), outgoing (1) or not, and
 * the time. A Float64Array is transferred, not copied, and a string is copied as one block: the structured
 * clone of objects or arrays costs the event loop microseconds per row.
 */
export interface TextBatch {
  nums: Float64Array<ArrayBuffer>;
  /** The strings end to end, cut anywhere into pieces (each copied as one block by postMessage). */
  strs: string[];
  /** The preferences were applied already (entries the roster let through): every row is written. */
  decided: boolean;
  defaultMode: ArchiveMode;
  prefsCacheSize: number;
  /** A module (URL) exporting renderWire(text, from, to): { id, text } | null, the protocol's rendering (ArchiveWriterOptions.renderModule). */
  renderModule: string;
}
export const TEXT_FIELDS = 6;

export interface TextResult {
  /** Rows to write after the preferences, and rows added (a (user, id) there already is not). */
  kept: number;
  added: number;
  skipped: number;
  /** Entries whose owner's preferences say "roster" for their contact: [index in the batch, user, contact]; not written. */
  ask: [number, string, string][];
  /** Preferences read from the store for this batch (users not kept). */
  reads: number;
}

export interface ArchiveStore {
  /** Rows in one transaction; a row whose (user, id) is there already is skipped. Resolves to the rows added. */
  append(rows: readonly ArchiveRow[]): Promise<number>;
  /**
   * A writer's batch rendered, filtered by its users' preferences (kept where this is done) and written off
   * the event loop; null when this store cannot (the writer then makes the rows itself and calls append).
   */
  appendTexts?(b: TextBatch): Promise<TextResult> | null;
  /** `user`'s preferences changed (null: anyone's may have): for a store that keeps them (appendTexts). */
  prefsChanged?(user: string | null): void;
  /** A store that gathers appends for a while before it writes them (SQLite's thread): write what it holds now, someone waits for it. */
  hurry?(): void;
  /** One page; null when `after` or `before` names no message of this archive (XEP-0059 §2.6: item-not-found). */
  query(q: ArchiveQuery): Promise<ArchivePage | null>;
  /** Stored preferences of these users (absent: none set). */
  prefs(users: readonly string[]): Promise<Map<string, ArchivePrefs>>;
  setPrefs(user: string, prefs: ArchivePrefs): Promise<void>;
  /** Removes up to `limit` messages archived before `beforeMs` (retention); resolves to how many. */
  expire(beforeMs: number, limit: number): Promise<number>;
  count(user: string): Promise<number>;
  /** Removes an archive's messages archived at or before `upToMs` (a room that ended: src/xmpp/muc/room-mam.ts); resolves to how many. */
  forget(user: string, upToMs: number): Promise<number>;
}
