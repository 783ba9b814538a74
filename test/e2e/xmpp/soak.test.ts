import { test } from "node:test";
import assert from "node:assert/strict";
import { formatSoak, runSoak, soakDefaults } from "../../../bench/soak/soak.js";

// The soak (bench/soak/, `npm run soak`) at a size for every test run: the real
// server process, 200 raw-socket clients with XEP-0198 each behind a fault
// proxy, 15 s of random cuts, black holes, network switches and outages under
// 100 msg/s. Timers are shortened so that a black hole is noticed by the
// server in 1 s and by the client in 2.5 s, and an outage outlasts the 4 s
// window. About 25 s; npm test gives a file 60 s. The full run (1,000 clients,
// 60 s) is done by hand (docs/operations.md).

test("soak, 200 clients for 15 s of faults: every client back, nothing lost, nothing duplicated", { timeout: 58_000 }, async (t) => {
  const r = await runSoak(
    soakDefaults({
      clients: 200,
      durationMs: 15_000,
      rate: 100,
      faultsPerSec: 5,
      resumeTimeoutMs: 4000,
      pingAfterMs: 500,
      pingTimeoutMs: 500,
      client: { idleMs: 1000, deadMs: 1500, loginTimeoutMs: 10_000, reconnectMinMs: 100, reconnectMaxMs: 300 },
      rampMs: 1000,
      settleMs: 20_000,
      progressMs: 0,
    }),
  );
  const report = formatSoak(r);
  t.diagnostic(report);
  const c = r.counts;
  assert.ok(r.settled, report);
  assert.equal(r.clientsBack, 200, report);
  assert.equal(c.lost, 0, report);
  assert.equal(c.duplicated, 0, report);
  assert.equal(c.stuckOffline, 0, report);
  assert.equal(c.pending, 0, report);
  assert.equal(r.offlineLeft, 0, report);
  // A stream error would mean the two sides disagree (an h too high, bad XML): none is expected here.
  assert.deepEqual(r.streamErrors, {}, report);
  assert.ok(c.sent > 1000 && c.accepted >= c.sent - c.unconfirmed, report);
  // Every kind of fault happened, and each way back was taken: resumed, and logged in again for offline messages.
  for (const kind of ["cut", "blackhole", "switch", "outage"] as const) assert.ok(r.faults[kind] > 0, `no ${kind}: ${report}`);
  assert.ok(r.resumed > 0 && (r.refused["item-not-found"] ?? 0) > 0 && c.deliveredFromOffline > 0, report);
  assert.ok((r.server.switchboard_dead_peers_total ?? 0) > 0, `the server noticed no black hole: ${report}`);
});
