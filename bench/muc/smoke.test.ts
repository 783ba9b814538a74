import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { buildPump } from "../xmpp/run.js";
import { runRoom, toyRoom, type RoomResult } from "./run.js";

// `npm run bench:smoke` (with bench/xmpp/smoke.test.ts): bench:muc at toy size, a room of 20 occupants,
// 2 senders, 20 room messages/s for 1 s, in each way it can run: the Node.js generator, the C pump (built with
// AddressSanitizer and UBSan, so that a memory error in its room mode fails here), the spinning pump, and a
// host of two workers over a nats-server. Real server, generator, pump and nats-server processes; it checks
// that every room message reached every occupant exactly once, not how fast. `npm test` keeps the smallest
// (test/e2e/bench/bench-muc-smoke.test.ts).
const asan = buildPump({ sanitize: true });
const HAVE_NATS = spawnSync("sh", ["-c", "command -v nats-server"]).status === 0;
// A sanitizer's report ends the pump with this status (gen.ts reports it).
process.env.ASAN_OPTIONS = "detect_leaks=1:halt_on_error=1:exitcode=66";
process.env.UBSAN_OPTIONS = "halt_on_error=1:print_stacktrace=1:exitcode=67";

export function assertRoomRun(r: RoomResult, occupants: number, sent: number): void {
  assert.equal(r.loggedIn, occupants, r.firstError);
  assert.equal(r.sent, sent);
  assert.equal(r.expected, sent * occupants);
  assert.equal(r.received, sent * occupants, "each room message reached each occupant");
  assert.equal(r.duplicates, 0);
  assert.equal(r.deliveryRate, 1);
  assert.equal(r.errors, 0);
  assert.ok(r.serverCpuSeconds >= 0 && r.joinSeconds > 0);
}

for (const generator of ["node", "c", "c-spin"] as const) {
  const skip = generator !== "node" && asan === null ? "no C compiler with AddressSanitizer here for bench/xmpp/pump.c" : false;
  test(`bench:muc smoke (${generator} messaging phase): a room of 20, 20 messages/s for 1 s, each reached everyone once`, { timeout: 60_000, skip }, async () => {
    const r = await runRoom(toyRoom({ pump: generator === "node" ? null : asan, spin: generator === "c-spin" }));
    assert.equal(r.generator, generator);
    assertRoomRun(r, 20, 20);
    if (generator !== "node") assert.deepEqual(r.pumpStatus, [0, 0], "the sanitized pumps ended cleanly");
  });
}

test("bench:muc smoke against a host of two workers over NATS (--workers 2): each reached everyone once", { timeout: 90_000, skip: HAVE_NATS ? false : "nats-server is not installed" }, async () => {
  const r = await runRoom(toyRoom({ workers: 2, serverCpu: "0,1", genCpu: "0,1", pump: asan }));
  assertRoomRun(r, 20, 20);
  assert.match(r.version, /2 workers/);
});
