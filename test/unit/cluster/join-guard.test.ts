import { test } from "node:test";
import assert from "node:assert/strict";
import { BUS_PROTOCOL, JoinGuard, ringOf, type Beat } from "../../../src/cluster/join-guard.js";

// Each rule of the start-up check (docs/operations.md, "Refused starts"), without a bus.

const RING = ringOf(64);
const beat = (b: Partial<Beat> & { id: string }): Beat => ({ host: "10.0.0.1", inc: "i2", up: true, ring: RING, ...b });
const guard = () => {
  const refused: string[] = [];
  const g = new JoinGuard("w", "i5", RING, 60_000, null);
  g.onRefuse = (r) => refused.push(r);
  return { g, refused };
};

test("while probing: members are not learnt; another incarnation of this id or other ring parameters refuse, without the callback", { timeout: 5000 }, () => {
  const { g, refused } = guard();
  assert.equal(g.admit(beat({ id: "x" })), false, "a probe changes nothing, ours neither");
  assert.equal(g.refusal, null);
  assert.equal(g.admit(beat({ id: "x", ring: ringOf(128) })), false);
  assert.match(g.refusal!, new RegExp(`worker x \\(host 10\\.0\\.0\\.1\\) uses ring parameters ${BUS_PROTOCOL}/murmur3/128, this one ${BUS_PROTOCOL}/murmur3/64`));
  assert.deepEqual(refused, [], "before joining the caller reads refusal");
  // A worker of an older bus protocol cannot read this one's messages (protocol 3: no `moved`, rooms would be lost): refused too.
  const old = guard();
  assert.equal(old.g.admit(beat({ id: "x", ring: `${BUS_PROTOCOL - 1}/murmur3/64` })), false);
  assert.match(old.g.refusal!, new RegExp(`uses ring parameters ${BUS_PROTOCOL - 1}/murmur3/64, this one ${BUS_PROTOCOL}/murmur3/64`));
  const dup = guard();
  dup.g.admit(beat({ id: "w" }));
  assert.match(dup.g.refusal!, /another process \(host 10\.0\.0\.1\) already runs worker w/);
});

test("two newcomers with one id probing at once: the greater incarnation gives way; goodbyes and foreign probes are no reason", { timeout: 5000 }, () => {
  const { g } = guard();
  g.admit(beat({ id: "w", inc: "i9", probe: true }));
  assert.equal(g.refusal, null, "i9 > i5: the other one refuses");
  g.admit(beat({ id: "w", inc: "i1", up: false }));
  assert.equal(g.refusal, null, "a goodbye");
  g.admit(beat({ id: "z", ring: ringOf(7), probe: true }));
  assert.equal(g.refusal, null, "a foreign newcomer's probe is its reason to go, not ours");
  g.admit(beat({ id: "w", inc: "i1", probe: true }));
  assert.match(g.refusal!, /already runs worker w/, "i1 < i5: this one gives way");
});

test("after joining: members count; within the early window a duplicate refuses through the callback; after it, only logged", { timeout: 5000 }, () => {
  const { g, refused } = guard();
  g.join();
  assert.equal(g.admit(beat({ id: "x" })), true);
  assert.equal(g.admit(beat({ id: "x", probe: true })), false, "a newcomer's probe");
  assert.equal(g.admit(beat({ id: "w", inc: "i1", probe: true })), false, "a duplicate newcomer's probe: it refuses, not we");
  assert.deepEqual(refused, []);
  assert.equal(g.admit(beat({ id: "w", inc: "i1" })), false);
  assert.equal(refused.length, 1);
  const late = new JoinGuard("w", "i5", RING, 0, null);
  late.join();
  assert.equal(late.admit(beat({ id: "w", inc: "i1" })), false);
  assert.equal(late.admit(beat({ id: "y", ring: ringOf(7) })), false);
  assert.equal(late.refusal, null, "a long-running worker only logs");
});
