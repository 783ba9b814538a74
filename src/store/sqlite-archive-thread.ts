import { Worker } from "node:worker_threads";
import type { ArchiveRow, TextBatch, TextResult } from "./archive-store.js";

/**
 * Fields per row in a hand-over's `head`: user, id, with, withResource, ts, outgoing (0/1), length of its text
 * (0: the previous row's), real JID ("": none; a room's archive keeps its senders').
 */
export const ROW_FIELDS = 8;

/**
 * What the event loop posts to the thread: two strings, which postMessage copies as they are, and each append's
 * count of rows. The rows' short fields as one JSON array (ROW_FIELDS per row), and their texts end to end, each
 * text once (a message's two rows, one per user, share it). A structured clone of the rows as arrays or objects cost the
 * event loop several µs per row (V8's serializer, value by value); JSON.stringify of short fields is native and fast.
 */
export interface Handover {
  op: "rows";
  id: number;
  head: string;
  texts: string;
  counts: number[];
}

/** What else the event loop posts: a writer's batch to render, filter and write (ArchiveStore.appendTexts); a user's preferences changed. */
export type ThreadMessage = Handover | ({ op: "texts"; id: number } & TextBatch) | { op: "prefs"; user: string | null };

/** The thread's answer: an append's rows added (ns, per append of a Handover), a TextBatch's result, or an error. */
export interface ThreadAnswer {
  id: number;
  ns?: number[];
  texts?: TextResult;
  error?: string;
  code?: string;
}
/**
 * How long appends gather before they go to the thread together, and how many rows go at once at most.
 * Each hand-over costs the event loop a postMessage and its answer (tens of µs, whatever they carry);
 * the writer gathers its batches itself (xmpp.mam.gatherMs), this merges what comes meanwhile. A reader
 * that waits for the writes (a login's barrier, an archive query: ArchiveWriter.flushed) has them sent at
 * once (hurry()).
 */
const GATHER_MS = 5;
const MAX_ROWS = 4000;

/** An append waiting for its answer. */
interface Pending {
  rows: readonly ArchiveRow[];
  resolve: (n: number) => void;
  reject: (e: Error) => void;
}

/**
 * The archive's writes on a thread of their own (SQLite). better-sqlite3 is synchronous: a batch of
 * archived messages inserted on the event loop held the worker's forwarding for the whole
 * transaction, tens of milliseconds as the archive grew (docs/benchmarks.md, "Archives"). Here the
 * thread has its own connection to the same file (WAL: readers on the event loop go on meanwhile) and
 * waits on the file's lock itself. The appends of a few milliseconds go together in one message: each
 * postMessage costs the event loop tens of microseconds whatever it carries, and the writer's batches
 * are one event-loop turn's (a few rows at moderate rates). They go as one flat array of the rows'
 * short fields and the list of their texts, each text once (Handover): no JSON text to build and
 * escape, and a message archived for both users is copied once.
 * Queries, preferences and retention stay on the event loop's connection.
 */
export class SqliteArchiveThread {
  private readonly worker: Worker;
  /** Gathered, not yet sent. */
  private gathered: Pending[] = [];
  private gatheredRows = 0;
  private timer: NodeJS.Timeout | null = null;
  /** Sent, by message id: the appends it carries, in order. */
  private readonly sent = new Map<number, Pending[]>();
  /** TextBatches sent, by message id. */
  private readonly textsSent = new Map<number, { resolve: (r: TextResult) => void; reject: (e: Error) => void }>();
  private next = 1;
  private dead: Error | null = null;
  private closing: Promise<void> | null = null;
  private idle: (() => void)[] = [];

  constructor(path: string, lockTimeoutMs: number) {
    this.worker = new Worker(new URL("./sqlite-archive-thread-main.js", import.meta.url), { workerData: { path, lockTimeoutMs } });
    this.worker.unref();
    this.worker.on("message", (m: ThreadAnswer) => {
      const e = m.error === undefined ? null : Object.assign(new Error(m.error), { code: m.code });
      const t = this.textsSent.get(m.id);
      if (t !== undefined) {
        this.textsSent.delete(m.id);
        if (e === null) t.resolve(m.texts!);
        else t.reject(e);
      }
      const ps = this.sent.get(m.id);
      if (ps !== undefined) {
        this.sent.delete(m.id);
        if (e === null) ps.forEach((p, i) => p.resolve(m.ns?.[i] ?? 0));
        else for (const p of ps) p.reject(e);
      }
      this.settled();
    });
    this.worker.on("error", (e) => this.fail(e));
    this.worker.on("exit", (code) => this.fail(new Error(`archive thread exited (${code})`)));
  }

  /** Rows in one transaction on the thread (with others gathered beside them); resolves to the rows added (a (user, id) there already is skipped). */
  append(rows: readonly ArchiveRow[]): Promise<number> {
    if (this.dead !== null) return Promise.reject(this.dead);
    return new Promise<number>((resolve, reject) => {
      // Referenced while anything is out: a process ending waits for it (and the writer's flushed() does too).
      if (this.out === 0) this.worker.ref();
      this.gathered.push({ rows, resolve, reject });
      this.gatheredRows += rows.length;
      if (this.gatheredRows >= MAX_ROWS) this.send();
      else this.timer ??= setTimeout(this.send, GATHER_MS);
    });
  }

  /**
   * A writer's batch, sent at once (the writer gathered it: xmpp.mam.gatherMs): rendered, filtered by the
   * preferences the thread keeps, and written there. The event loop pays a postMessage per batch, its
   * buffer transferred and its one string copied.
   */
  appendTexts(b: TextBatch): Promise<TextResult> {
    if (this.dead !== null) return Promise.reject(this.dead);
    return new Promise<TextResult>((resolve, reject) => {
      if (this.out === 0) this.worker.ref();
      const id = this.next++;
      this.textsSent.set(id, { resolve, reject });
      const m: ThreadMessage = { op: "texts", id, ...b };
      this.worker.postMessage(m, [b.nums.buffer]);
    });
  }

  /** The preferences the thread keeps for `user` (null: anyone) are read again when next needed. */
  prefsChanged(user: string | null): void {
    if (this.dead === null) this.worker.postMessage({ op: "prefs", user } satisfies ThreadMessage);
  }

  /** Appends gathered or sent, and batches sent, not yet answered. */
  private get out(): number {
    return this.gathered.length + this.sent.size + this.textsSent.size;
  }

  /** Sends what is gathered now: someone waits for it to be written. */
  hurry(): void {
    if (this.gathered.length > 0) this.send();
  }

  private readonly send = (): void => {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const ps = this.gathered;
    if (ps.length === 0) return;
    this.gathered = [];
    this.gatheredRows = 0;
    const id = this.next++;
    this.sent.set(id, ps);
    let n = 0;
    for (const p of ps) n += p.rows.length;
    const head = new Array<string | number>(n * ROW_FIELDS);
    const texts: string[] = [];
    let at = 0;
    let last: string | null = null;
    for (const p of ps) {
      for (const r of p.rows) {
        head[at++] = r.user;
        head[at++] = r.id;
        head[at++] = r.with;
        head[at++] = r.withResource;
        head[at++] = r.ts;
        head[at++] = r.outgoing ? 1 : 0;
        // The writer gives a message's rows (both directions) one string: compared by identity first, cheaply.
        if (r.stanza === last) head[at++] = 0;
        else {
          texts.push((last = r.stanza));
          head[at++] = r.stanza.length;
        }
        head[at++] = r.realJid ?? "";
      }
    }
    const m: Handover = { op: "rows", id, head: JSON.stringify(head), texts: texts.join(""), counts: ps.map((p) => p.rows.length) };
    this.worker.postMessage(m);
  };

  private settled(): void {
    if (this.out > 0) return;
    if (this.dead === null) this.worker.unref();
    const cbs = this.idle;
    this.idle = [];
    for (const cb of cbs) cb();
  }

  /** After what was appended before is written. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.send();
      if (this.out > 0) await new Promise<void>((r) => this.idle.push(r));
      this.dead ??= new Error("archive thread closed");
      await this.worker.terminate();
    })();
    return this.closing;
  }

  private fail(e: Error): void {
    if (this.dead !== null) return;
    this.dead = e;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    for (const p of this.gathered) p.reject(e);
    for (const ps of this.sent.values()) for (const p of ps) p.reject(e);
    for (const t of this.textsSent.values()) t.reject(e);
    this.gathered = [];
    this.sent.clear();
    this.textsSent.clear();
    this.settled();
  }
}
