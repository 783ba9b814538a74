import type { StorageConfig } from "../config/config.js";
import type { Logger } from "../log/logger.js";
import type { Storage } from "./store.js";
import { SqliteStore } from "./sqlite-store.js";
import { PgStore } from "./postgres-store.js";

/**
 * Opens the configured backend with every store's schema in place. `migrate`
 * false (a worker whose host primary applied the migrations): PostgreSQL only
 * checks the versions; SQLite's steps are cheap no-ops by then and run anyway.
 */
export async function openStorage(c: StorageConfig, log: Logger, opts: { migrate: boolean } = { migrate: true }): Promise<Storage> {
  if (c.type === "postgres") return PgStore.open(c.postgres, log, opts);
  const store = new SqliteStore(c.path, c.lockTimeoutMs);
  try {
    void store.xmpp;
    void store.profile;
    void store.archive;
    void store.pep;
    void store.fast;
    void store.muc;
    void store.mucDirectory;
  } catch (e) {
    await store.close();
    throw e;
  }
  return store;
}

/** The host primary: applies every store's migrations once, before forking workers, and closes. */
export async function migrateStorage(c: StorageConfig, log: Logger): Promise<void> {
  await (await openStorage(c, log)).close();
}
