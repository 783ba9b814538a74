/**
 * The stanzas written to a client and not yet acknowledged (XEP-0198), oldest
 * first, as written: their wire text as UTF-8 bytes in one buffer per queue,
 * outside V8's heap. Kept as strings, every stanza lived through the young
 * generation's scavenges until its ack (seconds) and was copied by them
 * (docs/benchmarks.md, session 18); bytes are copied once, here. The bytes
 * sit in [start, end) of `bytes`, each stanza's length in a ring beside them;
 * an ack moves `start`; a push that does not fit first moves what is kept to
 * the front, or doubles the buffer; an empty queue lets its buffer go. Text
 * comes back as strings only when the queue is read whole (resumption, a
 * session's end), exactly as written: the wire text is valid Unicode (the
 * codec decodes input to it and refuses character references to surrogates),
 * and a lone surrogate would have reached the socket as U+FFFD all the same.
 */
export class UnackedQueue {
  private bytes: Buffer | null = null;
  private start = 0;
  private end = 0;
  private lens: number[] = new Array<number>(8).fill(0);
  private head = 0;
  private count = 0;

  get length(): number {
    return this.count;
  }

  push(wire: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    const most = wire.length * 3;
    if (this.bytes === null || this.end + most > this.bytes.length) this.room(most);
    const n = this.bytes!.write(wire, this.end, "utf8");
    this.end += n;
    if (this.count === this.lens.length) this.grow();
    this.lens[(this.head + this.count) & (this.lens.length - 1)] = n;
    this.count++;
  }

  /** Room for `most` more bytes: what is kept moves to the front, into a buffer twice as large if need be. */
  private room(most: number): void {
    const kept = this.end - this.start;
    const old = this.bytes;
    if (old !== null && kept + most <= old.length && this.start > 0) {
      old.copyWithin(0, this.start, this.end);
    } else {
      let size = old === null ? 1024 : old.length;
      while (size < kept + most) size *= 2;
      // Up to 4 KiB from Node's buffer pool (a view, no allocation of its own); larger ones on their own.
      const bytes = Buffer.allocUnsafe(size);
      if (old !== null) old.copy(bytes, 0, this.start, this.end);
      this.bytes = bytes;
    }
    this.start = 0;
    this.end = kept;
  }

  private grow(): void {
    const n = this.lens.length;
    const lens = new Array<number>(n * 2).fill(0);
    for (let k = 0; k < n; k++) lens[k] = this.lens[(this.head + k) & (n - 1)];
    this.lens = lens;
    this.head = 0;
  }

  /** Drops the `n` oldest (n ≤ length). */
  drop(n: number): void {
    const mask = this.lens.length - 1;
    let bytes = 0;
    for (let k = 0; k < n; k++) {
      bytes += this.lens[this.head];
      this.head = (this.head + 1) & mask;
    }
    this.count -= n;
    this.start += bytes;
    if (this.count === 0) {
      this.start = 0;
      this.end = 0;
      // Nothing kept for a stream with nothing unacknowledged (an idle session holds no buffer); the next push takes
      // a view of the pool again.
      this.bytes = null;
      // A queue that held many once (a long silence) does not keep that much room for ever.
      if (this.lens.length > 64) {
        this.lens = new Array<number>(8).fill(0);
        this.head = 0;
      }
    }
  }

  /** What is still unacknowledged, oldest first. */
  pending(): string[] {
    const out: string[] = new Array(this.count);
    const mask = this.lens.length - 1;
    let at = this.start;
    for (let k = 0; k < this.count; k++) {
      const n = this.lens[(this.head + k) & mask];
      out[k] = this.bytes!.toString("utf8", at, at + n);
      at += n;
    }
    return out;
  }
}
