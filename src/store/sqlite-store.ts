import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { AccountStore } from "./store.js";
import type { Credentials } from "./scram.js";
import { migrate } from "./sqlite-schema.js";

interface UserRow {
  salt: Buffer;
  iterations: number;
  sha1_stored: Buffer;
  sha1_server: Buffer;
  sha256_stored: Buffer;
  sha256_server: Buffer;
}

/** The accounts' schema steps (schema_versions component "accounts"); append, never edit. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE users (
     username TEXT PRIMARY KEY,
     salt BLOB NOT NULL,
     iterations INTEGER NOT NULL,
     sha1_stored BLOB NOT NULL,
     sha1_server BLOB NOT NULL,
     sha256_stored BLOB NOT NULL,
     sha256_server BLOB NOT NULL,
     created_at INTEGER NOT NULL
   ) WITHOUT ROWID`,
];

export class SqliteStore implements AccountStore {
  readonly db: Database.Database;
  private readonly stmts;

  constructor(path: string) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("busy_timeout = 5000");
    migrate(this.db, "accounts", MIGRATIONS);
    this.stmts = {
      put: this.db.prepare(
        `INSERT OR REPLACE INTO users (username, salt, iterations, sha1_stored, sha1_server, sha256_stored, sha256_server, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      get: this.db.prepare<[string], UserRow>(
        `SELECT salt, iterations, sha1_stored, sha1_server, sha256_stored, sha256_server FROM users WHERE username = ?`,
      ),
      has: this.db.prepare<[string], { x: number }>(`SELECT 1 AS x FROM users WHERE username = ?`),
      del: this.db.prepare(`DELETE FROM users WHERE username = ?`),
      list: this.db.prepare<[], { username: string }>(`SELECT username FROM users ORDER BY username`),
      ping: this.db.prepare(`SELECT 1 FROM users LIMIT 1`),
    };
  }

  putUser(user: string, c: Credentials): void {
    this.stmts.put.run(user, c.salt, c.iterations, c.sha1.storedKey, c.sha1.serverKey, c.sha256.storedKey, c.sha256.serverKey, Date.now());
  }

  putUsers(entries: Iterable<[string, Credentials]>): number {
    let n = 0;
    this.db.transaction(() => {
      for (const [user, c] of entries) {
        this.putUser(user, c);
        n++;
      }
    })();
    return n;
  }

  deleteUser(user: string): boolean {
    return this.stmts.del.run(user).changes > 0;
  }

  hasUser(user: string): boolean {
    return this.stmts.has.get(user) !== undefined;
  }

  listUsers(): string[] {
    return this.stmts.list.all().map((r) => r.username);
  }

  credentials(user: string): Credentials | undefined {
    const r = this.stmts.get.get(user);
    if (r === undefined) return undefined;
    return {
      salt: r.salt,
      iterations: r.iterations,
      sha1: { storedKey: r.sha1_stored, serverKey: r.sha1_server },
      sha256: { storedKey: r.sha256_stored, serverKey: r.sha256_server },
    };
  }

  /** A cheap read of the database (readiness, /readyz); throws when it cannot be read or is closed. */
  ping(): void {
    this.stmts.ping.get();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
