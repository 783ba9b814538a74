import { parentPort, workerData } from "node:worker_threads";
import type { ThreadAnswer, TextsMessage } from "./archive-thread.js";
import { ArchivePrefsCache } from "./archive-prefs.js";
import { textRows } from "./archive-text-rows.js";
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

/** One message at a time, in order: a change of preferences applies to every batch posted after it. */
let chain: Promise<void> = Promise.resolve();
parentPort!.on("message", (m: TextsMessage) => {
  chain = chain.then(async () => {
    if (m.op === "prefs") {
      prefs?.forget(m.user);
      return;
    }
    let answer: ThreadAnswer;
    try {
      const cache = (prefs ??= new ArchivePrefsCache(store, m.prefsCacheSize));
      const { rows, ...r } = await textRows(m, cache);
      answer = { id: m.id, texts: { ...r, added: await insertRows(pool, rows) } };
    } catch (e) {
      answer = { id: m.id, error: (e as Error).message, code: (e as { code?: string }).code };
    }
    parentPort!.postMessage(answer);
  });
});
