const FIRST_CAPACITY = 1024;

/**
 * Entries under rising integer keys (custody's receipt numbers), in a ring indexed by key: get, set and
 * delete are an array access each. It replaces a Map for a reason beyond speed: a Map used as a queue (set at
 * one end, deleted at the other) rebuilds its hash table every few hundred entries, and V8 leaves each old
 * table pointing at the new one and at the entries it held. Once one of them is in the old generation, that
 * chain of dead tables keeps every entry it ever held alive through a scavenge, and each is promoted: at
 * 5,000 crossings a second a worker promoted 60–68 MB in 16 s and spent ~1 s of CPU collecting, where the
 * ring promotes 8 MB (docs/benchmarks.md, session 24). Here a deleted entry's slot is cleared, and a ring that
 * grows clears the slots it leaves.
 *
 * A key that lags `maxCapacity` behind the newest, or whose slot a newer key needs, waits in a small map of
 * its own (an entry a client keeps unacknowledged for minutes). Iteration goes by age: that map in the order
 * its entries arrived, then the ring by key.
 */
export class KeyRing<V> {
  private keys = new Float64Array(FIRST_CAPACITY).fill(-1);
  private slots: (V | undefined)[] = new Array<V | undefined>(FIRST_CAPACITY).fill(undefined);
  private mask = FIRST_CAPACITY - 1;
  /** The lowest key in the ring (lo === hi: none), and one past the highest ever placed. */
  private lo = 0;
  private hi = 0;
  private inRing = 0;
  /** Keys that could not stay in the ring, in the order they left it. */
  private aside: Map<number, V> | null = null;

  constructor(private readonly maxCapacity = 1 << 16) {}

  get size(): number {
    return this.inRing + (this.aside === null ? 0 : this.aside.size);
  }

  get(k: number): V | undefined {
    const i = k & this.mask;
    if (this.keys[i] === k) return this.slots[i];
    return this.aside === null ? undefined : this.aside.get(k);
  }

  has(k: number): boolean {
    return this.get(k) !== undefined;
  }

  /** `k` must not be held already. */
  set(k: number, v: V): void {
    for (;;) {
      if (this.inRing === 0) this.lo = this.hi = k;
      else if (k < this.hi - this.keys.length) {
        // Too far behind the newest for the ring to span both.
        if (this.keys.length < this.maxCapacity && this.hi - k <= this.maxCapacity) {
          this.grow(this.keys.length * 2);
          continue;
        }
        (this.aside ??= new Map()).set(k, v);
        return;
      }
      const i = k & this.mask;
      const there = this.keys[i];
      if (there >= 0 && there !== k) {
        // A slot held by a key a whole ring older: more room, or that one steps aside.
        if (this.keys.length < this.maxCapacity) {
          this.grow(this.keys.length * 2);
          continue;
        }
        (this.aside ??= new Map()).set(there, this.slots[i]!);
        this.inRing--;
        this.keys[i] = -1;
        this.slots[i] = undefined;
        if (there === this.lo) this.advance();
        if (this.inRing === 0) this.lo = this.hi = k;
      }
      this.keys[i] = k;
      this.slots[i] = v;
      this.inRing++;
      if (k < this.lo) this.lo = k;
      if (k >= this.hi) this.hi = k + 1;
      return;
    }
  }

  delete(k: number): V | undefined {
    const i = k & this.mask;
    if (this.keys[i] === k) {
      const v = this.slots[i];
      this.keys[i] = -1;
      this.slots[i] = undefined;
      this.inRing--;
      if (k === this.lo) this.advance();
      return v;
    }
    const aside = this.aside;
    if (aside === null) return undefined;
    const v = aside.get(k);
    if (v === undefined) return undefined;
    aside.delete(k);
    if (aside.size === 0) this.aside = null;
    return v;
  }

  /** The oldest entry (as iteration goes), or undefined: for sweeps that stop at the first still in time. */
  firstKey(): number {
    if (this.aside !== null) for (const k of this.aside.keys()) return k;
    return this.inRing === 0 ? -1 : this.lo;
  }

  /** The keys, oldest first (a copy: the caller may change the ring meanwhile). */
  keyList(): number[] {
    const out: number[] = this.aside === null ? [] : [...this.aside.keys()];
    if (this.hi - this.lo <= this.keys.length) {
      for (let k = this.lo; k < this.hi && out.length < this.size; k++) if (this.keys[k & this.mask] === k) out.push(k);
      return out;
    }
    // Keys spread wider than the ring: read its slots instead, and sort them.
    const ring: number[] = [];
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] >= 0) ring.push(this.keys[i]);
    ring.sort((x, y) => x - y);
    for (const k of ring) out.push(k);
    return out;
  }

  *[Symbol.iterator](): IterableIterator<[number, V]> {
    for (const k of this.keyList()) {
      const v = this.get(k);
      if (v !== undefined) yield [k, v];
    }
  }

  /** lo past the slots emptied at the front. */
  private advance(): void {
    if (this.inRing === 0) {
      this.lo = this.hi;
      return;
    }
    let k = this.lo + 1;
    while (this.keys[k & this.mask] !== k) k++;
    this.lo = k;
  }

  private grow(cap: number): void {
    const keys = new Float64Array(cap).fill(-1);
    const slots = new Array<V | undefined>(cap).fill(undefined);
    const mask = cap - 1;
    for (let i = 0; i < this.keys.length; i++) {
      const k = this.keys[i];
      if (k < 0) continue;
      keys[k & mask] = k;
      slots[k & mask] = this.slots[i];
    }
    // The old slots point at entries that may be young: cleared, so they keep none alive (see above).
    this.slots.fill(undefined);
    this.keys = keys;
    this.slots = slots;
    this.mask = mask;
  }
}
