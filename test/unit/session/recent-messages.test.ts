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
