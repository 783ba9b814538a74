import { readFileSync } from "node:fs";
import pg from "pg";
import type { Logger } from "../log/logger.js";
import type { PostgresConfig } from "../config/config.js";

export type { PostgresConfig };

/** What a pg.Client or pg.Pool is made with. */
export function clientConfig(c: PostgresConfig): pg.ClientConfig {
  const where: pg.ClientConfig =
    c.connectionString !== null
      ? { connectionString: c.connectionString }
      : { host: c.host, port: c.port, user: c.user, password: c.password ?? undefined, database: c.database };
  return {
    ...where,
    ssl: c.ssl === null ? undefined : { rejectUnauthorized: c.ssl.rejectUnauthorized, ca: c.ssl.ca === null ? undefined : readFileSync(c.ssl.ca, "utf8") },
    connectionTimeoutMillis: c.connectTimeoutMs,
    statement_timeout: c.statementTimeoutMs,
    // A server that vanished without a reset (a partition) would leave a query waiting on TCP; the
    // pool drops a connection whose query failed, so the next call gets a fresh one.
    query_timeout: c.statementTimeoutMs + 2000,
    keepAlive: true,
    application_name: "switchboard",
  };
}

export function createPool(c: PostgresConfig, log: Logger): pg.Pool {
  const pool = new pg.Pool({ ...clientConfig(c), max: c.poolSize, idleTimeoutMillis: 30_000 });
  // An idle connection the server closed (restart, failover) is reported here; without a listener it would end the process.
  pool.on("error", (e) => log.warn("postgres: an idle connection failed", { error: e.message }));
  return pool;
}

/**
 * Runs `fn` in a transaction on one connection of the pool. A statement that
 * fails rolls it back; a connection that cannot even roll back is dropped
 * instead of being given back.
 */
export async function transaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  let broken: Error | undefined;
  try {
    await c.query("BEGIN");
    const r = await fn(c);
    await c.query("COMMIT");
    return r;
  } catch (e) {
    try {
      await c.query("ROLLBACK");
    } catch (r) {
      broken = r as Error;
    }
    throw e;
  } finally {
    c.release(broken);
  }
}
