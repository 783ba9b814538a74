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

/** A pool whose first `poolKept` connections stay open while idle (the others close after 30 s idle). */
export function createPool(c: PostgresConfig, log: Logger): pg.Pool {
  const pool = new pg.Pool({ ...clientConfig(c), max: c.poolSize, min: Math.min(c.poolKept, c.poolSize), idleTimeoutMillis: 30_000 });
  // An idle connection the server closed (restart, failover) is reported here; without a listener it would end the process.
  pool.on("error", (e) => log.warn("postgres: an idle connection failed", { error: e.message }));
  return pool;
}

/**
 * Opens the pool's kept connections now, at start, rather than in the first calls: a call that waits for a
 * connection to open pays the TCP and TLS handshakes, authentication and a backend's start (~10 ms on
 * loopback), and a query on a new backend plans without its catalog caches (docs/benchmarks.md, "Archives",
 * session 15). Kept connections are never closed for being idle, so this is paid once per process.
 */
export async function openKept(pool: pg.Pool, c: PostgresConfig): Promise<void> {
  const n = Math.min(c.poolKept, c.poolSize);
  const clients = await Promise.all(Array.from({ length: n }, () => pool.connect()));
  for (const client of clients) client.release();
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
