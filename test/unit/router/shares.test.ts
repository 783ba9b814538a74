import { test } from "node:test";
import assert from "node:assert/strict";
import { HashRing } from "../../../src/router/hash-ring.js";
import { hash32 } from "../../../src/router/hash.js";
import { Router } from "../../../src/router/router.js";
import { ringShares } from "../../../src/router/shares.js";

const near = (a: number, b: number, eps: number, what: string) => assert.ok(Math.abs(a - b) <= eps, `${what}: ${a} vs ${b} (±${eps})`);
const sum = (xs: Iterable<number>) => [...xs].reduce((a, b) => a + b, 0);

/** The arcs read through the ring's public lookup only: the owner of each point owns the arc that ends there. */
function arcsByLookup(ring: HashRing): Map<string, number> {
  const points = [...new Set(ring.members.flatMap((m) => Array.from({ length: ring.vnodes }, (_, v) => hash32(`${m}#${v}`))))].sort((a, b) => a - b);
  const out = new Map<string, number>(ring.members.map((m) => [m, 0]));
  points.forEach((p, i) => {
    const from = i === 0 ? points[points.length - 1] - 2 ** 32 : points[i - 1];
    const owner = ring.ownerOfHash(p)!;
    out.set(owner, out.get(owner)! + (p - from) / 2 ** 32);
  });
  return out;
}

test("HashRing.shares: empty owns nothing, one member owns all, shares sum to 1", { timeout: 10_000 }, () => {
  assert.deepEqual([...new HashRing([], 16).shares()], []);
  assert.deepEqual([...new HashRing(["only"], 16).shares()], [["only", 1]]);
  for (const vnodes of [1, 7, 2048]) {
    const s = new HashRing(["a", "b", "c", "d", "e"], vnodes).shares();
    assert.equal(s.size, 5);
    near(sum(s.values()), 1, 1e-12, `sum at vnodes ${vnodes}`);
    for (const v of s.values()) assert.ok(v >= 0 && v <= 1);
  }
});

test("HashRing.shares agrees with the arcs its own lookup gives, the wrap past 2^32 included", { timeout: 10_000 }, () => {
  for (const [members, vnodes] of [[["x", "y"], 1], [["x", "y", "z"], 3], [["w0", "w1", "w2", "w3"], 256]] as const) {
    const ring = new HashRing(members, vnodes);
    const byLookup = arcsByLookup(ring);
    for (const [m, share] of ring.shares()) near(share, byLookup.get(m)!, 1e-12, `${m} of ${members.length} at ${vnodes} vnodes`);
  }
});

test("HashRing.shares predicts where keys go: 200,000 keys land in proportion", { timeout: 10_000 }, () => {
  // Few vnodes make the shares uneven, so the comparison tells them apart from 1/n.
  const ring = new HashRing(["a", "b", "c"], 4);
  const counts = new Map<string, number>();
  const N = 200_000;
  for (let i = 0; i < N; i++) {
    const o = ring.ownerOf(`user${i}@example.org`)!;
    counts.set(o, (counts.get(o) ?? 0) + 1);
  }
  for (const [m, share] of ring.shares()) near((counts.get(m) ?? 0) / N, share, 0.005, m);
  assert.ok(Math.max(...ring.shares().values()) - Math.min(...ring.shares().values()) > 0.05, "4 vnodes give visibly uneven shares");
});

test("ringShares: each host's share of the global ring, each worker's of its host, and their product matches the Router", { timeout: 20_000 }, () => {
  const m = { hosts: { "10.0.0.1": ["10_0_0_1-w0", "10_0_0_1-w1"], "10.0.0.2": ["10_0_0_2-w0", "10_0_0_2-w1", "10_0_0_2-w2"] }, vnodes: 8 };
  const s = ringShares(m);
  near(sum(Object.values(s.hosts)), 1, 1e-12, "hosts");
  for (const [host, ids] of Object.entries(m.hosts)) {
    near(sum(ids.map((w) => s.workers[w])), 1, 1e-12, `workers of ${host}`);
    for (const w of ids) near(s.overall[w], s.hosts[host] * s.workers[w], 1e-15, w);
  }
  near(sum(Object.values(s.overall)), 1, 1e-12, "overall");
  const router = new Router(m);
  const counts = new Map<string, number>();
  const N = 200_000;
  for (let i = 0; i < N; i++) {
    const o = router.ownerOf(`u${i}@example.org`)!;
    counts.set(o, (counts.get(o) ?? 0) + 1);
  }
  for (const [w, share] of Object.entries(s.overall)) near((counts.get(w) ?? 0) / N, share, 0.006, w);
});

test("ringShares of a single worker: 1 everywhere", { timeout: 5_000 }, () => {
  assert.deepEqual(ringShares({ hosts: { h: ["h-w0"] }, vnodes: 2048 }), { hosts: { h: 1 }, workers: { "h-w0": 1 }, overall: { "h-w0": 1 } });
});
