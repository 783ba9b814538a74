import { test } from "node:test";
import assert from "node:assert/strict";
import { UnackedQueue } from "../../../../src/xmpp/modules/unacked-queue.js";

// The queue keeps stanzas as bytes; what comes out must be exactly what went in, in order, after any mix of pushes and drops.
test("stanzas come back as written, oldest first, across growth, drops and reuse; multi-byte text intact", { timeout: 5_000 }, () => {
  const q = new UnackedQueue();
  const model: string[] = [];
  let n = 0;
  const stanza = () => `<message id='m${n}'><body>${"é✓𝄞".repeat(n % 7)}${"x".repeat((n * 37) % 900)}</body></message>${n++}`;
  for (let round = 0; round < 200; round++) {
    const add = (round * 13) % 11;
    for (let i = 0; i < add; i++) {
      const s = stanza();
      q.push(s);
      model.push(s);
    }
    const drop = Math.min(model.length, (round * 7) % 9);
    q.drop(drop);
    model.splice(0, drop);
    assert.equal(q.length, model.length);
    if (round % 17 === 0) assert.deepEqual(q.pending(), model);
  }
  assert.deepEqual(q.pending(), model);
  q.drop(q.length);
  assert.equal(q.length, 0);
  assert.deepEqual(q.pending(), []);
  // Reused after emptying.
  q.push("<a/>");
  assert.deepEqual(q.pending(), ["<a/>"]);
});

test("one stanza larger than the buffer grows it; a drop of 0 is nothing", { timeout: 5_000 }, () => {
  const q = new UnackedQueue();
  const big = `<message><body>${"y".repeat(100_000)}</body></message>`;
  q.push("<r/>");
  q.push(big);
  q.drop(0);
  assert.deepEqual(q.pending(), ["<r/>", big]);
  q.drop(1);
  assert.deepEqual(q.pending(), [big]);
});
