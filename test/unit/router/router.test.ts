import { test } from "node:test";
import assert from "node:assert/strict";
import { HashRing } from "../../../src/router/hash-ring.js";
import { GlobalRouter } from "../../../src/router/global-router.js";
import { LocalRouter } from "../../../src/router/local-router.js";
import { Router } from "../../../src/router/router.js";

const USERS = Array.from({ length: 5000 }, (_, i) => `u${i}@localhost`);
const HOSTS = { "10.0.0.1:7000": ["a1", "a2", "a3", "a4"], "10.0.0.2:7000": ["b1", "b2", "b3", "b4"], "10.0.0.3:7000": ["c1", "c2"] };

test("GlobalRouter, level 1: hash(receiver) on the ring of hosts", () => {
  const g = new GlobalRouter(Object.keys(HOSTS), 64);
  const ring = new HashRing(Object.keys(HOSTS), 64);
  for (const u of USERS) assert.equal(g.hostOf(u), ring.ownerOf(u));
  assert.equal(new GlobalRouter([], 64).hostOf("x@y"), undefined);
});

test("LocalRouter, level 2: hash(receiver + hostAddress) on the host's ring of workers", () => {
  const host = "10.0.0.1:7000";
  const l = new LocalRouter(host, HOSTS[host], 64);
  const ring = new HashRing(HOSTS[host], 64);
  let differs = 0;
  for (const u of USERS) {
    assert.equal(l.workerOf(u), ring.ownerOf(u + host));
    if (ring.ownerOf(u) !== l.workerOf(u)) differs++;
  }
  assert.ok(differs > USERS.length / 2, "hostAddress takes part in the level-2 hash");
  // The same workers under another host address place the users differently.
  const other = new LocalRouter("10.0.0.9:7000", HOSTS[host], 64);
  assert.ok(USERS.some((u) => other.workerOf(u) !== l.workerOf(u)));
});

test("Router: Algorithm 1 composes both levels; a host's users spread over all its workers", () => {
  const r = new Router({ hosts: HOSTS, vnodes: 128 });
  const g = new GlobalRouter(Object.keys(HOSTS), 128);
  const perWorker = new Map<string, number>();
  for (const u of USERS) {
    const host = g.hostOf(u)!;
    const w = r.ownerOf(u)!;
    assert.equal(w, new LocalRouter(host, HOSTS[host as keyof typeof HOSTS], 128).workerOf(u));
    assert.ok(HOSTS[host as keyof typeof HOSTS].includes(w), `${w} is a worker of ${host}`);
    perWorker.set(w, (perWorker.get(w) ?? 0) + 1);
  }
  // Not crowded into part of the local ring: every worker of each host gets a fair part of that host's users.
  for (const [host, workers] of Object.entries(HOSTS)) {
    const total = workers.reduce((a, w) => a + (perWorker.get(w) ?? 0), 0);
    for (const w of workers) {
      const share = (perWorker.get(w) ?? 0) / total;
      assert.ok(share > 0.6 / workers.length && share < 1.4 / workers.length, `${host} ${w}: ${share}`);
    }
  }
  assert.deepEqual([...r.hosts], Object.keys(HOSTS).sort());
});

test("Router: identical from the same membership in any order; undefined with no hosts; standalone is one worker", () => {
  const a = new Router({ hosts: HOSTS, vnodes: 64 });
  const reordered: Record<string, string[]> = {};
  for (const h of Object.keys(HOSTS).reverse()) reordered[h] = [...HOSTS[h as keyof typeof HOSTS]].reverse();
  const b = new Router({ hosts: reordered, vnodes: 64 });
  for (const u of USERS) assert.equal(b.ownerOf(u), a.ownerOf(u));

  assert.equal(new Router({ hosts: {}, vnodes: 64 }).ownerOf("x@y"), undefined);
  const one = new Router({ hosts: { "127.0.0.1": ["w0"] }, vnodes: 512 });
  for (const u of USERS.slice(0, 100)) assert.equal(one.ownerOf(u), "w0");
});

test("Router.update: a worker leaving moves only the users it owned", () => {
  const r = new Router({ hosts: HOSTS, vnodes: 128 });
  const before = USERS.map((u) => r.ownerOf(u));
  r.update({ hosts: { ...HOSTS, "10.0.0.1:7000": ["a1", "a2", "a4"] }, vnodes: 128 });
  USERS.forEach((u, i) => {
    if (before[i] !== "a3") assert.equal(r.ownerOf(u), before[i], u);
    else assert.ok(["a1", "a2", "a4"].includes(r.ownerOf(u)!));
  });
});
