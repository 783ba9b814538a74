import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { Storage } from "./store.js";
import type { Credentials } from "./scram.js";
import { migrate } from "./sqlite-schema.js";
import { BUSY_TIMEOUT_MS, retrying } from "./sqlite-retry.js";
import { SqliteXmppStore } from "./sqlite-xmpp-store.js";
import { SqliteProfileStore } from "./sqlite-profile-store.js";
import { SqliteFastStore } from "./sqlite-fast-store.js";
import { SqliteArchiveStore } from "./sqlite-archive-store.js";
import { SqlitePepStore } from "./sqlite-pep-store.js";
import { SqliteMucStore } from "./sqlite-muc-store.js";
import { SqliteMucDirectory } from "./sqlite-muc-directory.js";

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

/**
 * The embedded store: one SQLite file (WAL) holding the accounts and, beside
 * them, the XMPP store's tables (`xmpp`, made on first use). Each call runs at
 * once on the caller's thread; a write that finds the file locked by another
 * process is tried again on a timer (sqlite-retry.ts) for up to `lockTimeoutMs`.
 */
export class SqliteStore implements Storage {
  readonly kind = "sqlite";
  readonly db: Database.Database;
  private readonly stmts;
  private xmppStore: SqliteXmppStore | null = null;
  private profileStore: SqliteProfileStore | null = null;
  private archiveStore: SqliteArchiveStore | null = null;
  private pepStore: SqlitePepStore | null = null;
  private fastStore: SqliteFastStore | null = null;
  private mucStore: SqliteMucStore | null = null;
  private mucDirectoryStore: SqliteMucDirectory | null = null;

  constructor(
    private readonly path: string,
    private readonly lockTimeoutMs = 5000,
  ) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    // Schema steps at start wait for each other across processes (nothing is served yet)…
    this.db.pragma(`busy_timeout = ${Math.max(lockTimeoutMs, 1000)}`);
    migrate(this.db, "accounts", MIGRATIONS);
    // …serving never sleeps on the lock: sqlite-retry.ts.
    this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    this.stmts = {
      put: this.db.prepare(
        `INSERT INTO users (username, salt, iterations, sha1_stored, sha1_server, sha256_stored, sha256_server, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (username) DO UPDATE SET salt = excluded.salt, iterations = excluded.iterations,
           sha1_stored = excluded.sha1_stored, sha1_server = excluded.sha1_server,
           sha256_stored = excluded.sha256_stored, sha256_server = excluded.sha256_server`,
      ),
      get: this.db.prepare<[string], UserRow>(
        `SELECT salt, iterations, sha1_stored, sha1_server, sha256_stored, sha256_server FROM users WHERE username = ?`,
      ),
      add: this.db.prepare(
        `INSERT INTO users (username, salt, iterations, sha1_stored, sha1_server, sha256_stored, sha256_server, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (username) DO NOTHING`,
      ),
      has: this.db.prepare<[string], { x: number }>(`SELECT 1 AS x FROM users WHERE username = ?`),
      del: this.db.prepare(`DELETE FROM users WHERE username = ?`),
      list: this.db.prepare<[], { username: string }>(`SELECT username FROM users ORDER BY username`),
      ping: this.db.prepare(`SELECT 1 FROM users LIMIT 1`),
    };
  }

  /** The XMPP tables in this file; their schema steps run on first use. */
  get xmpp(): SqliteXmppStore {
    this.xmppStore ??= this.withStartLock(() => new SqliteXmppStore(this.db, this.lockTimeoutMs));
    return this.xmppStore;
  }

  /** Block lists and vCards in this file; their schema steps run on first use. */
  get profile(): SqliteProfileStore {
    this.profileStore ??= this.withStartLock(() => new SqliteProfileStore(this.db, this.lockTimeoutMs));
    return this.profileStore;
  }

  /** The archive's tables in this file (XEP-0313); their schema steps run on first use. */
  get archive(): SqliteArchiveStore {
    this.archiveStore ??= this.withStartLock(() => new SqliteArchiveStore(this.db, this.lockTimeoutMs, this.path));
    return this.archiveStore;
  }

  /** XEP-0163 nodes and items in this file; their schema steps run on first use. */
  get pep(): SqlitePepStore {
    this.pepStore ??= this.withStartLock(() => new SqlitePepStore(this.db, this.lockTimeoutMs));
    return this.pepStore;
  }

  /** XEP-0484 FAST tokens in this file; their schema steps run on first use. */
  get fast(): SqliteFastStore {
    this.fastStore ??= this.withStartLock(() => new SqliteFastStore(this.db, this.lockTimeoutMs));
    return this.fastStore;
  }

  /** XEP-0045 persistent rooms in this file; their schema steps run on first use. */
  get muc(): SqliteMucStore {
    this.mucStore ??= this.withStartLock(() => new SqliteMucStore(this.db, this.lockTimeoutMs));
    return this.mucStore;
  }

  /** XEP-0045 §6.3 public rooms in this file; their schema steps run on first use. */
  get mucDirectory(): SqliteMucDirectory {
    this.mucDirectoryStore ??= this.withStartLock(() => new SqliteMucDirectory(this.db, this.lockTimeoutMs));
    return this.mucDirectoryStore;
  }

  private withStartLock<T>(fn: () => T): T {
    this.db.pragma(`busy_timeout = ${Math.max(this.lockTimeoutMs, 1000)}`);
    try {
      return fn();
    } finally {
      this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    }
  }

  private run<T>(fn: () => T): Promise<T> {
    return retrying(fn, this.lockTimeoutMs);
  }

  private putSync(user: string, c: Credentials): void {
    this.stmts.put.run(user, c.salt, c.iterations, c.sha1.storedKey, c.sha1.serverKey, c.sha256.storedKey, c.sha256.serverKey, Date.now());
  }

  putUser(user: string, c: Credentials): Promise<void> {
    return this.run(() => this.putSync(user, c));
  }

  putUsers(entries: Iterable<[string, Credentials]>): Promise<number> {
    const list = [...entries];
    return this.run(() => {
      this.db.transaction(() => {
        for (const [user, c] of list) this.putSync(user, c);
      }).immediate();
      return list.length;
    });
  }

  addUser(user: string, c: Credentials): Promise<boolean> {
    return this.run(() => this.stmts.add.run(user, c.salt, c.iterations, c.sha1.storedKey, c.sha1.serverKey, c.sha256.storedKey, c.sha256.serverKey, Date.now()).changes > 0);
  }

  deleteUser(user: string): Promise<boolean> {
    return this.run(() => this.stmts.del.run(user).changes > 0);
  }

  hasUser(user: string): Promise<boolean> {
    return this.run(() => this.stmts.has.get(user) !== undefined);
  }

  listUsers(): Promise<string[]> {
    return this.run(() => this.stmts.list.all().map((r) => r.username));
  }

  credentials(user: string): Promise<Credentials | undefined> {
    return this.run(() => {
      const r = this.stmts.get.get(user);
      if (r === undefined) return undefined;
      return {
        salt: r.salt,
        iterations: r.iterations,
        sha1: { storedKey: r.sha1_stored, serverKey: r.sha1_server },
        sha256: { storedKey: r.sha256_stored, serverKey: r.sha256_server },
      };
    });
  }

  /** A cheap read of the database (readiness, /readyz); rejects when it cannot be read or is closed. */
  ping(): Promise<void> {
    return this.run(() => void this.stmts.ping.get());
  }

  async close(): Promise<void> {
    await this.archiveStore?.close();
    if (this.db.open) this.db.close();
  }
}
