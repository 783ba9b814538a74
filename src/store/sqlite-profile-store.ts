import type Database from "better-sqlite3";
import type { ProfileStore } from "./profile-store.js";
import { migrate } from "./sqlite-schema.js";
import { retrying } from "./sqlite-retry.js";

/** Schema steps of the components "blocking" (XEP-0191) and "vcard" (XEP-0054); append, never edit. */
const BLOCKING: readonly string[] = [
  `CREATE TABLE blocklist (
     username TEXT NOT NULL,
     jid TEXT NOT NULL,
     PRIMARY KEY (username, jid)
   ) WITHOUT ROWID;
   CREATE INDEX blocklist_by_jid ON blocklist (jid);
   CREATE TRIGGER users_delete_blocking AFTER DELETE ON users BEGIN
     DELETE FROM blocklist WHERE username = old.username;
   END`,
];
const VCARD: readonly string[] = [
  `CREATE TABLE vcard (
     username TEXT PRIMARY KEY,
     vcard TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE TRIGGER users_delete_vcard AFTER DELETE ON users BEGIN
     DELETE FROM vcard WHERE username = old.username;
   END`,
];

/** ProfileStore in the accounts' SQLite file (opened after SqliteStore: its triggers watch the users table). */
export class SqliteProfileStore implements ProfileStore {
  private readonly s;

  constructor(
    private readonly db: Database.Database,
    private readonly lockTimeoutMs = 5000,
  ) {
    migrate(db, "blocking", BLOCKING);
    migrate(db, "vcard", VCARD);
    const p = <P extends unknown[], R = unknown>(sql: string) => db.prepare<P, R>(sql);
    this.s = {
      list: p<[string], { jid: string }>(`SELECT jid FROM blocklist WHERE username = ?`),
      count: p<[string], { n: number }>(`SELECT COUNT(*) AS n FROM blocklist WHERE username = ?`),
      has: p<[string, string], { x: number }>(`SELECT 1 AS x FROM blocklist WHERE username = ? AND jid = ?`),
      add: p<[string, string]>(`INSERT OR IGNORE INTO blocklist (username, jid) VALUES (?, ?)`),
      del: p<[string, string]>(`DELETE FROM blocklist WHERE username = ? AND jid = ?`),
      clear: p<[string]>(`DELETE FROM blocklist WHERE username = ?`),
      // The bare JID, and its full JIDs as the range ['bare/', 'bare0') ('0' follows '/'): the index serves both.
      blockers: p<[string, string, string], { username: string; jid: string }>(`SELECT username, jid FROM blocklist WHERE jid = ? OR (jid >= ? AND jid < ?)`),
      vcard: p<[string], { vcard: string }>(`SELECT vcard FROM vcard WHERE username = ?`),
      putVcard: p<[string, string]>(`INSERT OR REPLACE INTO vcard (username, vcard) VALUES (?, ?)`),
      delVcard: p<[string]>(`DELETE FROM vcard WHERE username = ?`),
    };
  }

  private run<T>(fn: () => T): Promise<T> {
    return retrying(fn, this.lockTimeoutMs);
  }

  blocklist(user: string): Promise<string[]> {
    return this.run(() => this.s.list.all(user).map((r) => r.jid));
  }

  block(user: string, jids: readonly string[], cap: number): Promise<boolean> {
    return this.run(() =>
      this.db
        .transaction(() => {
          const fresh = new Set(jids.filter((j) => this.s.has.get(user, j) === undefined));
          if (this.s.count.get(user)!.n + fresh.size > cap) return false;
          for (const j of fresh) this.s.add.run(user, j);
          return true;
        })
        .immediate(),
    );
  }

  unblock(user: string, jids: readonly string[] | null): Promise<string[]> {
    return this.run(() =>
      this.db
        .transaction(() => {
          if (jids === null) {
            const all = this.s.list.all(user).map((r) => r.jid);
            this.s.clear.run(user);
            return all;
          }
          return jids.filter((j) => this.s.del.run(user, j).changes > 0);
        })
        .immediate(),
    );
  }

  blockers(bare: string): Promise<{ user: string; jid: string }[]> {
    return this.run(() => this.s.blockers.all(bare, `${bare}/`, `${bare}0`).map((r) => ({ user: r.username, jid: r.jid })));
  }

  blockingAtLogin(user: string, bare: string): Promise<{ items: string[]; blockers: { user: string; jid: string }[] }> {
    return this.run(() => ({
      items: this.s.list.all(user).map((r) => r.jid),
      blockers: this.s.blockers.all(bare, `${bare}/`, `${bare}0`).map((r) => ({ user: r.username, jid: r.jid })),
    }));
  }

  vcard(user: string): Promise<string | null> {
    return this.run(() => this.s.vcard.get(user)?.vcard ?? null);
  }

  setVcard(user: string, xml: string | null): Promise<void> {
    return this.run(() => void (xml === null ? this.s.delVcard.run(user) : this.s.putVcard.run(user, xml)));
  }
}
