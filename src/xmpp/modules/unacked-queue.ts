import { LARGEST_PAGE, PagePool, unackedPages } from "./unacked-pages.js";

/** A queue that no one discarded (a session dropped without its end) gives its page back when collected. */
const lost = new FinalizationRegistry<{ pool: PagePool; page: number }>((t) => {
  if (t.page >= 0) t.pool.give(t.page);
});

/**
 * The stanzas written to a client and not yet acknowledged (XEP-0198), oldest
 * first, as written: their bytes (UTF-8, what went to the socket) in a page of
 * the worker's PagePool (unacked-pages.ts), and the length of each in a ring
 * of integers.
 *
 * Not strings: an unacknowledged stanza lives until its client's <a/>, seconds
 * at load, so as a string it survived scavenges and was copied into the old
 * generation each time (and the rope the serializer built would also keep the
 * parsed stanza's pieces and the input they were cut from alive). Bytes in a
 * page are outside the collected heap, and a page is an index: a push is one
 * encode into it, an ack moves an offset, and a queue that empties gives its
 * page back, so an idle stream holds no buffer.
 *
 * The live bytes are [start, end) of the page. A push that does not fit moves
 * them to the page's front (after an ack that covered everything, the usual
 * case, there is nothing to move) or into a page twice as large; past the
 * largest page, a buffer of the queue's own. Text comes back only where it is
 * read again: resent on resumption, handed to another worker, stored offline.
 */
export class UnackedQueue {
  /** The page (PagePool's number); -1: none, or `buf` is the queue's own buffer. */
  private page = -1;
  private buf: Buffer | null = null;
  /** Where the page starts in `buf`, and its size. */
  private base = 0;
  private cap = 0;
  private start = 0;
  private end = 0;
  /** The byte length of each stanza, oldest at `head`, a ring whose capacity is a power of two. */
  private lens = new Int32Array(16);
  private head = 0;
  private count = 0;
  /**
   * The room the queue's next page starts with: what it needed last time (the stanzas between two acks, which
   * change little), so that it does not move up page by page in every round; a round that used a quarter of it or less lowers it.
   */
  private want = 0;
  /** What the finalizer gives back (the page, while one is taken). */
  private readonly token: { pool: PagePool; page: number };

  constructor(private readonly pool: PagePool = unackedPages) {
    this.token = { pool, page: -1 };
    lost.register(this, this.token);
  }

  get length(): number {
    return this.count;
  }

  /** UTF-8 bytes held. */
  get bytes(): number {
    return this.end - this.start;
  }

  push(wire: string): void {
    const buf = this.buf;
    // A UTF-16 unit takes at most 3 bytes in UTF-8: room for that needs no measuring.
    const n = buf !== null && this.end + wire.length * 3 <= this.cap ? buf.write(wire, this.base + this.end) : this.pushSlow(wire);
    this.end += n;
    if (this.count === this.lens.length) this.growLens();
    this.lens[(this.head + this.count) & (this.lens.length - 1)] = n;
    this.count++;
  }

  /** Makes room for `wire` (measured) and writes it at `end`: its byte length. */
  private pushSlow(wire: string): number {
    const n = Buffer.byteLength(wire, "utf8");
    const live = this.end - this.start;
    if (this.buf === null || this.end + n > this.cap) {
      if (this.buf !== null && live + n <= this.cap) this.buf.copyWithin(this.base, this.base + this.start, this.base + this.end);
      else this.move(live + n);
      this.start = 0;
      this.end = live;
    }
    return (this.buf as Buffer).write(wire, this.base + this.end, n);
  }

  /** Into a page (or buffer) of at least twice the room it has, and `need` bytes; the live bytes go first. */
  private move(need: number): void {
    let size = Math.max(need, this.cap * 2, this.want);
    const c = size <= LARGEST_PAGE ? PagePool.classFor(size) : -1;
    let buf: Buffer;
    let base = 0;
    let page = -1;
    if (c >= 0) {
      page = this.pool.take(c);
      buf = this.pool.slab(page);
      base = this.pool.offset(page);
      size = PagePool.size(page);
    } else {
      // Beyond the largest page (a client silent for long): a buffer of this queue's own, not from Node's shared pool.
      buf = Buffer.allocUnsafeSlow(size);
    }
    if (this.buf !== null) this.buf.copy(buf, base, this.base + this.start, this.base + this.end);
    this.letGo();
    this.buf = buf;
    this.base = base;
    this.cap = size;
    this.page = page;
    this.token.page = page;
    if (size <= LARGEST_PAGE) this.want = size;
  }

  /** The page goes back to the pool (or the own buffer to the collector). */
  private letGo(): void {
    if (this.page >= 0) this.pool.give(this.page);
    this.page = -1;
    this.token.page = -1;
    this.buf = null;
    this.base = 0;
    this.cap = 0;
  }

  private growLens(): void {
    const n = this.lens.length;
    const lens = new Int32Array(n * 2);
    for (let k = 0; k < n; k++) lens[k] = this.lens[(this.head + k) & (n - 1)];
    this.lens = lens;
    this.head = 0;
  }

  /** Drops the `n` oldest (n ≤ length). Emptied, the queue gives its page back. */
  drop(n: number): void {
    const mask = this.lens.length - 1;
    let bytes = 0;
    for (let k = 0; k < n; k++) {
      bytes += this.lens[this.head];
      this.head = (this.head + 1) & mask;
    }
    this.count -= n;
    this.start += bytes;
    if (this.count > 0) return;
    if (this.end * 4 <= this.cap) this.want = Math.min(this.cap >>> 1, LARGEST_PAGE);
    this.start = 0;
    this.end = 0;
    this.head = 0;
    if (this.buf !== null) this.letGo();
    // A queue that held many once (a long silence) does not keep that much room for ever.
    if (this.lens.length > 1024) this.lens = new Int32Array(16);
  }

  /** What is still unacknowledged, oldest first, as text. */
  pending(): string[] {
    const out: string[] = new Array(this.count);
    const mask = this.lens.length - 1;
    const buf = this.buf;
    let at = this.base + this.start;
    for (let k = 0; k < this.count; k++) {
      const n = this.lens[(this.head + k) & mask];
      out[k] = (buf as Buffer).toString("utf8", at, at + n);
      at += n;
    }
    return out;
  }
}
