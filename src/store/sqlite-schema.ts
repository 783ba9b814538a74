import type Database from "better-sqlite3";

/**
 * Several stores share one SQLite file; each owns its tables and their schema
 * steps, and records how many it has applied in `schema_versions`. A store
 * applies only its own steps, so the accounts store knows nothing of the
 * tables XMPP keeps beside it.
 */

/**
 * Before schema_versions, one list of steps (accounts, then XMPP) was counted
 * in `PRAGMA user_version`: what each store had at each value. Fixed history.
 */
const LEGACY: Readonly<Record<number, Readonly<Record<string, number>>>> = {
  1: { accounts: 1 },
  2: { accounts: 1, xmpp: 1 },
};

/**
 * user_version once schema_versions holds the versions: above what the single
 * list ever reached, so a server from before refuses the file ("newer than this
 * server") instead of creating tables that already exist.
 */
export const SCHEMA_VERSIONS_ERA = 3;

/**
 * Brings `component`'s tables up to `steps.length`, in one transaction that
 * takes the write lock at once: workers opening the file together wait for
 * each other (busy_timeout) instead of applying a step twice.
 */
export function migrate(db: Database.Database, component: string, steps: readonly string[]): void {
  db.transaction(() => {
    const legacy = db.pragma("user_version", { simple: true }) as number;
    if (legacy > SCHEMA_VERSIONS_ERA) throw new Error(`database user_version ${legacy} is newer than this server (${SCHEMA_VERSIONS_ERA})`);
    db.exec(`CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID`);
    const record = db.prepare<[string, number]>(`INSERT OR REPLACE INTO schema_versions (component, version) VALUES (?, ?)`);
    if (legacy > 0 && legacy < SCHEMA_VERSIONS_ERA) {
      // A file made before schema_versions: record what its single list had made, once.
      for (const [c, v] of Object.entries(LEGACY[legacy])) record.run(c, v);
    }
    if (legacy !== SCHEMA_VERSIONS_ERA) db.pragma(`user_version = ${SCHEMA_VERSIONS_ERA}`);
    const row = db.prepare<[string], { version: number }>(`SELECT version FROM schema_versions WHERE component = ?`).get(component);
    const version = row?.version ?? 0;
    if (version > steps.length) throw new Error(`database schema of ${component} is at version ${version}, newer than this server (${steps.length})`);
    for (let v = version; v < steps.length; v++) db.exec(steps[v]);
    if (version !== steps.length) record.run(component, steps.length);
  }).immediate();
}

