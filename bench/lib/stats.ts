/**
 * A latency histogram cheap enough to record millions of samples and merge
 * across worker processes: 10 µs buckets below 100 ms, 1 ms buckets up to
 * 10 min. Percentiles are the upper edge of their bucket.
 */
const FINE = 10_000; // 10 µs × 10,000 = 100 ms
const COARSE = 600_000; // ms
export const BUCKETS = FINE + COARSE;

export class Histogram {
  readonly counts: Uint32Array;
  n = 0;
  sumMs = 0;
  maxMs = 0;

  constructor(counts?: ArrayLike<number>) {
    this.counts = counts ? Uint32Array.from(counts) : new Uint32Array(BUCKETS);
  }

  record(ms: number): void {
    if (ms < 0) ms = 0;
    const i = ms < 100 ? Math.floor(ms * 100) : FINE + Math.min(COARSE - 1, Math.floor(ms));
    this.counts[i]++;
    this.n++;
    this.sumMs += ms;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  merge(o: Histogram | HistogramJson): void {
    if (o.counts instanceof Uint32Array) {
      const c = o.counts;
      for (let i = 0; i < BUCKETS; i++) if (c[i]) this.counts[i] += c[i];
    } else for (const [i, k] of Object.entries(o.counts)) this.counts[Number(i)] += k;
    this.n += o.n;
    this.sumMs += o.sumMs;
    if (o.maxMs > this.maxMs) this.maxMs = o.maxMs;
  }

  quantile(q: number): number {
    if (this.n === 0) return NaN;
    const want = Math.ceil(q * this.n);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= want) return Math.min(this.maxMs, i < FINE ? (i + 1) / 100 : i - FINE + 1);
    }
    return this.maxMs;
  }

  get avgMs(): number {
    return this.n === 0 ? NaN : this.sumMs / this.n;
  }

  /** Sparse form for IPC: only the non-empty buckets. */
  toJSON(): HistogramJson {
    const counts: Record<number, number> = {};
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i]) counts[i] = this.counts[i];
    return { counts, n: this.n, sumMs: this.sumMs, maxMs: this.maxMs };
  }

  static from(j: HistogramJson): Histogram {
    const h = new Histogram();
    h.merge(j);
    return h;
  }
}

export interface HistogramJson {
  counts: Record<number, number>;
  n: number;
  sumMs: number;
  maxMs: number;
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The run whose `key` is the median of all runs (odd counts: an actual run). */
export function medianRun<T>(runs: T[], key: (r: T) => number): T {
  const s = [...runs].sort((a, b) => key(a) - key(b));
  return s[(s.length - 1) >> 1];
}
