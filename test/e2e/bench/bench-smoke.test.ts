import { test } from "node:test";
import assert from "node:assert/strict";
import { runXmpp, toyRun } from "../../../bench/xmpp/run.js";

// The XMPP benchmark end to end at toy size (seed 000's experiment): a real
// server process and a real generator process start, log users in, exchange
// messages and stop. It checks that everything arrives, not how fast: the
// machine may be busy. The heavier variants (the C pump, spinning, two
// workers over NATS) are in `npm run bench:smoke` (bench/xmpp/smoke.test.ts).
const TOY = toyRun({});

test("bench:xmpp smoke: 10 users × 2 messages against switchboard, all delivered", { timeout: 60_000 }, async () => {
  const r = await runXmpp(TOY);
  assert.equal(r.generator, "node");
  assert.equal(r.loggedIn, 10, r.firstError);
  assert.equal(r.sent, 20);
  assert.equal(r.received, 20);
  assert.equal(r.deliveryRate, 1);
  assert.equal(r.errors, 0);
  assert.ok(r.serverCpuSeconds >= 0);
});
