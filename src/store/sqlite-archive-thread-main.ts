import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import type { ArchiveRow } from "./archive-store.js";

/**
 * The archive writer's thread (sqlite-archive-thread.ts): its own connection to the file, which the
 * event loop's connection has already brought to the archive's schema. Off the event loop it may
 * simply wait for the file's lock (busy_timeout) instead of trying again on a timer.
 */
const { path, lockTimeoutMs } = workerData as { path: string; lockTimeoutMs: number };
const db = new Database(path);
db.pragma("synchronous = NORMAL");
db.pragma(`busy_timeout = ${Math.max(lockTimeoutMs, 1000)}`);
const add = db.prepare(`INSERT OR IGNORE INTO archive (username, id, with_jid, with_resource, ts, outgoing, stanza) VALUES (?, ?, ?, ?, ?, ?, ?)`);
/** Each append's rows added, in one transaction for all of them. */
const write = db.transaction((batches: readonly (readonly ArchiveRow[])[]) =>
  batches.map((rows) => {
    let n = 0;
    for (const r of rows) n += add.run(r.user, r.id, r.with, r.withResource, r.ts, r.outgoing ? 1 : 0, r.stanza).changes;
    return n;
  }),
);

const decoder = new TextDecoder();

parentPort!.on("message", (m: { id: number; batches: Uint8Array }) => {
  try {
    parentPort!.postMessage({ id: m.id, ns: write.immediate(JSON.parse(decoder.decode(m.batches)) as ArchiveRow[][]) });
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: (e as Error).message, code: (e as { code?: string }).code });
  }
});
