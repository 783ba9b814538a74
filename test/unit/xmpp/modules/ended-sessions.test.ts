import { test } from "node:test";
import assert from "node:assert/strict";
import { EndedSessions } from "../../../../src/xmpp/modules/ended-sessions.js";

test("an ended session's count is told to its account for an hour, to no other, and the oldest go first", { timeout: 5000 }, () => {
  const e = new EndedSessions();
  e.note("id1", "alice", 7, 1000);
  assert.equal(e.handled("id1", "alice", 1000 + 3_600_000), 7);
  assert.equal(e.handled("id1", "bob", 1000), -1, "another account's id tells nothing");
  assert.equal(e.handled("id2", "alice", 1000), -1);
  assert.equal(e.handled("id1", "alice", 1001 + 3_600_000), -1, "past the hour");
  // Noted again (the same id ended again after a resumption): the newer count.
  e.note("id1", "alice", 9, 2000);
  assert.equal(e.handled("id1", "alice", 2000), 9);
  // A later note sweeps what is past the hour.
  e.note("id3", "carol", 1, 2000 + 3_600_001);
  assert.equal(e.size, 1);
});

test("at most 50,000 are kept: the oldest make room", { timeout: 5000 }, () => {
  const e = new EndedSessions();
  for (let i = 0; i < 50_001; i++) e.note(`id${i}`, "u", i, 1000);
  assert.equal(e.size, 50_000);
  assert.equal(e.handled("id0", "u", 1000), -1);
  assert.equal(e.handled("id50000", "u", 1000), 50_000);
});
