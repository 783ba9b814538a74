import { test } from "node:test";
import assert from "node:assert/strict";
import { Ledger } from "../../../bench/soak/ledger.js";

// The soak's ledger (bench/soak/ledger.ts) is what the soak's assertions read: each way a message can end is counted
// as the rules say, and two ends of one message are a duplicate.

test("the soak's ledger: delivered, bounced, lost, duplicated, and delivered and bounced both", { timeout: 5000 }, () => {
  const l = new Ledger();
  const ids = [l.send(0, 1), l.send(0, 1), l.send(0, 1), l.send(0, 1), l.send(0, 1)];
  for (const id of ids) l.accepted(id);
  l.received(1, ids[0], false, false);
  l.bounced(ids[1]);
  l.received(1, ids[3], false, false);
  l.bounced(ids[3]);
  l.received(1, ids[4], false, true);
  l.bounced(ids[4]);
  const c = l.counts();
  assert.equal(c.delivered, 3);
  assert.equal(c.bounced, 3);
  assert.equal(c.lost, 1, "the third: neither delivered nor bounced");
  assert.equal(c.duplicated, 1, "the fourth: delivered, and its sender told it failed");
  // The fifth came to a session whose client the server did not know had it (XEP-0198 allows that): not counted.
  l.received(1, ids[0], false, false);
  assert.equal(l.counts().duplicated, 2, "a second copy online");
});
