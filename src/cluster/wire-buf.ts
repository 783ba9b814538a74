/**
 * The bus's binary fields (src/cluster/wire.ts): written straight into the
 * batch going to one peer, read straight from the bytes received. Numbers are
 * little-endian; a string is its UTF-8 byte length (u32) and its bytes.
 */

/**
 * Buffer's own UTF-8 methods without `write`/`toString`'s argument handling (in Node.js since v0.x, not typed):
 * a bus message has seven short strings or more.
 */
interface Utf8 {
  utf8Write(s: string, offset: number): number;
  utf8Slice(start: number, end: number): string;
}
const proto = Buffer.prototype as unknown as Partial<Utf8>;
const utf8Write: (b: Buffer, s: string, at: number) => number =
  typeof proto.utf8Write === "function" ? (b, s, at) => (b as unknown as Utf8).utf8Write(s, at) : (b, s, at) => b.write(s, at, "utf8");
const utf8Slice: (b: Buffer, start: number, end: number) => string =
  typeof proto.utf8Slice === "function" ? (b, start, end) => (b as unknown as Utf8).utf8Slice(start, end) : (b, start, end) => b.toString("utf8", start, end);

const EMPTY = Buffer.alloc(0);

/** A slab is shared by many batches: a batch handed to a socket is a view, and what it covers is never written again. */
const SLAB = 64 * 1024;

/**
 * Appends messages to a batch for one peer. `take()` hands out what was
 * written since the last take, as a view of the slab; later writes go after
 * it, or into a new slab, so the view stays valid for as long as a socket
 * holds it. A message is written after one `reserve` of its largest size, so
 * that its bytes stay where they were put.
 */
export class WireWriter {
  buf: Buffer = Buffer.allocUnsafe(SLAB);
  at = 0;
  private start = 0;

  /** Bytes written and not taken yet. */
  get pending(): number {
    return this.at - this.start;
  }

  /** Room for `n` more bytes; what is pending moves along to a new slab if this one is too short. */
  reserve(n: number): void {
    if (this.buf.length - this.at >= n) return;
    const keep = this.at - this.start;
    const next = Buffer.allocUnsafe(Math.max(SLAB, 2 * (keep + n)));
    this.buf.copy(next, 0, this.start, this.at);
    this.buf = next;
    this.start = 0;
    this.at = keep;
  }

  take(): Buffer {
    const out = this.buf.subarray(this.start, this.at);
    this.start = this.at;
    return out;
  }

  u8(v: number): void {
    this.buf[this.at++] = v;
  }

  u32(v: number): void {
    const b = this.buf;
    const at = this.at;
    b[at] = v;
    b[at + 1] = v >>> 8;
    b[at + 2] = v >>> 16;
    b[at + 3] = v >>> 24;
    this.at = at + 4;
  }

  /** Writes `v` at `at` (a length known only after what it counts was written). */
  u32At(at: number, v: number): void {
    const b = this.buf;
    b[at] = v;
    b[at + 1] = v >>> 8;
    b[at + 2] = v >>> 16;
    b[at + 3] = v >>> 24;
  }

  /** Ends the message whose frame starts at `frame`: its length (after the 4 bytes of the length itself), big-endian. */
  endFrame(frame: number): void {
    const b = this.buf;
    const n = this.at - frame - 4;
    b[frame] = n >>> 24;
    b[frame + 1] = n >>> 16;
    b[frame + 2] = n >>> 8;
    b[frame + 3] = n;
  }

  f64(v: number): void {
    this.buf.writeDoubleLE(v, this.at);
    this.at += 8;
  }

  /** Needs 4 + 3 × s.length reserved. Short ASCII (nearly every address and id) is copied here, the rest by Node.js. */
  str(s: string): void {
    const b = this.buf;
    const at = this.at + 4;
    const n = s.length;
    let len = n;
    if (n <= 64) {
      for (let i = 0; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) {
          len = utf8Write(b, s, at);
          break;
        }
        b[at + i] = c;
      }
    } else len = utf8Write(b, s, at);
    this.u32(len);
    this.at += len;
  }

  /** Text as its UTF-8 bytes behind their length; needs 4 + 3 × s.length reserved. */
  text(s: string): void {
    const at = this.at;
    const len = utf8Write(this.buf, s, at + 4);
    this.u32At(at, len);
    this.at = at + 4 + len;
  }

  /** Needs 4 + bytes.length reserved. */
  bytes(v: Uint8Array): void {
    this.u32(v.length);
    this.buf.set(v, this.at);
    this.at += v.length;
  }
}

/** Reads what a WireWriter wrote; every read past the end throws, so a short or foreign message costs only itself. */
export class WireReader {
  private buf: Buffer = EMPTY;
  at = 0;
  /** Where the message read ends in `buf`. */
  private end = 0;

  constructor(bytes?: Uint8Array) {
    if (bytes !== undefined) this.reset(bytes, 0, bytes.length);
  }

  /**
   * Reads bytes[start, end) next: one reader serves every message of a batch, with no view made per message
   * (a Buffer is read as it is; another Uint8Array through one Buffer view of it).
   */
  reset(bytes: Uint8Array, start: number, end: number): void {
    this.buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.at = start;
    this.end = end;
  }

  get left(): number {
    return this.end - this.at;
  }

  private need(n: number): void {
    if (this.end - this.at < n) throw new Error("bus message truncated");
  }

  u8(): number {
    this.need(1);
    return this.buf[this.at++];
  }

  u32(): number {
    this.need(4);
    const b = this.buf;
    const at = this.at;
    this.at = at + 4;
    return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16)) + b[at + 3] * 0x1000000;
  }

  f64(): number {
    this.need(8);
    const v = this.buf.readDoubleLE(this.at);
    this.at += 8;
    return v;
  }

  str(): string {
    const len = this.u32();
    this.need(len);
    const at = this.at;
    this.at = at + len;
    return len === 0 ? "" : utf8Slice(this.buf, at, at + len);
  }

  /** A view of the next `len` bytes (not a copy). */
  view(len: number): Buffer {
    this.need(len);
    const at = this.at;
    this.at = at + len;
    return this.buf.subarray(at, at + len);
  }
}
