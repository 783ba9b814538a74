/** Page sizes: SMALLEST_PAGE << k for k in [0, CLASSES). */
const SMALLEST_PAGE = 1024;
const CLASSES = 7;
/** The largest page (64 KiB): a stream with more unacknowledged output has a buffer of its own. */
export const LARGEST_PAGE = SMALLEST_PAGE << (CLASSES - 1);
/** Pages are cut from slabs of this size (one page when the page is larger). */
const SLAB_BYTES = 256 * 1024;

/**
 * Byte pages for the XEP-0198 unacked queues of a worker (unacked-queue.ts),
 * cut from large slabs outside the collected heap, in sizes from 1 KiB to
 * 64 KiB by doubling. A stream takes a page when it writes its first
 * unacknowledged stanza and gives it back when its client has acknowledged
 * everything: a taken page is an index, not an object, so a stream that goes
 * through an ack every few stanzas allocates nothing, and a stream with
 * nothing unacknowledged (an idle one) holds nothing.
 *
 * A page is named by an integer: its size class in the low 3 bits, its
 * number within the class above them. Slabs are kept once cut (the worker's
 * high-water mark of busy streams); `bytes` says how much that is.
 */
export class PagePool {
  private readonly slabs: Buffer[][] = [];
  /** Free page numbers per class, a stack. */
  private readonly free: number[][] = [];
  /** Pages cut so far per class. */
  private readonly cut: number[] = [];
  private readonly perSlab: number[] = [];
  /** Bytes of all slabs cut. */
  bytes = 0;
  /** Pages taken and not given back. */
  taken = 0;

  constructor() {
    for (let c = 0; c < CLASSES; c++) {
      this.slabs.push([]);
      this.free.push([]);
      this.cut.push(0);
      this.perSlab.push(Math.max(1, SLAB_BYTES / (SMALLEST_PAGE << c)));
    }
  }

  /** The smallest size class whose page holds `bytes`; -1: larger than LARGEST_PAGE. */
  static classFor(bytes: number): number {
    for (let c = 0; c < CLASSES; c++) if (SMALLEST_PAGE << c >= bytes) return c;
    return -1;
  }

  /** A page of class `c`. */
  take(c: number): number {
    const free = this.free[c];
    let n: number;
    if (free.length > 0) n = free.pop() as number;
    else {
      n = this.cut[c]++;
      const per = this.perSlab[c];
      if (n % per === 0) {
        // Not from Node's shared pool: a slab lives as long as the worker.
        this.slabs[c].push(Buffer.allocUnsafeSlow(per * (SMALLEST_PAGE << c)));
        this.bytes += per * (SMALLEST_PAGE << c);
      }
    }
    this.taken++;
    return (n << 3) | c;
  }

  give(page: number): void {
    this.free[page & 7].push(page >>> 3);
    this.taken--;
  }

  /** The slab that holds `page`. */
  slab(page: number): Buffer {
    const c = page & 7;
    return this.slabs[c][Math.floor((page >>> 3) / this.perSlab[c])];
  }

  /** Where `page` starts in its slab. */
  offset(page: number): number {
    const c = page & 7;
    return ((page >>> 3) % this.perSlab[c]) * (SMALLEST_PAGE << c);
  }

  static size(page: number): number {
    return SMALLEST_PAGE << (page & 7);
  }
}

/** The worker's pool (one process is one worker). */
export const unackedPages = new PagePool();
