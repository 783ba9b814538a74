import type { Logger } from "../log/logger.js";
import { TEXT_FIELDS, type ArchiveMode, type ArchivePrefs, type ArchiveRow, type ArchiveStore, type TextBatch, type TextResult } from "./archive-store.js";
import { BatchQueue } from "./batch-queue.js";
import { ArchivePrefsCache, decide } from "./archive-prefs.js";

/**
 * A message queued for the archive of `bare` (`outgoing`: that user sent it), as the core handed it over:
 * the row (user, id, contact, text) is made from it when its batch is written, off the forwarding path.
 */
export interface ArchiveEntry {
  bare: string;
  outgoing: boolean;
  /** When the owner took it (ms): the archive's order. */
  ts: number;
  payload: unknown;
  from: string;
  to: string;
}

/** What the protocol reads from an entry's payload: its id in the archives and its text; null: not to be archived. */
export interface Rendered {
  id: string;
  text: string;
}

export interface ArchiveWriterOptions {
  /** For users with no preferences stored (xmpp.mam.defaultMode). */
  defaultMode: ArchiveMode;
  maxQueued: number;
  maxBatch: number;
  /** Users whose preferences are kept in memory (xmpp.mam.prefsCacheSize). */
  prefsCacheSize: number;
  /** How long messages gather before a batch is written (xmpp.mam.gatherMs); 0: a batch per event-loop turn. */
  gatherMs?: number;
  /** 0: kept for ever. */
  retentionDays: number;
  /** The message's id and text as archived (XMPP: its stanza-id, the stanza without it), or null to skip it. */
  render: (e: ArchiveEntry) => Rendered | null;
  /**
   * For a store that renders off the event loop (ArchiveStore.appendTexts): the message's text as written, for
   * `renderModule`'s renderWire(text, from, to) to render there; null to skip it. Without both: `render`.
   */
  text?: (e: ArchiveEntry) => string | null;
  renderModule?: string;
  /** Is `jid` in `user`'s roster (the "roster" mode)? */
  inRoster: (user: string, jid: string) => Promise<boolean>;
}

const HOUR_MS = 3_600_000;
/**
 * A TextBatch's strings are joined in pieces of about this many characters: a string past V8's largest
 * regular object (~128 KiB) goes to its large-object space, and one of 250 KB cost the event loop ~1 ms
 * to join where ten of 25 KB cost 0.2 ms (docs/benchmarks.md, "Archives", session 14).
 */
const CHUNK_CHARS = 16_384;
/** Rows one retention step removes: one short transaction, then the event loop gets a turn. */
const EXPIRE_STEP = 5000;

/**
 * The worker's queue of messages for the archives of the users it owns
 * (XEP-0313). The core's sink only appends; batches gather for gatherMs. A
 * store that can (SQLite on a file: its thread) is handed each batch as the
 * messages' texts as written and their addresses, end to end (appendTexts),
 * and renders, filters by its users' preferences and writes it off the event
 * loop; otherwise the batch is filtered here by the preferences kept in
 * ArchivePrefsCache (read once per user until they change), rendered and
 * written in one transaction or statement.
 * The archive is not a delivery guarantee: a message the queue cannot take, or
 * a batch the store refuses, is counted and logged, and delivery goes on.
 */
export class ArchiveWriter {
  private readonly batches: BatchQueue<ArchiveEntry>;
  /** The preferences of the users this worker archives for. */
  readonly prefs: ArchivePrefsCache;
  private failing = false;
  private sweep: NodeJS.Timeout | null = null;
  /** Rows written, skipped by preferences, dropped (queue full), in failed batches; expired by retention. */
  readonly stats = { archived: 0, skipped: 0, dropped: 0, failed: 0, failedBatches: 0, expired: 0 };

  constructor(
    private readonly store: ArchiveStore,
    private readonly opts: ArchiveWriterOptions,
    private readonly log: Logger,
  ) {
    this.batches = new BatchQueue(opts.maxQueued, opts.maxBatch, (batch) => this.write(batch), opts.gatherMs ?? 0);
    this.prefs = new ArchivePrefsCache(store, opts.prefsCacheSize);
    if (opts.retentionDays > 0) {
      this.sweep = setInterval(() => void this.expire(), HOUR_MS);
      this.sweep.unref();
    }
  }

  get size(): number {
    return this.batches.size;
  }

  /** Queues a message; false when the queue is full (it is not archived). */
  push(e: ArchiveEntry): boolean {
    if (this.batches.push(e)) return true;
    if (this.stats.dropped++ === 0) this.log.warn("archive write queue full: messages are not archived", { maxQueued: this.opts.maxQueued });
    return false;
  }

  /** `user`'s preferences were set (on any worker); null: anyone's may have been. Read again when next needed. */
  prefsChanged(user: string | null): void {
    this.prefs.forget(user);
    this.store.prefsChanged?.(user);
  }

  /** Resolves once everything queued before the call has been written (or has failed). */
  flushed(): Promise<void> {
    const done = this.batches.flushed();
    this.store.hurry?.();
    return done;
  }

  close(): void {
    if (this.sweep !== null) clearInterval(this.sweep);
    this.sweep = null;
  }

  /** Removes what is past the retention limit, a step at a time (also called by tests). */
  async expire(now = Date.now()): Promise<number> {
    if (this.opts.retentionDays <= 0) return 0;
    const before = now - this.opts.retentionDays * 86_400_000;
    let total = 0;
    try {
      for (;;) {
        const n = await this.store.expire(before, EXPIRE_STEP);
        total += n;
        if (n < EXPIRE_STEP) break;
        await new Promise((r) => setImmediate(r));
      }
    } catch (e) {
      this.log.warn("archive retention sweep failed", { error: (e as Error).message });
    }
    this.stats.expired += total;
    return total;
  }

  private async write(batch: ArchiveEntry[]): Promise<void> {
    try {
      const n = (await this.writeTexts(batch)) ?? (await this.writeRows(batch));
      this.stats.archived += n;
      if (this.failing) this.log.warn("messages are being archived again");
      this.failing = false;
    } catch (e) {
      this.stats.failedBatches++;
      this.stats.failed += batch.length;
      if (!this.failing) this.log.warn("messages not archived: the store failed", { error: (e as Error).message, batch: batch.length });
      this.failing = true;
    }
  }

  /** Rows made and written here: resolves to the rows kept. */
  private async writeRows(batch: readonly ArchiveEntry[]): Promise<number> {
    const rows = await this.rows(batch);
    if (rows.length > 0) {
      const written = this.store.append(rows);
      // A login's barrier or an archive query waits (flushed): not for the store's gathering time.
      if (this.batches.awaited) this.store.hurry?.();
      await written;
    }
    return rows.length;
  }

  /**
   * The batch handed to a store that makes its rows off the event loop (appendTexts): each entry's text as
   * written and its addresses, end to end, no rendering and no preferences here. Entries whose preferences
   * say "roster" come back: the roster is asked here, and those let through go again, decided. Null: the
   * store cannot (in memory), the rows are made here.
   */
  private async writeTexts(batch: readonly ArchiveEntry[]): Promise<number | null> {
    const { text, renderModule } = this.opts;
    if (text === undefined || renderModule === undefined || this.store.appendTexts === undefined) return null;
    const first = this.store.appendTexts(this.encode(batch, text, renderModule, false));
    if (first === null) return null;
    const r = await first;
    let kept = this.settle(r);
    if (r.ask.length === 0) return kept;
    const through: ArchiveEntry[] = [];
    for (const [i, user, contact] of r.ask) {
      if (await this.opts.inRoster(user, contact)) through.push(batch[i]);
      else this.stats.skipped++;
    }
    if (through.length > 0) kept += this.settle(await this.store.appendTexts(this.encode(through, text, renderModule, true))!);
    return kept;
  }

  private settle(r: TextResult): number {
    this.stats.skipped += r.skipped;
    this.prefs.reads += r.reads;
    return r.kept;
  }

  /** TextBatch's layout: the strings end to end, TEXT_FIELDS numbers per entry. A message's entries (both users) share its text. */
  private encode(batch: readonly ArchiveEntry[], text: (e: ArchiveEntry) => string | null, renderModule: string, decided: boolean): TextBatch {
    const nums = new Float64Array(batch.length * TEXT_FIELDS);
    const strs: string[] = [];
    let parts: string[] = [];
    let chars = 0;
    let lastPayload: unknown = undefined;
    let at = 0;
    for (let i = 0; i < batch.length; i++) {
      const e = batch[i];
      let len = -1;
      if (e.payload !== lastPayload) {
        lastPayload = e.payload;
        const t = text(e) ?? "";
        parts.push(t);
        len = t.length;
        chars += len;
      }
      parts.push(e.bare, e.from, e.to);
      chars += e.bare.length + e.from.length + e.to.length;
      nums[at++] = len;
      nums[at++] = e.bare.length;
      nums[at++] = e.from.length;
      nums[at++] = e.to.length;
      nums[at++] = e.outgoing ? 1 : 0;
      nums[at++] = e.ts;
      if (chars >= CHUNK_CHARS) {
        strs.push(parts.join(""));
        parts = [];
        chars = 0;
      }
    }
    if (parts.length > 0) strs.push(parts.join(""));
    return { nums, strs, decided, defaultMode: this.opts.defaultMode, prefsCacheSize: this.opts.prefsCacheSize, renderModule };
  }

  /** The batch as rows: preferences applied (XEP-0313 §6), each text rendered once per message (both directions share it). */
  private async rows(batch: readonly ArchiveEntry[]): Promise<ArchiveRow[]> {
    const rows: ArchiveRow[] = [];
    const cache = this.prefs;
    /** Users whose preferences are not kept: read once for the batch (the batch waits for them, not the path). */
    let missing: Set<string> | null = null;
    let lastPayload: unknown = undefined;
    let last: Rendered | null = null;
    for (const e of batch) {
      if (e.payload !== lastPayload) {
        lastPayload = e.payload;
        last = this.opts.render(e);
      }
      if (last === null) continue;
      const at = e.bare.indexOf("@");
      const other = e.outgoing ? e.to : e.from;
      const slash = other.indexOf("/");
      const user = e.bare.slice(0, at);
      if (cache.get(user) === undefined) (missing ??= new Set()).add(user);
      rows.push({
        user,
        id: last.id,
        with: slash < 0 ? other : other.slice(0, slash),
        withResource: slash < 0 ? "" : other.slice(slash + 1),
        ts: e.ts,
        outgoing: e.outgoing,
        stanza: last.text,
      });
    }
    const read = missing === null ? null : await cache.read([...missing]);
    // Nobody here has preferences stored and the default keeps everything: no row needs a look.
    if (this.opts.defaultMode === "always" && !cache.anyStored && (read === null || read.size === 0)) return rows;
    const kept: ArchiveRow[] = [];
    for (const r of rows) {
      // Kept, or read for this batch (a read overtaken by a change is not kept, but serves its batch).
      const p = cache.get(r.user) ?? read?.get(r.user) ?? undefined;
      if (await this.wanted(p, r)) kept.push(r);
      else this.stats.skipped++;
    }
    return kept;
  }

  private wanted(p: ArchivePrefs | null | undefined, e: ArchiveRow): boolean | Promise<boolean> {
    const d = decide(p, e.with, this.opts.defaultMode);
    return d === "roster" ? this.opts.inRoster(e.user, e.with) : d;
  }
}
