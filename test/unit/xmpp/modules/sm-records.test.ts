import { test } from "node:test";
import assert from "node:assert/strict";
import { rebuiltHandover, rememberCopies } from "../../../../src/xmpp/modules/sm-records.js";
import { Recorder } from "../../proxy/fixtures.js";
import type { ResumeRecord } from "../../../../src/session/resume-record.js";

const rec: ResumeRecord = {
  protocol: "xmpp",
  key: "id",
  user: "alice",
  address: "alice@localhost/phone",
  count: 12,
  windowMs: 60000,
  state: { presence: "<presence/>", available: true, priority: 0, copies: false, roster: true, directed: [] },
};

test("a rebuilt session resends the keeper's copies its client did not receive, in order, across the 2^32 wrap", { timeout: 5000 }, () => {
  const held: [number, string][] = [
    [4294967294, "<message id='a'/>"],
    [4294967295, "<message id='b'/>"],
    [0, "<message id='c'/>"],
    [3, "<message id='d'/>"],
  ];
  const h = rebuiltHandover(rec, 7, 4294967295, held);
  const st = h.state as { handled: number; acked: number; unacked: string[] };
  assert.deepEqual(st.unacked, ["<message id='c'/>", "<message id='d'/>"], "after the client's h, not at or before it");
  assert.equal(st.acked, 4294967295, "counting goes on from the client's h");
  assert.equal(st.handled, 12, "the inbound count from the record");
  assert.deepEqual((rebuiltHandover(rec, 7, 3, held).state as { unacked: string[] }).unacked, [], "all received");
  assert.deepEqual((rebuiltHandover(rec, 7, 9).state as { unacked: string[] }).unacked, [], "no copies");
});

test("a rebuilt session counts every copy its keeper had as given, received or not: what their senders send again after resuming is dropped (Flag.Resent)", { timeout: 5000 }, () => {
  const s = new Recorder("alice@localhost/phone");
  rememberCopies(s, [
    [4, "<message from='bob@localhost/pc' to='alice@localhost/phone' id='b1'><body>1</body></message>"],
    [5, "<message from='carol@localhost/pc' to='alice@localhost/phone'><body>no id</body></message>"],
    [6, "<message from='bob@localhost/pc' to='alice@localhost/phone' id='b2'><body>2</body></message>"],
  ]);
  assert.equal(s.recent?.has("bob@localhost/pc", "b1"), true);
  assert.equal(s.recent?.has("bob@localhost/pc", "b2"), true);
  assert.equal(s.recent?.has("carol@localhost/pc", ""), false);
  assert.equal(s.recent?.has("bob@localhost/tablet", "b1"), false);
});
