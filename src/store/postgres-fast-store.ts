import type pg from "pg";
import type { FastSlot, FastStore, FastToken } from "./fast-store.js";
import type { Component } from "./postgres-schema.js";
import { transaction } from "./postgres.js";

/** XEP-0484 FAST tokens (component "fast"); append steps, never edit. A new password or a deleted account: no tokens. */
export const FAST: Component = {
  name: "fast",
  steps: [
    `CREATE TABLE fast_tokens (
       username text NOT NULL,
       agent text NOT NULL,
       slot text NOT NULL,
       mechanism text NOT NULL,
       hash bytea NOT NULL,
       expires_at bigint NOT NULL,
       count bigint NOT NULL DEFAULT 0,
       PRIMARY KEY (username, agent, slot)
     );
     CREATE FUNCTION users_fast_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       DELETE FROM fast_tokens WHERE username = OLD.username;
       RETURN NULL;
     END $$;
     CREATE TRIGGER users_delete_fast AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION users_fast_tokens();
     CREATE TRIGGER users_password_fast AFTER UPDATE OF sha256_stored, sha1_stored ON users FOR EACH ROW
       WHEN (OLD.sha256_stored IS DISTINCT FROM NEW.sha256_stored OR OLD.sha1_stored IS DISTINCT FROM NEW.sha1_stored)
       EXECUTE FUNCTION users_fast_tokens()`,
  ],
};

/** FastStore on PostgreSQL, sharing the accounts' pool. */
export class PgFastStore implements FastStore {
  constructor(private readonly pool: pg.Pool) {}

  async fastTokens(user: string, agent: string): Promise<FastToken[]> {
    const r = await this.pool.query<{ slot: string; mechanism: string; hash: Buffer; expires_at: string; count: string }>(
      "SELECT slot, mechanism, hash, expires_at, count FROM fast_tokens WHERE username = $1 AND agent = $2",
      [user, agent],
    );
    return r.rows.map((x) => ({ slot: x.slot as FastSlot, mechanism: x.mechanism, hash: x.hash, expiresAt: Number(x.expires_at), count: Number(x.count) }));
  }

  issueFastToken(user: string, agent: string, t: { mechanism: string; hash: Buffer; expiresAt: number }, maxClients: number): Promise<void> {
    return transaction(this.pool, async (c) => {
      await c.query("DELETE FROM fast_tokens WHERE username = $1 AND expires_at <= $2", [user, Date.now()]);
      await c.query(
        `INSERT INTO fast_tokens (username, agent, slot, mechanism, hash, expires_at, count) VALUES ($1, $2, 'new', $3, $4, $5, 0)
         ON CONFLICT (username, agent, slot) DO UPDATE SET mechanism = excluded.mechanism, hash = excluded.hash, expires_at = excluded.expires_at, count = 0`,
        [user, agent, t.mechanism, t.hash, t.expiresAt],
      );
      // Clients past the cap, those whose newest token expires first.
      await c.query(
        `DELETE FROM fast_tokens WHERE username = $1 AND agent IN (
           SELECT agent FROM fast_tokens WHERE username = $1 GROUP BY agent ORDER BY MAX(expires_at) DESC OFFSET $2)`,
        [user, maxClients],
      );
    });
  }

  useFastToken(user: string, agent: string, slot: FastSlot, count: number): Promise<boolean> {
    return transaction(this.pool, async (c) => {
      if (count > 0) {
        const r = await c.query("UPDATE fast_tokens SET count = $1 WHERE username = $2 AND agent = $3 AND slot = $4 AND count < $1", [count, user, agent, slot]);
        if (r.rowCount === 0) return false;
      }
      if (slot === "new") {
        await c.query("DELETE FROM fast_tokens WHERE username = $1 AND agent = $2 AND slot = 'current'", [user, agent]);
        await c.query("UPDATE fast_tokens SET slot = 'current' WHERE username = $1 AND agent = $2 AND slot = 'new'", [user, agent]);
      }
      return true;
    });
  }

  async revokeFastTokens(user: string, agent?: string): Promise<void> {
    if (agent === undefined) await this.pool.query("DELETE FROM fast_tokens WHERE username = $1", [user]);
    else await this.pool.query("DELETE FROM fast_tokens WHERE username = $1 AND agent = $2", [user, agent]);
  }
}
