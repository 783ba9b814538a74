import type pg from "pg";
import type { Logger } from "../log/logger.js";
import type { Storage } from "./store.js";
import type { Credentials } from "./scram.js";
import { createPool, openKept, transaction, type PostgresConfig } from "./postgres.js";
import { migrate, type Component } from "./postgres-schema.js";
import { PgXmppStore, XMPP } from "./postgres-xmpp-store.js";
import { BLOCKING, PgProfileStore, VCARD } from "./postgres-profile-store.js";
import { ARCHIVE, PgArchiveStore } from "./postgres-archive-store.js";
import { PEP, PgPepStore } from "./postgres-pep-store.js";
import { FAST, PgFastStore } from "./postgres-fast-store.js";
import { MUC, PgMucStore } from "./postgres-muc-store.js";
import { MUC_DIRECTORY, PgMucDirectory } from "./postgres-muc-directory.js";

/** The accounts' schema steps (component "accounts"); append, never edit. */
const ACCOUNTS: Component = {
  name: "accounts",
  steps: [
    `CREATE TABLE users (
       username text PRIMARY KEY,
       salt bytea NOT NULL,
       iterations integer NOT NULL,
       sha1_stored bytea NOT NULL,
       sha1_server bytea NOT NULL,
       sha256_stored bytea NOT NULL,
       sha256_server bytea NOT NULL,
       created_at bigint NOT NULL
     )`,
  ],
};

/** Every component, in the order their steps apply (XMPP's trigger watches the users table). Later stores append theirs. */
export const COMPONENTS: readonly Component[] = [ACCOUNTS, XMPP, BLOCKING, VCARD, ARCHIVE, PEP, FAST, MUC, MUC_DIRECTORY];

interface UserRow {
  salt: Buffer;
  iterations: number;
  sha1_stored: Buffer;
  sha1_server: Buffer;
  sha256_stored: Buffer;
  sha256_server: Buffer;
}

const UPSERT = `ON CONFLICT (username) DO UPDATE SET salt = excluded.salt, iterations = excluded.iterations,
  sha1_stored = excluded.sha1_stored, sha1_server = excluded.sha1_server,
  sha256_stored = excluded.sha256_stored, sha256_server = excluded.sha256_server`;

/** Rows per INSERT when importing accounts. */
const IMPORT_CHUNK = 1000;

/**
 * One PostgreSQL database shared by every worker of every host: accounts, and
 * the XMPP store on the same pool. Each process has its own pool.
 */
export class PgStore implements Storage {
  readonly kind = "postgres";
  readonly xmpp: PgXmppStore;
  readonly profile: PgProfileStore;
  readonly archive: PgArchiveStore;
  readonly pep: PgPepStore;
  readonly fast: PgFastStore;
  readonly muc: PgMucStore;
  readonly mucDirectory: PgMucDirectory;

  private constructor(
    readonly pool: pg.Pool,
    config: PostgresConfig | null = null,
  ) {
    this.fast = new PgFastStore(pool);
    this.xmpp = new PgXmppStore(pool);
    this.profile = new PgProfileStore(pool);
    this.archive = new PgArchiveStore(pool, config);
    this.pep = new PgPepStore(pool);
    this.muc = new PgMucStore(pool);
    this.mucDirectory = new PgMucDirectory(pool);
  }

  /**
   * Applies the migrations (under the advisory lock), or with `migrate` false
   * only checks that they were applied, then opens the pool.
   */
  static async open(c: PostgresConfig, log: Logger, opts: { migrate: boolean } = { migrate: true }): Promise<PgStore> {
    await migrate(c, COMPONENTS, opts.migrate);
    const pool = createPool(c, log);
    await openKept(pool, c);
    return new PgStore(pool, c);
  }

  async putUser(user: string, c: Credentials): Promise<void> {
    await this.pool.query(
      `INSERT INTO users (username, salt, iterations, sha1_stored, sha1_server, sha256_stored, sha256_server, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ${UPSERT}`,
      [user, c.salt, c.iterations, c.sha1.storedKey, c.sha1.serverKey, c.sha256.storedKey, c.sha256.serverKey, Date.now()],
    );
  }

  async putUsers(entries: Iterable<[string, Credentials]>): Promise<number> {
    const list = [...entries];
    // One INSERT may not touch a row twice: the last entry for a user wins, as it would one by one.
    const last = new Map(list);
    const rows = [...last];
    await transaction(this.pool, async (client) => {
      for (let i = 0; i < rows.length; i += IMPORT_CHUNK) {
        const chunk = rows.slice(i, i + IMPORT_CHUNK);
        const col = <T>(f: (e: [string, Credentials]) => T) => chunk.map(f);
        await client.query(
          `INSERT INTO users (username, salt, iterations, sha1_stored, sha1_server, sha256_stored, sha256_server, created_at)
           SELECT u, s, i, a, b, c, d, $8 FROM unnest($1::text[], $2::bytea[], $3::int[], $4::bytea[], $5::bytea[], $6::bytea[], $7::bytea[]) AS t (u, s, i, a, b, c, d)
           ${UPSERT}`,
          [
            col(([u]) => u),
            col(([, c]) => c.salt),
            col(([, c]) => c.iterations),
            col(([, c]) => c.sha1.storedKey),
            col(([, c]) => c.sha1.serverKey),
            col(([, c]) => c.sha256.storedKey),
            col(([, c]) => c.sha256.serverKey),
            Date.now(),
          ],
        );
      }
    });
    return list.length;
  }

  async addUser(user: string, c: Credentials): Promise<boolean> {
    const r = await this.pool.query(
      `INSERT INTO users (username, salt, iterations, sha1_stored, sha1_server, sha256_stored, sha256_server, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (username) DO NOTHING`,
      [user, c.salt, c.iterations, c.sha1.storedKey, c.sha1.serverKey, c.sha256.storedKey, c.sha256.serverKey, Date.now()],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async deleteUser(user: string): Promise<boolean> {
    return ((await this.pool.query("DELETE FROM users WHERE username = $1", [user])).rowCount ?? 0) > 0;
  }

  async hasUser(user: string): Promise<boolean> {
    return (await this.pool.query("SELECT 1 FROM users WHERE username = $1", [user])).rows.length > 0;
  }

  async listUsers(): Promise<string[]> {
    return (await this.pool.query<{ username: string }>(`SELECT username FROM users ORDER BY username COLLATE "C"`)).rows.map((r) => r.username);
  }

  async credentials(user: string): Promise<Credentials | undefined> {
    const r = (
      await this.pool.query<UserRow>("SELECT salt, iterations, sha1_stored, sha1_server, sha256_stored, sha256_server FROM users WHERE username = $1", [user])
    ).rows[0];
    if (r === undefined) return undefined;
    return {
      salt: r.salt,
      iterations: r.iterations,
      sha1: { storedKey: r.sha1_stored, serverKey: r.sha1_server },
      sha256: { storedKey: r.sha256_stored, serverKey: r.sha256_server },
    };
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error("the database connection is not open");
    await this.pool.query("SELECT 1");
  }

  private closed = false;

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // The archive's thread first: what it was given is written before its connection ends.
    await this.archive.close();
    await this.pool.end();
  }
}
