import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { waitUntil } from "../../helpers.js";
import { HAVE_NATS } from "../../nats.js";
import { ResumeBed } from "./resume-bed.js";

/** Short, so that the test passes it; the client comes back this much later. */
const WINDOW_MS = 3000;

/**
 * The case where resumption after a worker's death is impossible: the client
 * comes back after the window (its record was let go). A clean <failed/>, a
 * login, and what was sent to it meanwhile from offline storage, once. A real
 * host of two workers on a real nats-server, as resume-after-kill.test.ts.
 */
describe("resumption after a worker's death, past the window", { timeout: 120_000, skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  const bed = new ResumeBed(WINDOW_MS, "sbwindow");
  before(() => bed.start(), { timeout: 30_000 });
  after(() => bed.stop());

  test("resumption impossible (the window passed): <failed/>, a login, the stored messages once", { timeout: 60_000 }, async () => {
    await bed.login();
    const { clients, workerOf } = bed;
    const i = 0;
    const x = clients[i];
    const w = workerOf(String(x.c.jid));
    const sessionsBefore = x.sessions;
    const resumedBefore = x.resumed;
    let failed = 0;
    // XEP-0198's <failed/>: on its own after RFC 6120 SASL, or inside SASL2's <success/> (inline resumption, XEP-0388).
    x.c.on("nonza", (el: any) => {
      if (el.is("failed", "urn:xmpp:sm:3") || (el.is("success", "urn:xmpp:sasl:2") && el.getChild("failed", "urn:xmpp:sm:3") !== undefined)) failed++;
    });
    // The kill is noticed within three heartbeats; the record goes a window after that.
    x.c.reconnect.delay = WINDOW_MS + 3000;
    let run = 0;
    const sent = await bed.traffic(2500, () => process.kill(bed.pidOf(w), "SIGKILL"), (r) => (run = r));
    await waitUntil(() => clients.every((s) => s.c.status === "online"), 30_000, "every client back online");
    const r = await bed.delivered("after the window", new Set([i]), run);
    const report = { client: `h${i}`, worker: w, failed, loggedIn: x.sessions - sessionsBefore, resumed: x.resumed - resumedBefore, fromOffline: x.delayed.length, sent, lost: r.lost, duplicated: r.duplicated };
    process.stdout.write(`# resume-window: ${JSON.stringify(report)}\n`);
    if (r.duplicated > 0) process.stdout.write(`# duplicated: ${r.dups.map((b) => b + (x.delayed.includes(b) ? "+delay" : "")).join(" ")}\n`);
    assert.equal(failed, 1, `one <failed/>: ${JSON.stringify(report)}`);
    assert.equal(x.resumed, resumedBefore, "not resumed");
    assert.equal(x.sessions, sessionsBefore + 1, "logged in again");
    assert.ok(x.delayed.length > 0, "got stored messages");
    assert.equal(r.lost, 0, "lost");
    assert.equal(r.duplicated, 0, `duplicated: ${JSON.stringify(report)}`);
  });
});
