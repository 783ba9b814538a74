import { Worker } from "node:worker_threads";
import type { ArchiveRow } from "./archive-store.js";

/** A batch on its way to the thread, and its answer. */
interface Pending {
  resolve: (n: number) => void;
  reject: (e: Error) => void;
}

/**
 * The archive's writes on a thread of their own (SQLite). better-sqlite3 is synchronous: a batch of
 * archived messages inserted on the event loop held the worker's forwarding for the whole
 * transaction, tens of milliseconds as the archive grew (docs/benchmarks.md, "Archives"). Here the
 * thread has its own connection to the same file (WAL: readers on the event loop go on meanwhile),
 * waits on the file's lock itself, and only the rows cross (structured clone, strings). Queries,
 * preferences and retention stay on the event loop's connection.
 */
export class SqliteArchiveThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private readonly inFlight = new Set<Promise<number>>();
  private next = 1;
  private dead: Error | null = null;
  private closing: Promise<void> | null = null;

  constructor(path: string, lockTimeoutMs: number) {
    this.worker = new Worker(new URL("./sqlite-archive-thread-main.js", import.meta.url), { workerData: { path, lockTimeoutMs } });
    this.worker.unref();
    this.worker.on("message", (m: { id: number; n?: number; error?: string; code?: string }) => {
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      if (m.error === undefined) p.resolve(m.n ?? 0);
      else p.reject(Object.assign(new Error(m.error), { code: m.code }));
    });
    this.worker.on("error", (e) => this.fail(e));
    this.worker.on("exit", (code) => this.fail(new Error(`archive thread exited (${code})`)));
  }

  /** Rows in one transaction on the thread; resolves to the rows added (a (user, id) there already is skipped). */
  append(rows: readonly ArchiveRow[]): Promise<number> {
    if (this.dead !== null) return Promise.reject(this.dead);
    const id = this.next++;
    const done = new Promise<number>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Referenced while a batch is out: a process ending waits for it (and the writer's flushed() does too).
      if (this.pending.size === 1) this.worker.ref();
      this.worker.postMessage({ id, rows });
    });
    this.inFlight.add(done);
    const settled = () => {
      this.inFlight.delete(done);
      if (this.pending.size === 0) this.worker.unref();
    };
    done.then(settled, settled);
    return done;
  }

  /** After the batches already sent are written. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([...this.inFlight]);
      this.dead ??= new Error("archive thread closed");
      await this.worker.terminate();
    })();
    return this.closing;
  }

  private fail(e: Error): void {
    if (this.dead !== null) return;
    this.dead = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
