/**
 * Relay protocol v1 framing (../shared/RELAY-PROTOCOL.md):
 *   u32 frameLength | u16 headerLength | header (UTF-8 JSON object) | body
 * The decoder only parses and emits; it knows no session, routing or socket.
 */

export type RelayErrorCode = "bad-frame" | "too-large";

export class RelayFrameError extends Error {
  constructor(
    readonly code: RelayErrorCode,
    text: string,
  ) {
    super(text);
  }
}

export type Header = Record<string, unknown>;

export interface FrameSink {
  frame(header: Header, body: Buffer): void;
}

/** Parses one frame without its u32 length: the WebSocket form, and the tail of the TCP form. */
export function decodeFrame(frame: Buffer): { header: Header; body: Buffer } {
  if (frame.length < 2) throw new RelayFrameError("bad-frame", "frame shorter than its header length");
  const headerLength = frame.readUInt16BE(0);
  if (2 + headerLength > frame.length) throw new RelayFrameError("bad-frame", "header longer than the frame");
  let header: unknown;
  try {
    header = JSON.parse(frame.toString("utf8", 2, 2 + headerLength));
  } catch {
    throw new RelayFrameError("bad-frame", "header is not JSON");
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new RelayFrameError("bad-frame", "header is not a JSON object");
  }
  return { header: header as Header, body: frame.subarray(2 + headerLength) };
}

/**
 * The TCP stream decoder. Keeps received chunks as a list and hands out views;
 * it copies only a frame that straddles chunks. The length is checked before a
 * single byte of the frame is buffered beyond what already arrived.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Length of the frame being read, or -1 while its u32 has not arrived. */
  private frameLength = -1;

  constructor(
    /** Frames longer than this are refused from their length alone; may change (e.g. after auth). */
    public maxFrameBytes: number,
    private readonly sink: FrameSink,
  ) {}

  /** Bytes held while waiting for the rest of a frame. */
  get pendingBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.frameLength < 0) {
        if (this.buffered < 4) return;
        const len = this.readLength();
        if (len > this.maxFrameBytes) throw new RelayFrameError("too-large", `frame of ${len} bytes exceeds ${this.maxFrameBytes}`);
        this.frameLength = len;
      }
      if (this.buffered < this.frameLength) return;
      const frame = this.consume(this.frameLength);
      this.frameLength = -1;
      const { header, body } = decodeFrame(frame);
      this.sink.frame(header, body);
    }
  }

  private readLength(): number {
    const first = this.chunks[0];
    if (first.length >= 4) {
      const n = first.readUInt32BE(0);
      this.consume(4);
      return n;
    }
    return this.consume(4).readUInt32BE(0);
  }

  private consume(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0];
      const take = Math.min(c.length, n - off);
      c.copy(out, off, 0, take);
      off += take;
      if (take === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(take);
    }
    return out;
  }
}

/**
 * The length prefix and header of a frame in one small buffer; the body stays
 * a separate buffer so it is written without being copied. For WebSocket,
 * send `prefix.subarray(4)` and the body as one message.
 */
export function encodeHead(header: Header | string, bodyLength: number): Buffer {
  const json = typeof header === "string" ? header : JSON.stringify(header);
  const headerLength = Buffer.byteLength(json);
  if (headerLength > 0xffff) throw new RangeError("relay header over 65535 bytes");
  const buf = Buffer.allocUnsafe(6 + headerLength);
  buf.writeUInt32BE(2 + headerLength + bodyLength, 0);
  buf.writeUInt16BE(headerLength, 4);
  buf.write(json, 6, "utf8");
  return buf;
}

export const EMPTY = Buffer.alloc(0);

/** A whole frame in one buffer (tests, small control frames). */
export function encodeFrame(header: Header, body: Buffer = EMPTY): Buffer {
  const head = encodeHead(header, body.length);
  return body.length ? Buffer.concat([head, body]) : head;
}
