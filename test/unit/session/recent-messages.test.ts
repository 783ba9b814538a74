import { test } from "node:test";
import assert from "node:assert/strict";
import { RecentMessages } from "../../../src/session/recent-messages.js";

test("the last sixteen messages by sender and id; an empty id never matches", { timeout: 2000 }, () => {
  const r = new RecentMessages();
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
  const r = new RecentMessages();
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
