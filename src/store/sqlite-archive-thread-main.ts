import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import { ROW_FIELDS, type Handover } from "./sqlite-archive-thread.js";

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
/** Each append's rows added, in one transaction for all of them (the hand-over's layout: sqlite-archive-thread.ts). */
const write = db.transaction((m: Handover) => {
  const head = JSON.parse(m.head) as (string | number)[];
  const texts = m.texts;
  let at = 0;
  let from = 0;
  let text = "";
  return m.counts.map((count) => {
    let n = 0;
    for (let k = 0; k < count; k++, at += ROW_FIELDS) {
      // A length of 0: the previous row's text (the same message, archived for the other user).
      const len = head[at + 6] as number;
      if (len > 0) {
        text = texts.slice(from, from + len);
        from += len;
      }
      n += add.run(head[at], head[at + 1], head[at + 2], head[at + 3], head[at + 4], head[at + 5], text).changes;
    }
    return n;
  });
});

parentPort!.on("message", (m: Handover) => {
  try {
    parentPort!.postMessage({ id: m.id, ns: write.immediate(m) });
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: (e as Error).message, code: (e as { code?: string }).code });
  }
});
