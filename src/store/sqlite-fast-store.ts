import type Database from "better-sqlite3";
import type { FastSlot, FastStore, FastToken } from "./fast-store.js";
import { migrate } from "./sqlite-schema.js";
import { retrying } from "./sqlite-retry.js";

/** Schema steps of the component "fast" (XEP-0484); append, never edit. A new password or a deleted account: no tokens. */
const FAST: readonly string[] = [
  `CREATE TABLE fast_tokens (
     username TEXT NOT NULL,
     agent TEXT NOT NULL,
     slot TEXT NOT NULL,
     mechanism TEXT NOT NULL,
     hash BLOB NOT NULL,
     expires_at INTEGER NOT NULL,
     count INTEGER NOT NULL DEFAULT 0,
     PRIMARY KEY (username, agent, slot)
   ) WITHOUT ROWID;
   CREATE TRIGGER users_delete_fast AFTER DELETE ON users BEGIN
     DELETE FROM fast_tokens WHERE username = old.username;
   END;
   CREATE TRIGGER users_password_fast AFTER UPDATE OF sha256_stored, sha1_stored ON users
     WHEN old.sha256_stored IS NOT new.sha256_stored OR old.sha1_stored IS NOT new.sha1_stored BEGIN
     DELETE FROM fast_tokens WHERE username = new.username;
   END`,
];

interface Row {
  slot: string;
  mechanism: string;
  hash: Buffer;
  expires_at: number;
  count: number;
}

/** FastStore in the accounts' SQLite file (opened after SqliteStore: its triggers watch the users table). */
export class SqliteFastStore implements FastStore {
  private readonly s;

  constructor(
    private readonly db: Database.Database,
    private readonly lockTimeoutMs = 5000,
  ) {
    migrate(db, "fast", FAST);
    const p = <P extends unknown[], R = unknown>(sql: string) => db.prepare<P, R>(sql);
    this.s = {
      get: p<[string, string], Row>(`SELECT slot, mechanism, hash, expires_at, count FROM fast_tokens WHERE username = ? AND agent = ?`),
      expired: p<[string, number]>(`DELETE FROM fast_tokens WHERE username = ? AND expires_at <= ?`),
      put: p<[string, string, string, Buffer, number]>(`INSERT OR REPLACE INTO fast_tokens (username, agent, slot, mechanism, hash, expires_at, count) VALUES (?, ?, 'new', ?, ?, ?, 0)`),
      // Clients past the cap, those whose newest token expires first.
      surplus: p<[string, number], { agent: string }>(`SELECT agent FROM fast_tokens WHERE username = ? GROUP BY agent ORDER BY MAX(expires_at) DESC LIMIT -1 OFFSET ?`),
      count: p<[number, string, string, string, number]>(`UPDATE fast_tokens SET count = ? WHERE username = ? AND agent = ? AND slot = ? AND count < ?`),
      dropCurrent: p<[string, string]>(`DELETE FROM fast_tokens WHERE username = ? AND agent = ? AND slot = 'current'`),
      promote: p<[string, string]>(`UPDATE fast_tokens SET slot = 'current' WHERE username = ? AND agent = ? AND slot = 'new'`),
      revokeAgent: p<[string, string]>(`DELETE FROM fast_tokens WHERE username = ? AND agent = ?`),
      revokeUser: p<[string]>(`DELETE FROM fast_tokens WHERE username = ?`),
    };
  }

  private run<T>(fn: () => T): Promise<T> {
    return retrying(fn, this.lockTimeoutMs);
  }

  fastTokens(user: string, agent: string): Promise<FastToken[]> {
    return this.run(() => this.s.get.all(user, agent).map((r) => ({ slot: r.slot as FastSlot, mechanism: r.mechanism, hash: r.hash, expiresAt: r.expires_at, count: r.count })));
  }

  issueFastToken(user: string, agent: string, t: { mechanism: string; hash: Buffer; expiresAt: number }, maxClients: number): Promise<void> {
    return this.run(() =>
      this.db
        .transaction(() => {
          this.s.expired.run(user, Date.now());
          this.s.put.run(user, agent, t.mechanism, t.hash, t.expiresAt);
          for (const r of this.s.surplus.all(user, maxClients)) this.s.revokeAgent.run(user, r.agent);
        })
        .immediate(),
    );
  }

  useFastToken(user: string, agent: string, slot: FastSlot, count: number): Promise<boolean> {
    return this.run(() =>
      this.db
        .transaction(() => {
          if (count > 0 && this.s.count.run(count, user, agent, slot, count).changes === 0) return false;
          if (slot === "new") {
            this.s.dropCurrent.run(user, agent);
            this.s.promote.run(user, agent);
          }
          return true;
        })
        .immediate(),
    );
  }

  revokeFastTokens(user: string, agent?: string): Promise<void> {
    return this.run(() => void (agent === undefined ? this.s.revokeUser.run(user) : this.s.revokeAgent.run(user, agent)));
  }
}
