import { test } from "node:test";
import assert from "node:assert/strict";
import { Pool, PoolLoad, type PoolMember } from "../../../src/channel/pool.js";
import type { SessionRef } from "../../../src/channel/user-channel.js";

let serial = 0;
function ref(resource: string, available = true): SessionRef {
  return { address: `gw@localhost/${resource}`, resource, workerId: "w0", serial: ++serial, protocol: "relay", available, priority: 0, presence: null, pool: true, session: null, seq: 0, born: 0, client: "", copies: false, told: false };
}

function pool(...names: string[]): { p: Pool; refs: SessionRef[] } {
  const p = new Pool();
  const refs = names.map((n) => ref(n));
  for (const r of refs) p.add(r);
  return { p, refs };
}

const picks = (p: Pool, n: number) => Array.from({ length: n }, () => p.pick()!.ref.resource).join(" ");

test("ties rotate: with nothing in flight each member gets its turn, in bind order", { timeout: 5000 }, () => {
  const { p } = pool("a", "b", "c");
  assert.equal(picks(p, 7), "a b c a b c a");
});

test("the member with the fewest in flight wins; among equals the next in turn", { timeout: 5000 }, () => {
  const { p } = pool("a", "b", "c");
  const [a, b, c] = p.members;
  a.outstanding = 2;
  b.outstanding = 1;
  c.outstanding = 1;
  assert.equal(p.pick(), b);
  assert.equal(p.pick(), c, "b and c tie: the turn has moved past b");
  c.outstanding = 0;
  assert.equal(p.pick(), c);
  b.outstanding = 5;
  c.outstanding = 5;
  assert.equal(p.pick(), a);
});

test("unavailable members are passed over; none available: nothing", { timeout: 5000 }, () => {
  const { p, refs } = pool("a", "b", "c");
  refs[1].available = false;
  assert.equal(picks(p, 4), "a c a c");
  for (const r of refs) r.available = false;
  assert.equal(p.pick(), undefined);
});

test("a member leaving keeps the rotation where it was", { timeout: 5000 }, () => {
  const { p, refs } = pool("a", "b", "c", "d");
  assert.equal(picks(p, 2), "a b");
  assert.equal(p.remove(refs[0])!.ref, refs[0]);
  assert.equal(picks(p, 3), "c d b");
  // The turn is on c: c leaves, d is next.
  assert.equal(p.remove(refs[2])!.ref, refs[2]);
  assert.equal(picks(p, 2), "d b");
  // The turn is on d, the last: d leaves, the turn wraps to the first.
  p.remove(refs[3]);
  assert.equal(picks(p, 2), "b b");
  assert.equal(p.remove(refs[0]), undefined, "not a member any more");
  p.remove(refs[1]);
  assert.equal(p.members.length, 0);
  assert.equal(p.pick(), undefined);
});

function loaded(): { load: PoolLoad; a: PoolMember; b: PoolMember } {
  const { p } = pool("a", "b");
  return { load: new PoolLoad(), a: p.members[0], b: p.members[1] };
}

test("PoolLoad: routed counts one in flight, settled one fewer; an unknown or repeated settle changes nothing", { timeout: 5000 }, () => {
  const { load, a, b } = loaded();
  load.routed(a, "w1.1", 1000, 0);
  load.routed(a, "w1.2", 1000, 0);
  load.routed(b, "w2.1", 1000, 0);
  assert.deepEqual([a.outstanding, b.outstanding, load.size], [2, 1, 3]);
  load.settled("w1.1");
  load.settled("w1.1");
  load.settled("w9.9");
  assert.deepEqual([a.outstanding, b.outstanding, load.size], [1, 1, 2]);
  // The same request routed again (a ring change under way) is counted once, where it went last.
  load.routed(b, "w1.2", 1000, 0);
  assert.deepEqual([a.outstanding, b.outstanding, load.size], [0, 2, 2]);
  load.settled("w1.2");
  load.settled("w2.1");
  assert.deepEqual([a.outstanding, b.outstanding, load.size], [0, 0, 0]);
});

test("PoolLoad: a member that leaves takes its counts along; a late settle for them is ignored", { timeout: 5000 }, () => {
  const { load, a, b } = loaded();
  for (let i = 0; i < 5; i++) load.routed(a, `w1.${i}`, 1000, 0);
  load.routed(b, "w1.9", 1000, 0);
  load.left(a);
  assert.deepEqual([a.outstanding, a.firstPending, load.size], [0, null, 1]);
  load.settled("w1.3");
  assert.deepEqual([b.outstanding, load.size], [1, 1]);
});

test("PoolLoad: an entry whose settle notice never comes goes at the request's deadline, earliest first", { timeout: 5000 }, () => {
  const { load, a, b } = loaded();
  load.routed(a, "w1.1", 500, 1000);
  load.routed(b, "w1.2", 200, 1000);
  load.routed(a, "w1.3", 500, 1100);
  assert.equal(load.expire(1199), 0);
  assert.equal(load.expire(1200), 1);
  assert.deepEqual([a.outstanding, b.outstanding], [2, 0]);
  assert.equal(load.expire(1500), 1);
  assert.equal(load.expire(10_000), 1);
  assert.deepEqual([a.outstanding, b.outstanding, load.size], [0, 0, 0]);
  // Settled after its deadline: nothing left to settle, nothing goes negative.
  load.settled("w1.1");
  assert.equal(a.outstanding, 0);
});
