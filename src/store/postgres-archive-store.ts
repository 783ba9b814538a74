import type pg from "pg";
import type { ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveRow, ArchiveStore } from "./archive-store.js";
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

/** ArchiveStore on PostgreSQL, sharing the accounts' pool. A batch is one INSERT of arrays: one round trip. */
export class PgArchiveStore implements ArchiveStore {
  constructor(private readonly pool: pg.Pool) {}

  /**
   * The client's part kept small: eight arrays, the texts each once (a message's two rows, one per user,
   * share theirs: node-postgres escapes every text into the array literal, on the event loop), and the
   * real JIDs only when a row has one (a room's archive).
   */
  async append(rows: readonly ArchiveRow[]): Promise<number> {
    if (rows.length === 0) return 0;
    const n = rows.length;
    const users = new Array<string>(n);
    const ids = new Array<string>(n);
    const withs = new Array<string>(n);
    const resources = new Array<string>(n);
    const ts = new Array<number>(n);
    const out = new Array<boolean>(n);
    const at = new Array<number>(n);
    let reals: (string | null)[] | null = null;
    const texts: string[] = [];
    let last: string | null = null;
    for (let i = 0; i < n; i++) {
      const x = rows[i];
      users[i] = x.user;
      ids[i] = x.id;
      withs[i] = x.with;
      resources[i] = x.withResource;
      ts[i] = x.ts;
      out[i] = x.outgoing;
      if (x.stanza !== last) texts.push((last = x.stanza));
      at[i] = texts.length;
      if (x.realJid) (reals ??= new Array<string | null>(n).fill(null))[i] = x.realJid;
    }
    // $9 NULL (no row has a real JID): unnest pads the missing column with NULLs.
    const r = await this.pool.query(
      `INSERT INTO archive (username, id, with_jid, with_resource, ts, outgoing, stanza, real_jid)
       SELECT u, i, w, wr, t, o, ($7::text[])[x], rj
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::boolean[], $8::int[], $9::text[]) AS r(u, i, w, wr, t, o, x, rj)
       ON CONFLICT (username, id) DO NOTHING`,
      [users, ids, withs, resources, ts, out, texts, at, reals],
    );
    return r.rowCount ?? 0;
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
