/**
 * MurmurHash3 (x86, 32-bit) of a string's UTF-16LE bytes: two code units per
 * 32-bit block, no encoding step. Deterministic on every node, fast in V8, and
 * with the avalanche that keeps similar names ("w1#17", "w1#18") far apart.
 */
export function hash32(s: string, seed = 0): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  const n = s.length;
  let h = seed | 0;
  let k: number;
  let i = 0;
  for (; i + 2 <= n; i += 2) {
    k = s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  if (i < n) {
    k = s.charCodeAt(i);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= n * 2;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
