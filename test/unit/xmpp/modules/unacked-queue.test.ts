import { test } from "node:test";
import assert from "node:assert/strict";
import { UnackedQueue } from "../../../../src/xmpp/modules/unacked-queue.js";
import { LARGEST_PAGE, PagePool } from "../../../../src/xmpp/modules/unacked-pages.js";

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

test("pages: a queue takes one at its first stanza and gives it back when emptied; the next round reuses it, nothing is cut anew", { timeout: 5_000 }, () => {
  const pool = new PagePool();
  const q = new UnackedQueue(pool);
  assert.equal(pool.taken, 0);
  q.push("<message><body>a</body></message>");
  assert.equal(pool.taken, 1);
  q.drop(1);
  assert.equal(pool.taken, 0);
  let cut = 0;
  for (let round = 0; round < 100; round++) {
    // Five stanzas of ~230 bytes: past the first 1 KiB page, into a 2 KiB one, which the next rounds start with.
    for (let i = 0; i < 5; i++) q.push(`<message id='r${round}-${i}'><body>${"z".repeat(200)}</body></message>`);
    assert.equal(pool.taken, 1);
    q.drop(q.length);
    assert.equal(pool.taken, 0);
    if (round === 0) cut = pool.bytes;
  }
  assert.equal(pool.bytes, cut);
  // An idle stream holds no page.
  assert.equal(q.bytes, 0);
});

test("pages: queues sharing a pool never see each other's bytes, across moves to larger pages and past the largest", { timeout: 5_000 }, () => {
  const pool = new PagePool();
  const qs = [new UnackedQueue(pool), new UnackedQueue(pool), new UnackedQueue(pool)];
  const models: string[][] = [[], [], []];
  let n = 0;
  for (let round = 0; round < 300; round++) {
    const k = round % 3;
    // Queue 2 grows past LARGEST_PAGE (its own buffer) before its first drop.
    const size = k === 2 && round < 200 ? 700 : (round * 31) % 400;
    const s = `<m${k} n='${n++}'>${"é𝄞x".repeat(size)}</m${k}>`;
    qs[k].push(s);
    models[k].push(s);
    if (round % 7 === 0) {
      const j = (round / 7) % 2;
      const d = Math.min(models[j].length, 3);
      qs[j].drop(d);
      models[j].splice(0, d);
    }
    for (let i = 0; i < 3; i++) assert.deepEqual(qs[i].pending(), models[i], `queue ${i} at round ${round}`);
  }
  assert.ok(qs[2].bytes > LARGEST_PAGE);
  for (const q of qs) q.drop(q.length);
  assert.equal(pool.taken, 0);
});

test("PagePool: sizes double from 1 KiB; a page given back is the next taken of its class; slabs hold many pages", { timeout: 5_000 }, () => {
  const pool = new PagePool();
  assert.equal(PagePool.classFor(1), 0);
  assert.equal(PagePool.classFor(1024), 0);
  assert.equal(PagePool.classFor(1025), 1);
  assert.equal(PagePool.classFor(LARGEST_PAGE), 6);
  assert.equal(PagePool.classFor(LARGEST_PAGE + 1), -1);
  const a = pool.take(0);
  const b = pool.take(0);
  assert.equal(PagePool.size(a), 1024);
  assert.equal(pool.slab(a), pool.slab(b));
  assert.equal(pool.offset(b) - pool.offset(a), 1024);
  const c = pool.take(3);
  assert.equal(PagePool.size(c), 8192);
  pool.give(a);
  assert.equal(pool.take(0), a);
  assert.equal(pool.taken, 3);
  // 256 one-KiB pages to a slab: the 257th is in a second slab.
  for (let i = 2; i < 256; i++) pool.take(0);
  const last = pool.take(0);
  assert.notEqual(pool.slab(last), pool.slab(a));
  assert.equal(pool.offset(last), 0);
});
