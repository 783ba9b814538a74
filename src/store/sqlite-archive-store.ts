import type Database from "better-sqlite3";
import type { ArchiveItem, ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveRow, ArchiveStore, TextBatch, TextResult } from "./archive-store.js";
import { backward, countSql, pageSql, type Cursor } from "./archive-sql.js";
import { migrate } from "./sqlite-schema.js";
import { retrying } from "./sqlite-retry.js";
import { SqliteArchiveThread } from "./sqlite-archive-thread.js";

/**
 * The archive's schema steps (schema_versions component "archive"); append, never edit.
 * seq orders messages archived in the same millisecond; the indexes serve a page of a
 * user's archive, of one contact, and the retention sweep.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE archive (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     username TEXT NOT NULL,
     id TEXT NOT NULL,
     with_jid TEXT NOT NULL,
     with_resource TEXT NOT NULL DEFAULT '',
     ts INTEGER NOT NULL,
     outgoing INTEGER NOT NULL,
     stanza TEXT NOT NULL
   );
   CREATE UNIQUE INDEX archive_by_id ON archive (username, id);
   CREATE INDEX archive_by_time ON archive (username, ts, seq);
   CREATE INDEX archive_by_with ON archive (username, with_jid, ts, seq);
   CREATE INDEX archive_by_age ON archive (ts);
   CREATE TABLE archive_prefs (
     username TEXT PRIMARY KEY,
     default_mode TEXT NOT NULL,
     always TEXT NOT NULL DEFAULT '[]',
     never TEXT NOT NULL DEFAULT '[]'
   ) WITHOUT ROWID;
   CREATE TRIGGER users_delete_archive AFTER DELETE ON users BEGIN
     DELETE FROM archive WHERE username = old.username;
     DELETE FROM archive_prefs WHERE username = old.username;
   END`,
  // A room's archive keeps its sender's real JID (XEP-0313 §MUC archives; NULL: none, as in every row before).
  `ALTER TABLE archive ADD COLUMN real_jid TEXT`,
];

/** One row's insert, here and on the archive's thread (sqlite-archive-thread-main.ts); real_jid NULL for none. */
export const INSERT_SQL = `INSERT OR IGNORE INTO archive (username, id, with_jid, with_resource, ts, outgoing, stanza, real_jid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`;

export interface PrefsRow {
  username: string;
  default_mode: ArchivePrefs["default"];
  always: string;
  never: string;
}

/** The statement reading one user's preferences (here, and on the archive's thread: sqlite-archive-thread-main.ts). */
export const PREFS_SQL = `SELECT username, default_mode, always, never FROM archive_prefs WHERE username = ?`;

/** The stored preferences of `users` (absent: none set). */
export function readPrefs(st: Database.Statement<[string], PrefsRow>, users: readonly string[]): Map<string, ArchivePrefs> {
  const out = new Map<string, ArchivePrefs>();
  for (const u of users) {
    const r = st.get(u);
    if (r !== undefined) out.set(u, { default: r.default_mode, always: JSON.parse(r.always) as string[], never: JSON.parse(r.never) as string[] });
  }
  return out;
}

/** ArchiveStore in the accounts' SQLite file (open the SqliteStore first: the trigger watches its users table). */
export class SqliteArchiveStore implements ArchiveStore {
  private readonly s;
  private readonly pages = new Map<string, Database.Statement>();

  /** Appends on a thread of their own, started at the first (a file, not ":memory:", which no other connection can share). */
  private thread: SqliteArchiveThread | null = null;
  private closed = false;

  constructor(
    private readonly db: Database.Database,
    private readonly lockTimeoutMs = 5000,
    /** The database file; ":memory:" or absent: appends on the event loop. */
    private readonly path = ":memory:",
  ) {
    migrate(db, "archive", MIGRATIONS);
    this.s = {
      add: db.prepare(INSERT_SQL),
      cursor: db.prepare<[string, string], Cursor>(`SELECT ts, seq FROM archive WHERE username = ? AND id = ?`),
      count: db.prepare<[string], { n: number }>(`SELECT COUNT(*) AS n FROM archive WHERE username = ?`),
      prefs: db.prepare<[string], PrefsRow>(PREFS_SQL),
      setPrefs: db.prepare(`INSERT OR REPLACE INTO archive_prefs (username, default_mode, always, never) VALUES (?, ?, ?, ?)`),
      expire: db.prepare<[number, number]>(`DELETE FROM archive WHERE seq IN (SELECT seq FROM archive WHERE ts < ? ORDER BY ts LIMIT ?)`),
    };
  }

  append(rows: readonly ArchiveRow[]): Promise<number> {
    if (this.path !== ":memory:" && this.path !== "") {
      if (this.closed) return Promise.reject(new Error("archive store closed"));
      return this.started().append(rows);
    }
    const run = this.db.transaction(() => {
      let n = 0;
      for (const r of rows) n += this.s.add.run(r.user, r.id, r.with, r.withResource, r.ts, r.outgoing ? 1 : 0, r.stanza, r.realJid || null).changes;
      return n;
    });
    return retrying(() => run.immediate(), this.lockTimeoutMs);
  }

  hurry(): void {
    this.thread?.hurry();
  }

  /** On a file: rendered, filtered and written on the archive's thread. In memory: null, the writer makes the rows. */
  appendTexts(b: TextBatch): Promise<TextResult> | null {
    if (this.path === ":memory:" || this.path === "") return null;
    if (this.closed) return Promise.reject(new Error("archive store closed"));
    return this.started().appendTexts(b);
  }

  prefsChanged(user: string | null): void {
    this.thread?.prefsChanged(user);
  }

  private started(): SqliteArchiveThread {
    return (this.thread ??= new SqliteArchiveThread(this.path, this.lockTimeoutMs));
  }

  query(q: ArchiveQuery): Promise<ArchivePage | null> {
    return retrying(() => this.page(q), this.lockTimeoutMs);
  }

  private page(q: ArchiveQuery): ArchivePage | null {
    let after: Cursor | null = null;
    let before: Cursor | null = null;
    if (q.after !== undefined && (after = this.s.cursor.get(q.user, q.after) ?? null) === null) return null;
    if (q.before !== undefined && (before = this.s.cursor.get(q.user, q.before) ?? null) === null) return null;
    if (q.max === 0) {
      const c = countSql(q, false);
      return { items: [], complete: false, count: (this.stmt(c.sql).get(...c.args) as { n: number }).n };
    }
    const { sql, args } = pageSql(q, after, before, false);
    const rows = this.stmt(sql).all(...args) as ArchiveItem[];
    const complete = rows.length <= q.max;
    if (!complete) rows.pop();
    if (backward(q)) rows.reverse();
    return { items: rows, complete };
  }

  /** Statements by their text: a handful of shapes (with or not, bounds or not, which way). */
  private stmt(sql: string): Database.Statement {
    let st = this.pages.get(sql);
    if (st === undefined) {
      st = this.db.prepare(sql);
      this.pages.set(sql, st);
    }
    return st;
  }

  prefs(users: readonly string[]): Promise<Map<string, ArchivePrefs>> {
    return retrying(() => readPrefs(this.s.prefs, users), this.lockTimeoutMs);
  }

  setPrefs(user: string, p: ArchivePrefs): Promise<void> {
    return retrying(() => void this.s.setPrefs.run(user, p.default, JSON.stringify(p.always), JSON.stringify(p.never)), this.lockTimeoutMs);
  }

  expire(beforeMs: number, limit: number): Promise<number> {
    return retrying(() => this.s.expire.run(beforeMs, limit).changes, this.lockTimeoutMs);
  }

  count(user: string): Promise<number> {
    return retrying(() => this.s.count.get(user)!.n, this.lockTimeoutMs);
  }

  forget(user: string, upToMs: number): Promise<number> {
    // Rare (a room ending): prepared here rather than with the statements every worker uses.
    return retrying(() => this.stmt("DELETE FROM archive WHERE username = ? AND ts <= ?").run(user, upToMs).changes, this.lockTimeoutMs);
  }

  /** Waits for the batches already on the thread, then ends it. */
  close(): Promise<void> {
    this.closed = true;
    return this.thread?.close() ?? Promise.resolve();
  }
}
