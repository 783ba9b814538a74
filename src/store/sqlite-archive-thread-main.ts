import { workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import { ROW_FIELDS, type Handover, type ThreadMessage } from "./sqlite-archive-thread.js";
import type { TextBatch, TextResult } from "./archive-store.js";
import { ArchivePrefsCache } from "./archive-prefs.js";
import { serveInOrder, textRows, type TextRow } from "./archive-text-rows.js";
import { INSERT_SQL, PREFS_SQL, readPrefs, type PrefsRow } from "./sqlite-archive-store.js";

/**
 * The archive writer's thread (sqlite-archive-thread.ts): its own connection to the file, which the
 * event loop's connection has already brought to the archive's schema. Off the event loop it may
 * simply wait for the file's lock (busy_timeout) instead of trying again on a timer. It also makes the
 * rows of a writer's batches (TextBatch): renders each text with the protocol's module, and applies the
 * preferences it keeps (read here, dropped when the event loop says they changed).
 */
const { path, lockTimeoutMs } = workerData as { path: string; lockTimeoutMs: number };
const db = new Database(path);
db.pragma("synchronous = NORMAL");
db.pragma(`busy_timeout = ${Math.max(lockTimeoutMs, 1000)}`);
const add = db.prepare(INSERT_SQL);
const prefsOf = db.prepare<[string], PrefsRow>(PREFS_SQL);

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
      n += add.run(head[at], head[at + 1], head[at + 2], head[at + 3], head[at + 4], head[at + 5], text, head[at + 7] || null).changes;
    }
    return n;
  });
});

const insert = db.transaction((rows: TextRow[]) => {
  let n = 0;
  // A user's archive row: no real JID (a room's rows come as a Handover).
  for (const r of rows) n += add.run(r[0], r[1], r[2], r[3], r[4], r[5], r[6], null).changes;
  return n;
});

let prefs: ArchivePrefsCache | null = null;

/** A TextBatch's rows (archive-text-rows.ts), written in one transaction. */
async function texts(b: TextBatch): Promise<TextResult> {
  const cache = (prefs ??= new ArchivePrefsCache({ prefs: (users) => Promise.resolve(readPrefs(prefsOf, users)) }, b.prefsCacheSize));
  const { rows, ...r } = await textRows(b, cache);
  return { ...r, added: rows.length === 0 ? 0 : insert.immediate(rows) };
}

serveInOrder<Exclude<ThreadMessage, { op: "prefs" }>>(
  (user) => prefs?.forget(user),
  async (m) => (m.op === "rows" ? { ns: write.immediate(m) } : { texts: await texts(m) }),
);
