import { TEXT_FIELDS, type TextBatch, type TextResult } from "./archive-store.js";
import { parentPort } from "node:worker_threads";
import { decide, type ArchivePrefsCache } from "./archive-prefs.js";
import type { ThreadAnswer } from "./archive-thread.js";

/**
 * A writer's batch (TextBatch) made into rows off the event loop, on an archive's thread (SQLite's:
 * sqlite-archive-thread-main.ts; PostgreSQL's: postgres-archive-thread-main.ts): each text rendered with
 * the protocol's module, each user's preferences applied from the cache the thread keeps.
 */

/** The protocol's rendering (ArchiveWriterOptions.renderModule's renderWire): the archived id and text, or null (not archived). */
export type Render = (text: string, from: string, to: string) => { id: string; text: string } | null;

/** A row as the threads insert it. */
export type TextRow = [user: string, id: string, contact: string, resource: string, ts: number, outgoing: number, stanza: string];

const renderers = new Map<string, Render>();

/** The renderer a batch names, loaded once per thread. */
export async function renderer(module: string): Promise<Render> {
  let render = renderers.get(module);
  if (render === undefined) {
    render = ((await import(module)) as { renderWire: Render }).renderWire;
    renderers.set(module, render);
  }
  return render;
}

/** The rows to write, and the rest of the batch's TextResult (`added` is the caller's, once written). */
export type TextRows = Omit<TextResult, "added"> & { rows: TextRow[] };

/** A TextBatch's rows (layout: archive-store.ts), its preferences applied unless decided. */
export async function textRows(b: TextBatch, cache: ArchivePrefsCache): Promise<TextRows> {
  const render = await renderer(b.renderModule);
  const readsBefore = cache.reads;
  const nums = b.nums;
  const strs = b.strs.length === 1 ? b.strs[0] : b.strs.join("");
  const rows: TextRow[] = [];
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
  return { rows: kept, kept: kept.length, skipped: rows.length - kept.length - ask.length, ask, reads: cache.reads - readsBefore };
}

/**
 * An archive thread's loop: the event loop's messages served one at a time, in order, so that a change of
 * preferences (`prefs`: `forget` drops the user's, or all with null) applies to every batch posted after it;
 * each other message answered with what `serve` gives, or with its error.
 */
export function serveInOrder<M extends { op: string }>(forget: (user: string | null) => void, serve: (m: M) => Promise<Omit<ThreadAnswer, "id">>): void {
  let chain: Promise<void> = Promise.resolve();
  parentPort!.on("message", (m: M | { op: "prefs"; user: string | null }) => {
    chain = chain.then(async () => {
      if (m.op === "prefs") return forget((m as { user: string | null }).user);
      const id = (m as unknown as { id: number }).id;
      let answer: ThreadAnswer;
      try {
        answer = { id, ...(await serve(m as M)) };
      } catch (e) {
        answer = { id, error: (e as Error).message, code: (e as { code?: string }).code };
      }
      parentPort!.postMessage(answer);
    });
  });
}
