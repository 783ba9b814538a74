const FIRST_CAPACITY = 8;
const EMPTY = 0;
const GONE = -1;
// Per process, as V8 seeds its own: a client that picks its ids cannot aim at one bucket from outside.
const SEED = (Math.random() * 0x100000000) | 0;

function hashOf(s: string): number {
  // FNV-1a, then the high bits folded in: the mask keeps only the low ones.
  let h = SEED ^ 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h ^ (h >>> 15);
}

/**
 * A session's requests not answered yet (`Session.inbound`), by string key, oldest first. It replaces a Map
 * for the reason `KeyRing` (src/pending/key-ring.ts) replaced PendingList's: a Map used as a queue rebuilds
 * its hash table every few hundred entries and V8 leaves each old table pointing at the new one and at the
 * entries it held, a chain that keeps every entry alive through scavenges once one table is old
 * (docs/benchmarks.md, sessions 24 and 25). Keys here are strings (a ref, or sender and id), which a ring by
 * number cannot hold.
 *
 * Entries sit in arrival order in `kv` (key and value side by side), found through an open-addressing index
 * of their places (linear probing, at most half full). A deleted entry's key and value are cleared at once,
 * its index slot marked gone; when the entries reach the end of `kv`, the live ones move to the front (or to
 * arrays of a fitting size, the old ones cleared) and the index is built again. Nothing this table let go
 * stays reachable from it.
 */
export class InboundTable<V> {
  private kv: (string | V | undefined)[] = new Array<string | V | undefined>(2 * FIRST_CAPACITY).fill(undefined);
  private hashes = new Int32Array(FIRST_CAPACITY);
  /** Place + 1 in `kv` of the entry in each bucket; EMPTY, or GONE (deleted: probing goes on past it). */
  private index = new Int32Array(2 * FIRST_CAPACITY);
  private cap = FIRST_CAPACITY;
  /** The oldest place that may hold an entry, and the next place to fill. */
  private head = 0;
  private tail = 0;
  private live = 0;

  get size(): number {
    return this.live;
  }

  get(k: string): V | undefined {
    const b = this.find(k, hashOf(k));
    return b < 0 ? undefined : (this.kv[2 * (this.index[b] - 1) + 1] as V);
  }

  /** As Map's set: a key held already keeps its place and takes the new value. */
  set(k: string, v: V): void {
    const h = hashOf(k);
    const b = this.find(k, h);
    if (b >= 0) {
      this.kv[2 * (this.index[b] - 1) + 1] = v;
      return;
    }
    if (this.tail === this.cap) this.repack();
    const p = this.tail++;
    this.kv[2 * p] = k;
    this.kv[2 * p + 1] = v;
    this.hashes[p] = h;
    this.place(h, p);
    this.live++;
  }

  delete(k: string): boolean {
    const b = this.find(k, hashOf(k));
    if (b < 0) return false;
    this.removeAt(b, this.index[b] - 1);
    return true;
  }

  /** The oldest entry's value, or undefined. */
  oldest(): V | undefined {
    return this.live === 0 ? undefined : (this.kv[2 * this.head + 1] as V);
  }

  /** Deletes the oldest entry. */
  shift(): void {
    if (this.live === 0) return;
    const p = this.head;
    this.removeAt(this.find(this.kv[2 * p] as string, this.hashes[p]), p);
  }

  /** Oldest first. `fn` may delete entries, not add them. */
  forEach(fn: (v: V, k: string) => void): void {
    for (let p = this.head; p < this.tail; p++) {
      const k = this.kv[2 * p];
      if (k !== undefined) fn(this.kv[2 * p + 1] as V, k as string);
    }
  }

  clear(): void {
    if (this.live === 0 && this.tail === 0) return;
    this.kv.fill(undefined, 2 * this.head, 2 * this.tail);
    if (this.cap > FIRST_CAPACITY) this.resize(FIRST_CAPACITY);
    else this.index.fill(EMPTY);
    this.head = this.tail = this.live = 0;
  }

  /** The bucket of `k`, or -1. */
  private find(k: string, h: number): number {
    const mask = this.index.length - 1;
    for (let b = h & mask; ; b = (b + 1) & mask) {
      const e = this.index[b];
      if (e === EMPTY) return -1;
      if (e !== GONE && this.hashes[e - 1] === h && this.kv[2 * (e - 1)] === k) return b;
    }
  }

  private place(h: number, p: number): void {
    const mask = this.index.length - 1;
    let b = h & mask;
    while (this.index[b] > 0) b = (b + 1) & mask;
    this.index[b] = p + 1;
  }

  private removeAt(b: number, p: number): void {
    this.index[b] = GONE;
    this.kv[2 * p] = undefined;
    this.kv[2 * p + 1] = undefined;
    this.live--;
    if (this.live === 0) this.head = this.tail;
    else if (p === this.head) while (this.kv[2 * this.head] === undefined) this.head++;
  }

  /** `kv` is full to its end: the live entries to the front of arrays at least twice their number. */
  private repack(): void {
    let cap = FIRST_CAPACITY;
    while (cap < 2 * this.live) cap *= 2;
    if (cap === this.cap) this.compact();
    else this.resize(cap);
  }

  private compact(): void {
    const kv = this.kv;
    let q = 0;
    for (let p = this.head; p < this.tail; p++) {
      if (kv[2 * p] === undefined) continue;
      if (q !== p) {
        kv[2 * q] = kv[2 * p];
        kv[2 * q + 1] = kv[2 * p + 1];
        this.hashes[q] = this.hashes[p];
      }
      q++;
    }
    kv.fill(undefined, 2 * q, 2 * this.tail);
    this.reindex(q);
  }

  private resize(cap: number): void {
    const kv = new Array<string | V | undefined>(2 * cap).fill(undefined);
    const hashes = new Int32Array(cap);
    let q = 0;
    for (let p = this.head; p < this.tail; p++) {
      if (this.kv[2 * p] === undefined) continue;
      kv[2 * q] = this.kv[2 * p];
      kv[2 * q + 1] = this.kv[2 * p + 1];
      hashes[q] = this.hashes[p];
      q++;
    }
    // The old array may be old enough to be remembered by the scavenger: cleared, it keeps no entry alive.
    this.kv.fill(undefined);
    this.kv = kv;
    this.hashes = hashes;
    this.cap = cap;
    this.index = new Int32Array(2 * cap);
    this.reindex(q);
  }

  private reindex(n: number): void {
    this.index.fill(EMPTY);
    for (let p = 0; p < n; p++) this.place(this.hashes[p], p);
    this.head = 0;
    this.tail = n;
  }
}
