/**
 * What the forwarding path hands a store writer (offline messages, archive
 * rows): push() only appends, or refuses at once when the queue is full.
 * Writing starts after the current event-loop turn, one batch at a time (which
 * keeps each user's entries in the order they came); what arrives meanwhile
 * forms the next batch. `write` settles a batch and never rejects: each writer
 * turns a store failure into its own outcome.
 */
export class BatchQueue<T> {
  private queue: T[] = [];
  private writing = false;
  /** Entries ever queued, and ever settled (written or failed): flushed() waits for a count. */
  private pushed = 0;
  private settled = 0;
  private waiters: { upTo: number; resolve: () => void }[] = [];
  /** The gathering timer (gatherMs > 0) while the first batch waits for more. */
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly maxQueued: number,
    private readonly maxBatch: number,
    private readonly write: (batch: T[]) => Promise<void>,
    /**
     * 0: a batch is what one event-loop turn queued. More: entries gather this long first (each write costs
     * its writer a fixed part, a query or a hand-over to a thread, whatever it carries), unless someone
     * waits in flushed() or a batch is full.
     */
    private readonly gatherMs = 0,
  ) {}

  /** Entries queued and not yet written. */
  get size(): number {
    return this.queue.length;
  }

  /** Queues an entry; false when the queue is full. */
  push(e: T): boolean {
    if (this.queue.length >= this.maxQueued) return false;
    this.queue.push(e);
    this.pushed++;
    if (!this.writing) {
      this.writing = true;
      // After this turn: everything queued in it goes in one batch; or after gathering for gatherMs.
      if (this.gatherMs > 0) this.timer = setTimeout(this.start, this.gatherMs);
      else setImmediate(this.start);
    } else if (this.timer !== null && this.queue.length >= this.maxBatch) this.now();
    return true;
  }

  private readonly start = (): void => {
    this.timer = null;
    void this.run();
  };

  /** The gathering ends now (someone waits, or a batch is full). */
  private now(): void {
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.start();
  }

  /** Someone waits in flushed() (a writer that gathers before writing should not make it wait longer). */
  get awaited(): boolean {
    return this.waiters.length > 0;
  }

  /** Resolves once everything queued before the call has been written (or has failed). */
  flushed(): Promise<void> {
    if (this.settled >= this.pushed) return Promise.resolve();
    const upTo = this.pushed;
    // A login's barrier or an archive query waits: not for the gathering.
    this.now();
    return new Promise((resolve) => this.waiters.push({ upTo, resolve }));
  }

  private async run(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.length <= this.maxBatch ? this.queue : this.queue.slice(0, this.maxBatch);
      this.queue = batch === this.queue ? [] : this.queue.slice(batch.length);
      await this.write(batch);
      this.settled += batch.length;
      if (this.waiters.length > 0) {
        const ready = this.waiters.filter((w) => w.upTo <= this.settled);
        this.waiters = this.waiters.filter((w) => w.upTo > this.settled);
        for (const w of ready) w.resolve();
      }
      // SQLite answers within the call: without this, a long queue would be written batch after
      // batch in one turn of the event loop. Sockets get their turn between two batches.
      if (this.queue.length > 0) await new Promise((r) => setImmediate(r));
    }
    this.writing = false;
  }
}
