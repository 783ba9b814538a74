import { test } from "node:test";
import assert from "node:assert/strict";
import { runScale } from "../../../bench/scale/run.js";
import { paramsFrom } from "../../../bench/scale/main.js";

// bench:scale end to end at test size: a real server process (one worker,
// under the inspector), two real client processes on two source addresses,
// 500 sessions with XEP-0198 that log in, idle with the server's pings running
// (after 1 s of silence, again 1 s after each answer, so the idle 3 s see
// some whatever the logins took), and answer a ping each at
// the end. It checks that every session got in and is still alive, and that
// the memory figures were read, not what they are: the machine may be busy.
test("bench:scale at test size: 500 sessions log in, idle through the server's pings, and all answer at the end", { timeout: 120_000 }, async () => {
  const p = paramsFrom({ sessions: "500", clients: "2", "idle-s": "3", "settle-s": "1", "ping-after-ms": "1000", "ping-timeout-ms": "1000" });
  const r = await runScale(p);
  assert.equal(r.online, 500, r.firstError);
  assert.equal(r.failed, 0, r.firstError);
  assert.equal(r.alive, 500);
  assert.equal(r.dead, 0);
  assert.equal(r.clientStats.dropped, 0);
  // Pings went out and came back during the idle window, and nobody was taken for dead.
  assert.ok(r.clientStats.pings > 0, "no ping reached the clients while idle");
  assert.ok(r.perSession.heapUsed > 0 && Number.isFinite(r.perSession.rss));
  assert.ok(r.idleServerCpuSeconds >= 0);
});
