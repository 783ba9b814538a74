import type { Logger } from "../log/logger.js";
import type { OfflineResult, XmppStore } from "./xmpp-store.js";
import { BatchQueue } from "./batch-queue.js";

/** What became of a queued message: the store's answer, or "failed" when the write did not happen (store down, timeout). */
export type OfflineOutcome = OfflineResult | "failed";

interface Entry {
  user: string;
  stanza: string;
  key: string;
  resent: boolean;
  done: (o: OfflineOutcome) => void;
}

export interface OfflineWriterOptions {
  /** Messages a user may have waiting (xmpp.offlineQueueMax). */
  cap: number;
  /** Entries waiting to be written at most (storage.offlineWrites.maxQueued). */
  maxQueued: number;
  /** Entries per transaction at most (storage.offlineWrites.maxBatch). */
  maxBatch: number;
}

/**
 * The worker's queue of offline messages on their way to the store. The core
 * hands a message over and goes on: push() only appends (or refuses at once
 * when the queue is full). Writing starts after the current event-loop turn,
 * one batch at a time, each one transaction; what arrives meanwhile waits for
 * the next batch. One batch at a time keeps each user's messages in the order
 * they came. Every entry's `done` is called exactly once, with what the store
 * said or "failed" — never dropped.
 */
export class OfflineWriter {
  private readonly batches: BatchQueue<Entry>;
  /** Batches whose write failed (store down, statement timeout); the log has the first of each run. */
  failedBatches = 0;
  private failing = false;

  constructor(
    private readonly store: XmppStore,
    private readonly opts: OfflineWriterOptions,
    private readonly log: Logger,
  ) {
    this.batches = new BatchQueue(opts.maxQueued, opts.maxBatch, (batch) => this.write(batch));
  }

  /** Messages queued and not yet written. */
  get size(): number {
    return this.batches.size;
  }

  /** Queues a message (`key` and `resent`: OfflineEntry's); false when the queue is full (the caller refuses it now). */
  push(user: string, stanza: string, done: (o: OfflineOutcome) => void, key = "", resent = false): boolean {
    return this.batches.push({ user, stanza, key, resent, done });
  }

  /** Resolves once everything queued before the call has been written (or has failed). */
  flushed(): Promise<void> {
    return this.batches.flushed();
  }

  private async write(batch: Entry[]): Promise<void> {
    let results: OfflineOutcome[];
    try {
      results = await this.store.pushOffline(batch, this.opts.cap);
      if (this.failing) this.log.warn("offline messages are being stored again");
      this.failing = false;
    } catch (e) {
      this.failedBatches++;
      if (!this.failing) this.log.warn("offline messages not stored: the store failed; bouncing them to their senders", { error: (e as Error).message, batch: batch.length });
      this.failing = true;
      results = batch.map(() => "failed");
    }
    for (let i = 0; i < batch.length; i++) {
      try {
        batch[i].done(results[i]);
      } catch (e) {
        this.log.error("offline write callback failed", { error: (e as Error).stack });
      }
    }
  }
}
