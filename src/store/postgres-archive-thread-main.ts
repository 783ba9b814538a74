import { workerData } from "node:worker_threads";
import type { TextsMessage } from "./archive-thread.js";
import { ArchivePrefsCache } from "./archive-prefs.js";
import { serveInOrder, textRows } from "./archive-text-rows.js";
import { insertRows, PgArchiveStore } from "./postgres-archive-store.js";
import { createPool, type PostgresConfig } from "./postgres.js";
import { silentLogger } from "../log/logger.js";

/**
 * PostgreSQL's archive thread (archive-thread.ts): a pool of one connection of its own, kept open; each
 * writer's batch made into rows here (archive-text-rows.ts: rendering, the preferences it keeps, read on
 * this connection) and written in one INSERT of arrays, so that neither the rows nor node-postgres's array
 * literals (every text escaped) are made on the event loop.
 */
const { config } = workerData as { config: PostgresConfig };
// One connection: batches are written one at a time, in order. A failed one is replaced by the pool at the next batch.
const pool = createPool({ ...config, poolSize: 1, poolKept: 1 }, silentLogger());
const store = new PgArchiveStore(pool);
let prefs: ArchivePrefsCache | null = null;

serveInOrder<Exclude<TextsMessage, { op: "prefs" }>>(
  (user) => prefs?.forget(user),
  async (m) => {
    const cache = (prefs ??= new ArchivePrefsCache(store, m.prefsCacheSize));
    const { rows, ...r } = await textRows(m, cache);
    return { texts: { ...r, added: await insertRows(pool, rows) } };
  },
);
