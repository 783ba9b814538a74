import pg from "pg";
import { clientConfig, type PostgresConfig } from "./postgres.js";

/**
 * One part of the schema, owned by one store: its name in schema_versions and
 * its steps, applied in order. Append steps, never edit one that has shipped.
 * A new store (archive, PEP, MUC) is a new component added to the list the
 * server opens (postgres-store.ts, COMPONENTS), with its own version.
 */
export interface Component {
  name: string;
  steps: readonly string[];
}

/**
 * The advisory lock every process takes around migrations (one 64-bit key per
 * database; "Swbr" "schema" in ASCII). Workers and hosts that start together
 * apply the steps once, in turn, instead of racing.
 */
const LOCK_KEY = "6014482765656784129";

/**
 * Brings every component up to its number of steps, each component in one
 * transaction, while holding the advisory lock. With `apply` false it only
 * checks that the database is at exactly these versions (a worker whose host
 * primary applied them). Throws, naming the component, when the database is
 * newer than this server (or, checking only, older).
 */
export async function migrate(c: PostgresConfig, components: readonly Component[], apply = true): Promise<void> {
  // Its own connection, without the statement timeout: a step may take long, and so may waiting for the lock.
  const client = new pg.Client({ ...clientConfig(c), statement_timeout: 0, query_timeout: undefined });
  client.on("error", () => {});
  await client.connect();
  try {
    if (!apply) return await check(client, components);
    await client.query("SELECT pg_advisory_lock($1)", [LOCK_KEY]);
    try {
      await client.query("CREATE TABLE IF NOT EXISTS schema_versions (component text PRIMARY KEY, version integer NOT NULL)");
      for (const comp of components) await step(client, comp);
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [LOCK_KEY]);
    }
  } finally {
    await client.end();
  }
}

async function step(client: pg.Client, comp: Component): Promise<void> {
  await client.query("BEGIN");
  try {
    const r = await client.query<{ version: number }>("SELECT version FROM schema_versions WHERE component = $1", [comp.name]);
    const version = r.rows[0]?.version ?? 0;
    if (version > comp.steps.length) throw new Error(`database schema of ${comp.name} is at version ${version}, newer than this server (${comp.steps.length})`);
    for (let v = version; v < comp.steps.length; v++) await client.query(comp.steps[v]);
    if (version !== comp.steps.length) {
      await client.query(
        "INSERT INTO schema_versions (component, version) VALUES ($1, $2) ON CONFLICT (component) DO UPDATE SET version = excluded.version",
        [comp.name, comp.steps.length],
      );
    }
    await client.query("COMMIT");
  } catch (e) {
    await client.query("ROLLBACK").catch(() => {});
    throw e;
  }
}

async function check(client: pg.Client, components: readonly Component[]): Promise<void> {
  const r = await client.query<{ t: string | null }>("SELECT to_regclass('schema_versions')::text AS t");
  const rows = r.rows[0].t === null ? [] : (await client.query<{ component: string; version: number }>("SELECT component, version FROM schema_versions")).rows;
  const have = new Map(rows.map((x) => [x.component, x.version]));
  for (const comp of components) {
    const v = have.get(comp.name) ?? 0;
    if (v !== comp.steps.length) throw new Error(`database schema of ${comp.name} is at version ${v}, this server needs ${comp.steps.length}: the migrations were not applied`);
  }
}

/** The versions recorded, by component (tests, `switchboard` diagnostics). */
export async function versions(pool: pg.Pool): Promise<Record<string, number>> {
  const r = await pool.query<{ component: string; version: number }>("SELECT component, version FROM schema_versions ORDER BY component");
  return Object.fromEntries(r.rows.map((x) => [x.component, x.version]));
}
