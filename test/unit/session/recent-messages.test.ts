import { test } from "node:test";
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { RecentMessages } from "../../../src/session/recent-messages.js";

/** A clock that moves a minute at each read: the ring never goes full circle quickly, so it stays at its size. */
const slow = () => {
  let t = 0;
  return () => (t += 60_000);
};

test("the last sixteen messages by sender and id; an empty id never matches", { timeout: 2000 }, () => {
  const r = new RecentMessages(16, slow());
  assert.equal(r.has("a@x/1", "m0"), false);
  for (let i = 0; i < 16; i++) r.note("a@x/1", `m${i}`);
  assert.equal(r.has("a@x/1", "m0"), true);
  assert.equal(r.has("a@x/1", "m15"), true);
  assert.equal(r.has("a@x/2", "m15"), false, "another sender's message of the same id");
  r.note("b@x/1", "n0");
  assert.equal(r.has("a@x/1", "m0"), false, "the oldest went");
  assert.equal(r.has("a@x/1", "m1"), true);
  assert.equal(r.has("b@x/1", "n0"), true);
  r.note("a@x/1", "");
  assert.equal(r.has("a@x/1", ""), false);
});

test("what moves with a session to another worker: its pairs oldest first, and a ring made of them finds the same", { timeout: 2000 }, () => {
  const r = new RecentMessages(16, slow());
  assert.deepEqual(r.list(), []);
  r.note("a@x/1", "m1");
  r.note("b@x/1", "n1");
  assert.deepEqual(r.list(), ["a@x/1", "m1", "b@x/1", "n1"]);
  for (let i = 2; i <= 17; i++) r.note("a@x/1", `m${i}`);
  const list = r.list();
  assert.equal(list.length, 32);
  assert.deepEqual(list.slice(0, 2), ["a@x/1", "m2"], "the oldest kept first, after the ring turned");
  assert.deepEqual(list.slice(-2), ["a@x/1", "m17"]);
  const moved = RecentMessages.of(list);
  assert.deepEqual(moved.list(), list);
  assert.equal(moved.has("a@x/1", "m2"), true);
  assert.equal(moved.has("b@x/1", "n1"), false);
});

test("a ring that goes full circle within 10 s doubles before it overwrites (a busy recipient), up to 256 pairs; one that turns slowly stays", { timeout: 2000 }, () => {
  let t = 0;
  const r = new RecentMessages(16, () => t);
  for (let i = 0; i < 16; i++) r.note("a@x/1", `m${i}`);
  assert.equal(r.size, 32, "sixteen within 10 s of its making: room for twice as many");
  assert.equal(r.has("a@x/1", "m0"), true, "nothing lost in growing");
  assert.deepEqual(r.list().slice(0, 2), ["a@x/1", "m0"], "oldest first still");
  t += 20_000;
  for (let i = 16; i < 32; i++) r.note("a@x/1", `m${i}`);
  assert.equal(r.size, 32, "a circle of 20 s: it stays");
  assert.equal(r.has("a@x/1", "m0"), true);
  r.note("a@x/1", "m32");
  assert.equal(r.has("a@x/1", "m0"), false, "the oldest goes");
  for (let i = 33; i < 2_000; i++) r.note("a@x/1", `m${i}`);
  assert.equal(r.size, 256, "at most 256 pairs");
  assert.equal(r.has("a@x/1", `m${2_000 - 256}`), true);
  assert.equal(r.has("a@x/1", `m${2_000 - 257}`), false);
  // Moved to another worker, the ring keeps all it had.
  const moved = RecentMessages.of(r.list());
  assert.ok(moved.size >= 256);
  assert.equal(moved.has("a@x/1", `m${2_000 - 256}`), true);
  // A quiet session: full circles a minute apart, it stays small.
  let u = 0;
  const q = new RecentMessages(16, () => (u += 60_000));
  for (let i = 0; i < 100; i++) q.note("b@x/1", `n${i}`);
  assert.equal(q.size, 16);
});

test("a pair kept does not keep the text its strings were cut from (a bus message's whole text, read as one)", { timeout: 20_000 }, () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const r = new RecentMessages(256, slow());
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < 256; i++) {
    // 100 KB of text per message, as WireReader reads a message's strings and stanza in one piece; the sender and
    // id are slices of it (V8 makes a slice of 13 characters or more point at its whole text).
    const all = `${"x".repeat(100_000)}user${i}@example.com/phone-${i}message-id-${i}-0123456789`;
    const from = all.slice(100_000, all.indexOf("message-id"));
    const id = all.slice(all.indexOf("message-id"));
    r.note(from, id);
  }
  gc();
  const grown = process.memoryUsage().heapUsed - before;
  // Kept whole, the texts would be 256 × 100 KB = 25 MB.
  assert.ok(grown < 5_000_000, `the ring kept ${(grown / 1e6).toFixed(1)} MB for 256 pairs`);
  assert.equal(r.has("user7@example.com/phone-7", "message-id-7-0123456789"), true);
  assert.deepEqual(r.list().slice(0, 2), ["user0@example.com/phone-0", "message-id-0-0123456789"]);
});
