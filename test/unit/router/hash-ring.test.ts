import { test } from "node:test";
import assert from "node:assert/strict";
import { HashRing } from "../../../src/router/hash-ring.js";
import { hash32 } from "../../../src/router/hash.js";
import { defaults } from "../../../src/config/config.js";

const KEYS = Array.from({ length: 20000 }, (_, i) => `user${i}@localhost`);
const TEN = Array.from({ length: 10 }, (_, i) => `w${i}`);

/** Each member's share of the ring, from the arcs it owns (exact, no sampling). */
function arcShares(ring: HashRing): Map<string, number> {
  // The ring's own lookup tells the owner of each arc's end point; arcs are read through ownerOfHash.
  const points = new Set<number>();
  for (const m of ring.members) for (let v = 0; v < ring.vnodes; v++) points.add(hash32(`${m}#${v}`));
  const sorted = [...points].sort((a, b) => a - b);
  const share = new Map<string, number>(ring.members.map((m) => [m, 0]));
  for (let i = 0; i < sorted.length; i++) {
    const prev = i === 0 ? sorted[sorted.length - 1] - 2 ** 32 : sorted[i - 1];
    const owner = ring.ownerOfHash(sorted[i])!;
    share.set(owner, share.get(owner)! + (sorted[i] - prev) / 2 ** 32);
  }
  return share;
}

function stdDevPercent(values: number[]): number {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length);
  return (100 * sd) / mean;
}

function owners(ring: HashRing): string[] {
  return KEYS.map((k) => ring.ownerOf(k)!);
}

test("an empty ring owns nothing; a ring of one owns everything", () => {
  assert.equal(new HashRing().ownerOf("a"), undefined);
  assert.equal(new HashRing().ownerOfHash(0), undefined);
  const one = new HashRing(["only"]);
  assert.equal(one.ownerOf("a"), "only");
  assert.equal(one.ownerOfHash(0xffffffff), "only");
  assert.throws(() => new HashRing([], 0), RangeError);
});

test("the HashRing default agrees with the config default for cluster.vnodes", () => {
  assert.equal(new HashRing(TEN).vnodes, defaults().cluster.vnodes);
});

test("determinism: the same member list in any order, with duplicates, gives identical owners", () => {
  const base = owners(new HashRing(TEN));
  const reversed = owners(new HashRing([...TEN].reverse()));
  const shuffled = owners(new HashRing(["w3", "w7", "w0", "w9", "w1", "w5", "w2", "w8", "w4", "w6", "w3", "w0"]));
  assert.deepEqual(reversed, base);
  assert.deepEqual(shuffled, base);
  // Built by adds one at a time, in yet another order.
  const grown = new HashRing();
  for (const m of ["w9", "w2", "w4", "w0", "w6", "w1", "w8", "w3", "w7", "w5"]) grown.add(m);
  assert.deepEqual(owners(grown), base);
  assert.deepEqual(grown.members, TEN);
  // Ring positions too, not just these keys: every vnode point and the point just after it.
  const a = new HashRing(TEN);
  for (let v = 0; v < 512; v += 7) {
    const h = hash32(`w5#${v}`);
    assert.equal(grown.ownerOfHash(h), a.ownerOfHash(h));
    assert.equal(grown.ownerOfHash((h + 1) >>> 0), a.ownerOfHash((h + 1) >>> 0));
  }
});

test("a key belongs to the first vnode at or clockwise after its hash, wrapping past 2^32", () => {
  const ring = new HashRing(["a", "b", "c"], 4);
  const points = ["a", "b", "c"].flatMap((m) => Array.from({ length: 4 }, (_, v) => ({ pos: hash32(`${m}#${v}`), m })));
  points.sort((x, y) => x.pos - y.pos);
  for (const p of points) assert.equal(ring.ownerOfHash(p.pos), p.m, "a vnode's own position");
  assert.equal(ring.ownerOfHash((points[0].pos - 1) >>> 0), points[0].m);
  if (points[points.length - 1].pos < 0xffffffff) assert.equal(ring.ownerOfHash(points[points.length - 1].pos + 1), points[0].m, "wraps");
  for (const k of KEYS.slice(0, 500)) {
    const h = hash32(k);
    const want = points.find((p) => p.pos >= h) ?? points[0];
    assert.equal(ring.ownerOf(k), want.m);
  }
});

test("balance: load std-dev over 10 members with the default vnodes is at most 3 % of the mean", (t) => {
  const ring = new HashRing(TEN);
  const shares = [...arcShares(ring).values()];
  assert.ok(Math.abs(shares.reduce((a, b) => a + b, 0) - 1) < 1e-9, "arcs cover the ring");
  const arcSd = stdDevPercent(shares);
  // And by keys actually looked up (sampling adds its own ~2 % noise at 20,000 keys).
  const counts = new Map<string, number>();
  for (const o of owners(ring)) counts.set(o, (counts.get(o) ?? 0) + 1);
  assert.equal(counts.size, 10);
  const keySd = stdDevPercent([...counts.values()]);
  t.diagnostic(`${ring.vnodes} vnodes: arc std-dev ${arcSd.toFixed(2)} %, key std-dev ${keySd.toFixed(2)} % of the mean`);
  assert.ok(arcSd <= 3, `arc std-dev ${arcSd.toFixed(2)} %`);
  assert.ok(keySd <= 5, `key std-dev ${keySd.toFixed(2)} %`);
});

test("balance: std-dev follows 1/sqrt(vnodes), so 512 vnodes would miss 3 %", () => {
  // Median over 21 member-name sets, to judge the vnode count rather than one lucky set of names.
  const median = (v: number) => {
    const sds = Array.from({ length: 21 }, (_, s) => stdDevPercent([...arcShares(new HashRing(TEN.map((m) => `s${s}-${m}`), v)).values()]));
    return sds.sort((a, b) => a - b)[10];
  };
  const at512 = median(512);
  const at2048 = median(2048);
  assert.ok(at512 > 3 && at512 < 6, `512: ${at512}`);
  assert.ok(at2048 <= 3, `2048: ${at2048}`);
});

test("movement: adding an 11th member moves about 1/11 of the keys, all of them to it", () => {
  const before = owners(new HashRing(TEN));
  const ring = new HashRing(TEN);
  ring.add("w10");
  const after = owners(ring);
  let moved = 0;
  for (let i = 0; i < KEYS.length; i++) {
    if (before[i] === after[i]) continue;
    moved++;
    assert.equal(after[i], "w10", `${KEYS[i]} moved from ${before[i]} to ${after[i]}`);
  }
  const frac = moved / KEYS.length;
  assert.ok(frac > 1 / 11 - 0.025 && frac < 1 / 11 + 0.025, `moved ${frac}`);
});

test("movement: removing one of 10 members moves only its keys, about 1/10", () => {
  const before = owners(new HashRing(TEN));
  const ring = new HashRing(TEN);
  ring.remove("w4");
  assert.equal(ring.has("w4"), false);
  assert.equal(ring.size, 9);
  const after = owners(ring);
  let moved = 0;
  for (let i = 0; i < KEYS.length; i++) {
    if (before[i] === "w4") {
      assert.notEqual(after[i], "w4");
      moved++;
    } else assert.equal(after[i], before[i], `${KEYS[i]} moved though its owner stayed`);
  }
  const frac = moved / KEYS.length;
  assert.ok(frac > 0.1 - 0.025 && frac < 0.1 + 0.025, `moved ${frac}`);
  // The keys of the member that left spread over the others, not onto one neighbour.
  const receivers = new Set(after.filter((_, i) => before[i] === "w4"));
  assert.equal(receivers.size, 9);
});

test("add and remove of a known/unknown member are no-ops", () => {
  const ring = new HashRing(TEN);
  const base = owners(ring);
  ring.add("w3");
  ring.remove("nobody");
  assert.deepEqual(owners(ring), base);
  ring.add("x");
  ring.remove("x");
  assert.deepEqual(owners(ring), base);
});
