import { test } from "node:test";
import assert from "node:assert/strict";
import { KeyRing } from "../../../src/pending/key-ring.js";

test("a key ring holds what a Map would, through growth, keys far behind, and slots a newer key needs", { timeout: 20_000 }, () => {
  let seed = 11;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (const max of [1024, 4096]) {
    const ring = new KeyRing<{ k: number }>(max);
    const model = new Map<number, { k: number }>();
    let next = 0;
    for (let step = 0; step < 60_000; step++) {
      const r = rand();
      if (r < 0.5) {
        // Held: the next number.
        const v = { k: next };
        ring.set(next, v);
        model.set(next, v);
        next++;
      } else if (r < 0.9 && model.size > 0) {
        // Settled: mostly among the oldest few, now and then any.
        const keys = [...model.keys()];
        const k = rand() < 0.8 ? keys[Math.floor(rand() * Math.min(8, keys.length))] : keys[Math.floor(rand() * keys.length)];
        assert.equal(ring.delete(k), model.get(k));
        model.delete(k);
      } else if (r < 0.95 && next > 0) {
        // Taken again elsewhere (an old number set anew), or one never held.
        const k = Math.floor(rand() * next);
        if (model.has(k)) continue;
        if (rand() < 0.5) {
          const v = { k };
          ring.set(k, v);
          model.set(k, v);
        } else assert.equal(ring.get(k), undefined);
      }
      if (step % 1000 === 0) {
        assert.equal(ring.size, model.size);
        for (const [k, v] of model) assert.equal(ring.get(k), v, `${k}`);
        const listed = ring.keyList();
        assert.deepEqual([...listed].sort((a, b) => a - b), [...model.keys()].sort((a, b) => a - b));
        assert.equal(new Set(listed).size, listed.length);
      }
    }
    // A long-lived entry far behind the newest still found, and the oldest first.
    const old = ring.firstKey();
    if (old >= 0) assert.ok(ring.has(old));
    for (const k of ring.keyList()) assert.ok(ring.delete(k) !== undefined);
    assert.equal(ring.size, 0);
    assert.equal(ring.firstKey(), -1);
  }
});

test("a key ring goes oldest first: what stepped aside, then by number", { timeout: 5000 }, () => {
  const ring = new KeyRing<string>(1024);
  ring.set(5, "a");
  ring.set(6, "b");
  ring.set(7, "c");
  assert.equal(ring.firstKey(), 5);
  ring.delete(5);
  assert.equal(ring.firstKey(), 6);
  // 6 + 1024 needs 6's slot and the ring may not grow: 6 steps aside, still found, still first.
  ring.set(6 + 1024, "d");
  assert.equal(ring.get(6), "b");
  assert.equal(ring.get(6 + 1024), "d");
  assert.deepEqual(ring.keyList(), [6, 7, 6 + 1024]);
  assert.deepEqual([...ring].map(([, v]) => v), ["b", "c", "d"]);
  ring.delete(6);
  assert.equal(ring.firstKey(), 7);
  // One far behind everything (taken long after it was held): aside at once.
  ring.set(1, "e");
  assert.equal(ring.firstKey(), 1);
  assert.deepEqual(ring.keyList(), [1, 7, 6 + 1024]);
  assert.equal(ring.size, 3);
});

test("a key ring grows to span its keys rather than set them aside, up to its limit", { timeout: 5000 }, () => {
  const ring = new KeyRing<number>(1 << 14);
  for (let k = 0; k < 10_000; k++) ring.set(k, k);
  for (let k = 0; k < 10_000; k += 2) assert.equal(ring.delete(k), k);
  assert.equal(ring.size, 5000);
  assert.equal(ring.firstKey(), 1);
  assert.equal(ring.get(9999), 9999);
  assert.equal(ring.get(9998), undefined);
});

test("a key ring across a wrap of its keys (PendingList's 31-bit keys): the new ones wait aside until the old are gone", { timeout: 5000 }, () => {
  const ring = new KeyRing<number>(1 << 12);
  const top = 0x7fffffff;
  for (let k = top - 9; k <= top; k++) ring.set(k, k);
  for (let k = 0; k < 5; k++) ring.set(k, k);
  for (let k = top - 9; k <= top; k++) assert.equal(ring.get(k), k);
  for (let k = 0; k < 5; k++) assert.equal(ring.get(k), k);
  assert.equal(ring.size, 15);
  for (let k = top - 9; k <= top; k++) assert.equal(ring.delete(k), k);
  // The ring empty: the next key starts it again; those aside are still found, and first.
  ring.set(5, 5);
  assert.equal(ring.firstKey(), 0);
  for (let k = 0; k <= 5; k++) assert.equal(ring.get(k), k);
  for (let k = 0; k <= 5; k++) assert.equal(ring.delete(k), k);
  assert.equal(ring.size, 0);
  assert.equal(ring.firstKey(), -1);
});
