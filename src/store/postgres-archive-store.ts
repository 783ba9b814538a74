import type pg from "pg";
import type { ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveRow, ArchiveStore, TextBatch, TextResult } from "./archive-store.js";
import type { TextRow } from "./archive-text-rows.js";
import { ArchiveThread } from "./archive-thread.js";
import type { PostgresConfig } from "./postgres.js";
import { backward, countSql, pageSql, type Cursor } from "./archive-sql.js";
import type { Component } from "./postgres-schema.js";

/** The archive's schema steps (component "archive"); append, never edit. As in SQLite (sqlite-archive-store.ts). */
export const ARCHIVE: Component = {
  name: "archive",
  steps: [
    `CREATE TABLE archive (
       seq bigserial PRIMARY KEY,
       username text NOT NULL,
       id text NOT NULL,
       with_jid text NOT NULL,
       with_resource text NOT NULL DEFAULT '',
       ts bigint NOT NULL,
       outgoing boolean NOT NULL,
       stanza text NOT NULL
     );
     CREATE UNIQUE INDEX archive_by_id ON archive (username, id);
     CREATE INDEX archive_by_time ON archive (username, ts, seq);
     CREATE INDEX archive_by_with ON archive (username, with_jid, ts, seq);
     CREATE INDEX archive_by_age ON archive (ts);
     CREATE TABLE archive_prefs (
       username text PRIMARY KEY,
       default_mode text NOT NULL,
       always jsonb NOT NULL DEFAULT '[]',
       never jsonb NOT NULL DEFAULT '[]'
     );
     CREATE FUNCTION users_delete_archive() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       DELETE FROM archive WHERE username = OLD.username;
       DELETE FROM archive_prefs WHERE username = OLD.username;
       RETURN NULL;
     END $$;
     CREATE TRIGGER users_delete_archive AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION users_delete_archive()`,
    // A room's archive keeps its sender's real JID (XEP-0313 §MUC archives; NULL: none). No default: no table rewrite.
    `ALTER TABLE archive ADD COLUMN real_jid text`,
  ],
};

/**
 * Rows in one INSERT of arrays: one round trip. The client's part kept small: eight arrays, the texts each once (a
 * message's two rows, one per user, share theirs: node-postgres escapes every text into the array literal), and
 * the real JIDs (`reals`, by row) only when a row has one (a room's archive).
 */
export async function insertRows(db: pg.Pool, rows: readonly TextRow[], reals: readonly (string | null)[] | null = null): Promise<number> {
  if (rows.length === 0) return 0;
  const n = rows.length;
  const users = new Array<string>(n);
  const ids = new Array<string>(n);
  const withs = new Array<string>(n);
  const resources = new Array<string>(n);
  const ts = new Array<number>(n);
  const out = new Array<boolean>(n);
  const at = new Array<number>(n);
  const texts: string[] = [];
  let last: string | null = null;
  for (let i = 0; i < n; i++) {
    const x = rows[i];
    users[i] = x[0];
    ids[i] = x[1];
    withs[i] = x[2];
    resources[i] = x[3];
    ts[i] = x[4];
    out[i] = x[5] === 1;
    if (x[6] !== last) texts.push((last = x[6]));
    at[i] = texts.length;
  }
  // $9 NULL (no row has a real JID): unnest pads the missing column with NULLs.
  const r = await db.query(
    `INSERT INTO archive (username, id, with_jid, with_resource, ts, outgoing, stanza, real_jid)
     SELECT u, i, w, wr, t, o, ($7::text[])[x], rj
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::boolean[], $8::int[], $9::text[]) AS r(u, i, w, wr, t, o, x, rj)
     ON CONFLICT (username, id) DO NOTHING`,
    [users, ids, withs, resources, ts, out, texts, at, reals],
  );
  return r.rowCount ?? 0;
}

/**
 * ArchiveStore on PostgreSQL, sharing the accounts' pool. A writer's batches (appendTexts) go to a thread of
 * their own with its own connection (postgres-archive-thread-main.ts), which makes the rows and runs the INSERT:
 * rendering, preferences and node-postgres's arrays off the event loop. Given no config (tests of the SQL
 * alone), the writer makes the rows on the event loop and calls append.
 */
export class PgArchiveStore implements ArchiveStore {
  private thread: ArchiveThread | null = null;
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly config: PostgresConfig | null = null,
  ) {}

  /** Rows made on the event loop (a room's archive: src/xmpp/muc/room-mam.ts), in one INSERT. */
  append(rows: readonly ArchiveRow[]): Promise<number> {
    const reals = rows.some((r) => r.realJid) ? rows.map((r) => r.realJid || null) : null;
    return insertRows(this.pool, rows.map((r): TextRow => [r.user, r.id, r.with, r.withResource, r.ts, r.outgoing ? 1 : 0, r.stanza]), reals);
  }

  appendTexts(b: TextBatch): Promise<TextResult> | null {
    if (this.config === null) return null;
    if (this.closed) return Promise.reject(new Error("archive store closed"));
    this.thread ??= new ArchiveThread(new URL("./postgres-archive-thread-main.js", import.meta.url), { config: this.config });
    return this.thread.appendTexts(b);
  }

  prefsChanged(user: string | null): void {
    this.thread?.prefsChanged(user);
  }

  /** Waits for the batches already on the thread, then ends it (and its connection). */
  close(): Promise<void> {
    this.closed = true;
    return this.thread?.close() ?? Promise.resolve();
  }

  private async cursor(user: string, id: string): Promise<Cursor | null> {
    const r = await this.pool.query<{ ts: string; seq: string }>("SELECT ts, seq FROM archive WHERE username = $1 AND id = $2", [user, id]);
    return r.rows.length === 0 ? null : { ts: Number(r.rows[0].ts), seq: Number(r.rows[0].seq) };
  }

  async query(q: ArchiveQuery): Promise<ArchivePage | null> {
    let after: Cursor | null = null;
    let before: Cursor | null = null;
    if (q.after !== undefined && (after = await this.cursor(q.user, q.after)) === null) return null;
    if (q.before !== undefined && (before = await this.cursor(q.user, q.before)) === null) return null;
    if (q.max === 0) {
      const c = countSql(q, true);
      const r = await this.pool.query<{ n: string }>(c.sql, c.args);
      return { items: [], complete: false, count: Number(r.rows[0].n) };
    }
    const { sql, args } = pageSql(q, after, before, true);
    const rows = (await this.pool.query<{ id: string; ts: string; stanza: string; realJid: string | null }>(sql, args)).rows.map((r) => ({ id: r.id, ts: Number(r.ts), stanza: r.stanza, realJid: r.realJid }));
    const complete = rows.length <= q.max;
    if (!complete) rows.pop();
    if (backward(q)) rows.reverse();
    return { items: rows, complete };
  }

  async prefs(users: readonly string[]): Promise<Map<string, ArchivePrefs>> {
    const out = new Map<string, ArchivePrefs>();
    if (users.length === 0) return out;
    const r = await this.pool.query<{ username: string; default_mode: ArchivePrefs["default"]; always: string[]; never: string[] }>(
      "SELECT username, default_mode, always, never FROM archive_prefs WHERE username = ANY($1::text[])",
      [users],
    );
    for (const row of r.rows) out.set(row.username, { default: row.default_mode, always: row.always, never: row.never });
    return out;
  }

  async setPrefs(user: string, p: ArchivePrefs): Promise<void> {
    await this.pool.query(
      `INSERT INTO archive_prefs (username, default_mode, always, never) VALUES ($1, $2, $3::jsonb, $4::jsonb)
       ON CONFLICT (username) DO UPDATE SET default_mode = excluded.default_mode, always = excluded.always, never = excluded.never`,
      [user, p.default, JSON.stringify(p.always), JSON.stringify(p.never)],
    );
  }

  async expire(beforeMs: number, limit: number): Promise<number> {
    const r = await this.pool.query("DELETE FROM archive WHERE seq IN (SELECT seq FROM archive WHERE ts < $1 ORDER BY ts LIMIT $2)", [beforeMs, limit]);
    return r.rowCount ?? 0;
  }

  async forget(user: string, upToMs: number): Promise<number> {
    const r = await this.pool.query("DELETE FROM archive WHERE username = $1 AND ts <= $2", [user, upToMs]);
    return r.rowCount ?? 0;
  }

  async count(user: string): Promise<number> {
    const r = await this.pool.query<{ n: string }>("SELECT count(*) AS n FROM archive WHERE username = $1", [user]);
    return Number(r.rows[0].n);
  }
}
