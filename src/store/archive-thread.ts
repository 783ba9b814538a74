import { Worker } from "node:worker_threads";
import type { TextBatch, TextResult } from "./archive-store.js";

/** What the event loop posts to an archive's thread: a writer's batch to render, filter and write (ArchiveStore.appendTexts); a user's preferences changed. */
export type TextsMessage = ({ op: "texts"; id: number } & TextBatch) | { op: "prefs"; user: string | null };

/** The thread's answer: a TextBatch's result (texts), or rows added per append (ns: SQLite's row hand-overs), or an error. */
export interface ThreadAnswer {
  id: number;
  ns?: number[];
  texts?: TextResult;
  error?: string;
  code?: string;
}

/**
 * An archive's writes on a thread of their own (SQLite's: sqlite-archive-thread.ts; PostgreSQL's:
 * postgres-archive-thread-main.ts), with its own connection: the event loop posts each writer's batch
 * (TextBatch: the texts as written and their addresses, gathered for xmpp.mam.gatherMs) and the thread
 * renders the rows, applies the preferences it keeps and writes them (archive-text-rows.ts). The event loop
 * pays a postMessage per batch, its buffer transferred and its strings copied as blocks.
 */
export class ArchiveThread {
  protected readonly worker: Worker;
  /** TextBatches sent, by message id. */
  private readonly textsSent = new Map<number, { resolve: (r: TextResult) => void; reject: (e: Error) => void }>();
  protected next = 1;
  protected dead: Error | null = null;
  private closing: Promise<void> | null = null;
  private idle: (() => void)[] = [];

  constructor(main: URL, workerData: unknown) {
    this.worker = new Worker(main, { workerData });
    this.worker.unref();
    this.worker.on("message", (m: ThreadAnswer) => {
      const e = m.error === undefined ? null : Object.assign(new Error(m.error), { code: m.code });
      const t = this.textsSent.get(m.id);
      if (t !== undefined) {
        this.textsSent.delete(m.id);
        if (e === null) t.resolve(m.texts!);
        else t.reject(e);
      } else this.answered(m, e);
      this.settled();
    });
    this.worker.on("error", (e) => this.fail(e));
    this.worker.on("exit", (code) => this.fail(new Error(`archive thread exited (${code})`)));
  }

  /** A writer's batch, sent at once (the writer gathered it): rendered, filtered by the preferences the thread keeps, and written there. */
  appendTexts(b: TextBatch): Promise<TextResult> {
    if (this.dead !== null) return Promise.reject(this.dead);
    return new Promise<TextResult>((resolve, reject) => {
      this.holding();
      const id = this.next++;
      this.textsSent.set(id, { resolve, reject });
      const m: TextsMessage = { op: "texts", id, ...b };
      this.worker.postMessage(m, [b.nums.buffer]);
    });
  }

  /** The preferences the thread keeps for `user` (null: anyone) are read again when next needed. */
  prefsChanged(user: string | null): void {
    if (this.dead === null) this.worker.postMessage({ op: "prefs", user } satisfies TextsMessage);
  }

  /** Something is about to be out: referenced while anything is, so a process ending waits for it (and the writer's flushed() does too). */
  protected holding(): void {
    if (this.out === 0) this.worker.ref();
  }

  /** Batches sent and not yet answered, and what a subclass holds (pending()). */
  protected get out(): number {
    return this.textsSent.size + this.pending();
  }

  /** A subclass's own messages out (SQLite's row hand-overs). */
  protected pending(): number {
    return 0;
  }

  /** An answer to a subclass's own message. */
  protected answered(_m: ThreadAnswer, _e: Error | null): void {}

  /** Sends what a subclass gathers, before closing. */
  protected flush(): void {}

  /** A subclass's own messages fail with `e`. */
  protected failed(_e: Error): void {}

  protected settled(): void {
    if (this.out > 0) return;
    if (this.dead === null) this.worker.unref();
    const cbs = this.idle;
    this.idle = [];
    for (const cb of cbs) cb();
  }

  /** After what was sent before is written. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.flush();
      if (this.out > 0) await new Promise<void>((r) => this.idle.push(r));
      this.dead ??= new Error("archive thread closed");
      await this.worker.terminate();
    })();
    return this.closing;
  }

  private fail(e: Error): void {
    if (this.dead !== null) return;
    this.dead = e;
    for (const t of this.textsSent.values()) t.reject(e);
    this.textsSent.clear();
    this.failed(e);
    this.settled();
  }
}
