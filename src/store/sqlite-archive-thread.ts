import type { ArchiveRow } from "./archive-store.js";
import { ArchiveThread, type ThreadAnswer, type TextsMessage } from "./archive-thread.js";

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

/** What the event loop posts: rows (SQLite's own hand-over), or a writer's batch or a preferences change (archive-thread.ts). */
export type ThreadMessage = Handover | TextsMessage;

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
export class SqliteArchiveThread extends ArchiveThread {
  /** Gathered, not yet sent. */
  private gathered: Pending[] = [];
  private gatheredRows = 0;
  private timer: NodeJS.Timeout | null = null;
  /** Sent, by message id: the appends it carries, in order. */
  private readonly sent = new Map<number, Pending[]>();

  constructor(path: string, lockTimeoutMs: number) {
    super(new URL("./sqlite-archive-thread-main.js", import.meta.url), { path, lockTimeoutMs });
  }

  /** Rows in one transaction on the thread (with others gathered beside them); resolves to the rows added (a (user, id) there already is skipped). */
  append(rows: readonly ArchiveRow[]): Promise<number> {
    if (this.dead !== null) return Promise.reject(this.dead);
    return new Promise<number>((resolve, reject) => {
      this.holding();
      this.gathered.push({ rows, resolve, reject });
      this.gatheredRows += rows.length;
      if (this.gatheredRows >= MAX_ROWS) this.send();
      else this.timer ??= setTimeout(this.send, GATHER_MS);
    });
  }

  protected override pending(): number {
    return this.gathered.length + this.sent.size;
  }

  protected override answered(m: ThreadAnswer, e: Error | null): void {
    const ps = this.sent.get(m.id);
    if (ps === undefined) return;
    this.sent.delete(m.id);
    if (e === null) ps.forEach((p, i) => p.resolve(m.ns?.[i] ?? 0));
    else for (const p of ps) p.reject(e);
  }

  /** Sends what is gathered now: someone waits for it to be written. */
  hurry(): void {
    if (this.gathered.length > 0) this.send();
  }

  protected override flush(): void {
    this.send();
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

  protected override failed(e: Error): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    for (const p of this.gathered) p.reject(e);
    for (const ps of this.sent.values()) for (const p of ps) p.reject(e);
    this.gathered = [];
    this.sent.clear();
  }
}
