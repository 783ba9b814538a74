import { test } from "node:test";
import assert from "node:assert/strict";
import { InboundTable } from "../../../src/session/inbound-table.js";
import { Session, type InboundRequest } from "../../../src/session/session.js";
import type { Envelope } from "../../../src/envelope/envelope.js";

function lcg(seed: number): () => number {
  return () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
}

function listed<V>(t: InboundTable<V>): [string, V][] {
  const out: [string, V][] = [];
  t.forEach((v, k) => out.push([k, v]));
  return out;
}

function sameAs<V>(t: InboundTable<V>, model: Map<string, V>, at: string): void {
  assert.equal(t.size, model.size, at);
  assert.deepEqual(listed(t), [...model], at);
  assert.deepEqual(t.oldest(), model.size === 0 ? undefined : model.values().next().value, at);
}

test("an inbound table holds what a Map would, in the same order, as a queue and at random", { timeout: 20_000 }, () => {
  const rand = lcg(7);
  // Phases: a queue a few deep (the relay's pattern), a burst that grows it, and a drain that shrinks it.
  for (const [steps, pSet, pOldest] of [
    [20_000, 0.5, 0.9],
    [5_000, 0.8, 0.5],
    [8_000, 0.2, 0.3],
    [20_000, 0.5, 0.1],
  ] as const) {
    const t = new InboundTable<{ n: number }>();
    const model = new Map<string, { n: number }>();
    let next = 0;
    for (let step = 0; step < steps; step++) {
      const r = rand();
      if (r < pSet) {
        // Mostly new keys, sometimes one held already (a client reusing an id: the value changes, not the place).
        const again = model.size > 0 && rand() < 0.05;
        const k = again ? [...model.keys()][Math.floor(rand() * model.size)] : `w${next % 7}.${next++}`;
        const v = { n: step };
        t.set(k, v);
        model.set(k, v);
      } else if (model.size > 0) {
        const keys = [...model.keys()];
        const k = rand() < pOldest ? keys[0] : keys[Math.floor(rand() * keys.length)];
        if (rand() < 0.5 && k === keys[0]) t.shift();
        else assert.equal(t.delete(k), true);
        model.delete(k);
        assert.equal(t.delete(k), false);
      }
      if (rand() < 0.2) {
        const k = rand() < 0.5 && next > 0 ? `w${next % 7}.${Math.floor(rand() * next)}` : `never\u0000${step}`;
        assert.equal(t.get(k), model.get(k));
      }
      if (step % 500 === 0) sameAs(t, model, `step ${step}`);
    }
    sameAs(t, model, "end");
    for (const [k, v] of model) assert.equal(t.get(k), v);
  }
});

test("an inbound table grows past thousands, empties, is cleared, and is used again", { timeout: 10_000 }, () => {
  const t = new InboundTable<number>();
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 10_000; i++) t.set(`alice@example.com/r\u0000id-${i}`, i);
    assert.equal(t.size, 10_000);
    for (let i = 0; i < 10_000; i += 3) assert.equal(t.get(`alice@example.com/r\u0000id-${i}`), i);
    assert.equal(t.get("alice@example.com/r\u0000id-10000"), undefined);
    // Delete from the front, oldest first, as answers come back.
    for (let i = 0; i < 9_990; i++) assert.equal(t.delete(`alice@example.com/r\u0000id-${i}`), true);
    assert.deepEqual(
      listed(t).map(([, v]) => v),
      Array.from({ length: 10 }, (_, i) => 9_990 + i),
    );
    // Many more through the small remainder: the entries move to the front again and again (compaction).
    for (let i = 10_000; i < 50_000; i++) {
      t.set(`k${i}`, i);
      t.delete(`k${i - 5}`);
    }
    assert.equal(t.size, 15);
    assert.equal(t.oldest(), 9_990);
    if (round < 2) t.clear();
    else {
      const out: number[] = [];
      t.forEach((v, k) => {
        out.push(v);
        t.delete(k); // deleting what forEach is at is allowed
      });
      assert.equal(out.length, 15);
    }
    assert.equal(t.size, 0);
    assert.equal(t.oldest(), undefined);
    assert.deepEqual(listed(t), []);
    assert.equal(t.get("k49999"), undefined);
  }
});

test("an inbound table lets go of what it deleted: its arrays hold no key or value past its live entries", { timeout: 10_000 }, () => {
  const t = new InboundTable<object>();
  for (let i = 0; i < 3_000; i++) {
    t.set(`r${i}`, { i });
    if (i >= 4) t.delete(`r${i - 4}`);
  }
  const kv = (t as unknown as { kv: unknown[] }).kv;
  assert.equal(kv.filter((x) => x !== undefined).length, 2 * t.size);
  t.clear();
  assert.equal(kv.filter((x) => x !== undefined).length, 0);
});

class Plain extends Session {
  readonly protocol = "relay";
  readonly idPassThrough = false;
  deliver(_env: Envelope): boolean {
    return true;
  }
  replaced(): void {}
}

/** trackInbound as it was on a Map (main before session 25): the reference its eviction must still match. */
function trackOnMap(inbound: Map<string, InboundRequest>, key: string, ref: string, deadline: number, now: number, cap: number, pool: boolean): void {
  if (inbound.size >= cap) {
    for (const [k, r] of inbound) {
      if (inbound.size < cap && r.deadline > now) break;
      inbound.delete(k);
    }
  }
  inbound.set(key, { ref, deadline, pool });
}

test("trackInbound evicts at its cap as it did on a Map: expired and oldest first, stopping at the first still in time", { timeout: 10_000 }, () => {
  const rand = lcg(3);
  for (const cap of [1, 3, 50]) {
    const s = new Plain();
    const model = new Map<string, InboundRequest>();
    let now = 0;
    let n = 0;
    for (let step = 0; step < 20_000; step++) {
      now += Math.floor(rand() * 4);
      if (rand() < 0.6) {
        const key = rand() < 0.05 && n > 0 ? `w1.${Math.floor(rand() * n)}` : `w1.${n++}`;
        const deadline = now + 1 + Math.floor(rand() * 200);
        const pool = rand() < 0.3;
        s.trackInbound(key, `ref${step}`, deadline, now, cap, pool);
        trackOnMap(model, key, `ref${step}`, deadline, now, cap, pool);
      } else if (model.size > 0) {
        const keys = [...model.keys()];
        const k = keys[Math.floor(rand() * keys.length)];
        assert.equal(s.inbound.delete(k), true);
        model.delete(k);
      }
      assert.ok(s.inbound.size <= cap);
      if (step % 100 === 0) sameAs(s.inbound, model, `cap ${cap} step ${step}`);
    }
    sameAs(s.inbound, model, `cap ${cap} end`);
  }
});
