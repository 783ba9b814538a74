import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import { ROW_FIELDS, type Handover, type ThreadAnswer, type ThreadMessage } from "./sqlite-archive-thread.js";
import { TEXT_FIELDS, type TextBatch, type TextResult } from "./archive-store.js";
import { ArchivePrefsCache, decide } from "./archive-prefs.js";
import { PREFS_SQL, readPrefs, type PrefsRow } from "./sqlite-archive-store.js";

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
const add = db.prepare(`INSERT OR IGNORE INTO archive (username, id, with_jid, with_resource, ts, outgoing, stanza) VALUES (?, ?, ?, ?, ?, ?, ?)`);
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
      n += add.run(head[at], head[at + 1], head[at + 2], head[at + 3], head[at + 4], head[at + 5], text).changes;
    }
    return n;
  });
});

type Row = [user: string, id: string, contact: string, resource: string, ts: number, outgoing: number, stanza: string];
const insert = db.transaction((rows: Row[]) => {
  let n = 0;
  for (const r of rows) n += add.run(...r).changes;
  return n;
});

type Render = (text: string, from: string, to: string) => { id: string; text: string } | null;
const renderers = new Map<string, Render>();
let prefs: ArchivePrefsCache | null = null;

/** A TextBatch's rows (layout: archive-store.ts), its preferences applied unless decided, written in one transaction. */
async function texts(b: TextBatch): Promise<TextResult> {
  let render = renderers.get(b.renderModule);
  if (render === undefined) {
    render = ((await import(b.renderModule)) as { renderWire: Render }).renderWire;
    renderers.set(b.renderModule, render);
  }
  const cache = (prefs ??= new ArchivePrefsCache({ prefs: (users) => Promise.resolve(readPrefs(prefsOf, users)) }, b.prefsCacheSize));
  const readsBefore = cache.reads;
  const nums = b.nums;
  const strs = b.strs.length === 1 ? b.strs[0] : b.strs.join("");
  const rows: Row[] = [];
  /** Per row, its entry in the batch. */
  const index: number[] = [];
  let missing: Set<string> | null = null;
  let pos = 0;
  let rendered: ReturnType<Render> = null;
  for (let i = 0, at = 0; at < nums.length; i++, at += TEXT_FIELDS) {
    const textLen = nums[at];
    const text = textLen < 0 ? "" : strs.slice(pos, (pos += textLen));
    const bare = strs.slice(pos, (pos += nums[at + 1]));
    const from = strs.slice(pos, (pos += nums[at + 2]));
    const to = strs.slice(pos, (pos += nums[at + 3]));
    // -1: the previous entry's message, archived for the other user: rendered once.
    if (textLen >= 0) rendered = render(text, from, to);
    if (rendered === null) continue;
    const outgoing = nums[at + 4];
    const other = outgoing === 1 ? to : from;
    const slash = other.indexOf("/");
    const user = bare.slice(0, bare.indexOf("@"));
    if (!b.decided && cache.get(user) === undefined) (missing ??= new Set()).add(user);
    rows.push([user, rendered.id, slash < 0 ? other : other.slice(0, slash), slash < 0 ? "" : other.slice(slash + 1), nums[at + 5], outgoing, rendered.text]);
    index.push(i);
  }
  const ask: [number, string, string][] = [];
  let kept = rows;
  if (!b.decided) {
    const read = missing === null ? null : await cache.lookup(missing);
    if (!(b.defaultMode === "always" && !cache.anyStored && (read === null || read.size === 0))) {
      kept = [];
      for (let k = 0; k < rows.length; k++) {
        const r = rows[k];
        const d = decide(cache.get(r[0]) ?? read?.get(r[0]), r[2], b.defaultMode);
        if (d === true) kept.push(r);
        else if (d === "roster") ask.push([index[k], r[0], r[2]]);
      }
    }
  }
  const added = kept.length === 0 ? 0 : insert.immediate(kept);
  return { kept: kept.length, added, skipped: rows.length - kept.length - ask.length, ask, reads: cache.reads - readsBefore };
}

/** One message at a time, in order: a change of preferences applies to every batch posted after it. */
let chain: Promise<void> = Promise.resolve();
parentPort!.on("message", (m: ThreadMessage) => {
  chain = chain.then(async () => {
    if (m.op === "prefs") {
      prefs?.forget(m.user);
      return;
    }
    let answer: ThreadAnswer;
    try {
      answer = m.op === "rows" ? { id: m.id, ns: write.immediate(m) } : { id: m.id, texts: await texts(m) };
    } catch (e) {
      answer = { id: m.id, error: (e as Error).message, code: (e as { code?: string }).code };
    }
    parentPort!.postMessage(answer);
  });
});
