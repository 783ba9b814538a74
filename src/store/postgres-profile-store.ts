import type pg from "pg";
import type { ProfileStore } from "./profile-store.js";
import type { Component } from "./postgres-schema.js";
import { transaction } from "./postgres.js";

/** XEP-0191 block lists (component "blocking"); append steps, never edit. */
export const BLOCKING: Component = {
  name: "blocking",
  steps: [
    `CREATE TABLE blocklist (
       username text NOT NULL,
       jid text NOT NULL,
       PRIMARY KEY (username, jid)
     );
     CREATE INDEX blocklist_by_jid ON blocklist (jid COLLATE "C");
     CREATE FUNCTION users_delete_blocking() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       DELETE FROM blocklist WHERE username = OLD.username;
       RETURN NULL;
     END $$;
     CREATE TRIGGER users_delete_blocking AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION users_delete_blocking()`,
  ],
};

/** XEP-0054 vCards (component "vcard"); append steps, never edit. */
export const VCARD: Component = {
  name: "vcard",
  steps: [
    `CREATE TABLE vcard (
       username text PRIMARY KEY,
       vcard text NOT NULL
     );
     CREATE FUNCTION users_delete_vcard() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       DELETE FROM vcard WHERE username = OLD.username;
       RETURN NULL;
     END $$;
     CREATE TRIGGER users_delete_vcard AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION users_delete_vcard()`,
  ],
};

/** ProfileStore on PostgreSQL, sharing the accounts' pool. */
export class PgProfileStore implements ProfileStore {
  constructor(private readonly pool: pg.Pool) {}

  async blocklist(user: string): Promise<string[]> {
    return (await this.pool.query<{ jid: string }>("SELECT jid FROM blocklist WHERE username = $1", [user])).rows.map((r) => r.jid);
  }

  block(user: string, jids: readonly string[], cap: number): Promise<boolean> {
    return transaction(this.pool, async (c) => {
      // Two blocks of one user at once (two resources) must not pass the cap together: the row lock on the
      // user serializes them (the users row exists for any user who can log in).
      await c.query("SELECT 1 FROM users WHERE username = $1 FOR UPDATE", [user]);
      const have = (await c.query<{ jid: string }>("SELECT jid FROM blocklist WHERE username = $1", [user])).rows.map((r) => r.jid);
      const known = new Set(have);
      const fresh = [...new Set(jids)].filter((j) => !known.has(j));
      if (have.length + fresh.length > cap) return false;
      if (fresh.length > 0) await c.query("INSERT INTO blocklist (username, jid) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING", [user, fresh]);
      return true;
    });
  }

  async unblock(user: string, jids: readonly string[] | null): Promise<string[]> {
    const r =
      jids === null
        ? await this.pool.query<{ jid: string }>("DELETE FROM blocklist WHERE username = $1 RETURNING jid", [user])
        : await this.pool.query<{ jid: string }>("DELETE FROM blocklist WHERE username = $1 AND jid = ANY($2::text[]) RETURNING jid", [user, [...jids]]);
    return r.rows.map((x) => x.jid);
  }

  async blockers(bare: string): Promise<{ user: string; jid: string }[]> {
    // Byte order (COLLATE "C", as the index): the full JIDs are the range ['bare/', 'bare0').
    const r = await this.pool.query<{ username: string; jid: string }>(
      `SELECT username, jid FROM blocklist WHERE jid = $1 OR (jid COLLATE "C" >= $2 AND jid COLLATE "C" < $3)`,
      [bare, `${bare}/`, `${bare}0`],
    );
    return r.rows.map((x) => ({ user: x.username, jid: x.jid }));
  }

  async blockingAtLogin(user: string, bare: string): Promise<{ items: string[]; blockers: { user: string; jid: string }[] }> {
    const r = await this.pool.query<{ mine: boolean; username: string; jid: string }>(
      `SELECT true AS mine, username, jid FROM blocklist WHERE username = $1
       UNION ALL
       SELECT false, username, jid FROM blocklist WHERE jid = $2 OR (jid COLLATE "C" >= $3 AND jid COLLATE "C" < $4)`,
      [user, bare, `${bare}/`, `${bare}0`],
    );
    const items: string[] = [];
    const blockers: { user: string; jid: string }[] = [];
    for (const x of r.rows) {
      if (x.mine) items.push(x.jid);
      else blockers.push({ user: x.username, jid: x.jid });
    }
    return { items, blockers };
  }

  async vcard(user: string): Promise<string | null> {
    return (await this.pool.query<{ vcard: string }>("SELECT vcard FROM vcard WHERE username = $1", [user])).rows[0]?.vcard ?? null;
  }

  async setVcard(user: string, xml: string | null): Promise<void> {
    if (xml === null) await this.pool.query("DELETE FROM vcard WHERE username = $1", [user]);
    else await this.pool.query("INSERT INTO vcard (username, vcard) VALUES ($1, $2) ON CONFLICT (username) DO UPDATE SET vcard = excluded.vcard", [user, xml]);
  }
}
