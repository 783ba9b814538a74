/**
 * The inbound side of a host link: length-prefixed messages (u32 big-endian,
 * then the bytes) read by the kernel straight into a slab that this reader
 * owns, and handed out in place. The link's socket reads into `next` (Node's
 * `onread` with a buffer per read: readInto in src/transport/node-internals.ts),
 * so a read costs no Buffer of Node's, no Readable stream work and no 'data'
 * event; a message split across two reads is usually whole in the slab, because
 * the second read lands right behind the first.
 *
 * Bytes once handed out are never written again, so that a reader may keep a
 * view of them. So the slab is only filled forwards; when too little of it is
 * left, the next reads go to a new one (and the part of a message read so far is
 * copied there, the only copy). No reader keeps one today: the bus decode takes
 * views (WireReader.view) but the payload codecs copy (relay: Buffer.from) or
 * parse (xmpp) them. A view kept would hold its whole 64 KiB slab alive, where a
 * chunk of Node's own reads is exactly the bytes read: a small payload kept per
 * slab (a slow consumer's backlog, counted in its own bytes) would pin up to
 * 64 KiB of link traffic each. Keep the codecs' copy for small payloads.
 */

/** A new slab's size: a read of the host link is a turn's batch, a few KiB at most under load. */
export const SLAB_BYTES = 64 * 1024;
/** A read is never offered less than this: below it the next reads go to a new slab. */
const MIN_READ = 4 * 1024;

export class SlabFrames {
  private slab: Buffer;
  /** The first byte not handed out yet (a message's length, or part of it). */
  private from = 0;
  /** The end of what was read. */
  private to = 0;
  /** Where the next read lands: the slab from `to`. */
  next: Buffer;
  /** The length of the message that read() refused (past maxMessage); -1 before. */
  refused = -1;

  constructor(
    /** One whole message: data[start, end). The bytes stay as they are for as long as anyone holds them. */
    private readonly onMessage: (data: Buffer, start: number, end: number) => void,
    /** Messages past this many bytes are refused: read() returns false and the link should be closed. */
    private readonly maxMessage: number,
    private readonly slabBytes = SLAB_BYTES,
  ) {
    this.slab = Buffer.allocUnsafe(slabBytes);
    this.next = this.slab;
  }

  /**
   * `n` bytes were read into `next`: every message now whole goes to onMessage in order, and `next` is readied
   * for the following read. False when a message's length passes maxMessage (nothing after it is handed out).
   */
  read(n: number): boolean {
    const slab = this.slab;
    const to = (this.to += n);
    let at = this.from;
    let len = -1;
    while (to - at >= 4) {
      len = slab.readUInt32BE(at);
      if (len > this.maxMessage) {
        this.refused = len;
        return false;
      }
      if (to - at - 4 < len) break;
      this.onMessage(slab, at + 4, at + 4 + len);
      at += 4 + len;
      len = -1;
    }
    this.from = at;
    // What the message in part needs in all (4 while its length is not read yet). It stays in this slab when
    // it fits there and either its rest is all that the next read is for, or MIN_READ is left for reads.
    const need = len < 0 ? 4 : 4 + len;
    if (at + need <= slab.length && (len >= 0 || slab.length - to >= MIN_READ)) {
      this.next = slab.subarray(to);
      return true;
    }
    // A new slab, the part read so far copied to its start.
    const part = to - at;
    const fresh = Buffer.allocUnsafe(Math.max(this.slabBytes, need + MIN_READ));
    if (part > 0) slab.copy(fresh, 0, at, to);
    this.slab = fresh;
    this.from = 0;
    this.to = part;
    this.next = fresh.subarray(part);
    return true;
  }

  /** Bytes read elsewhere (a socket with Node's own reads): copied in, then handed out as read() does. */
  push(chunk: Uint8Array): boolean {
    let at = 0;
    while (at < chunk.length) {
      const k = Math.min(this.next.length, chunk.length - at);
      this.next.set(chunk.subarray(at, at + k));
      at += k;
      if (!this.read(k)) return false;
    }
    return true;
  }
}
