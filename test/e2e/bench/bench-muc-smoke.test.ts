import { test } from "node:test";
import assert from "node:assert/strict";
import { runRoom, toyRoom } from "../../../bench/muc/run.js";

// The room benchmark (`npm run bench:muc`) end to end at toy size: a real server and two generator
// processes; 20 users log in, make and join one room, 2 of them post 20 room messages in 1 s, and every
// occupant must take each of them exactly once. Not how fast: the machine may be busy. The C pump (built
// with AddressSanitizer and UBSan) and two workers over NATS are in `npm run bench:smoke` (bench/muc/smoke.test.ts).
test("bench:muc smoke: a room of 20, 20 messages in 1 s, each reached every occupant once", { timeout: 60_000 }, async () => {
  const r = await runRoom(toyRoom({}));
  assert.equal(r.loggedIn, 20, r.firstError);
  assert.equal(r.sent, 20);
  assert.equal(r.expected, 400);
  assert.equal(r.received, 400);
  assert.equal(r.duplicates, 0);
  assert.equal(r.deliveryRate, 1);
  assert.equal(r.errors, 0);
});
