import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { buildPump, runXmpp, toyRun } from "./run.js";
import { hostsUnavailable } from "./hosts.js";
import { runOrder, smComparison, smRatios } from "./sm-report.js";

// `npm run bench:smoke`: every way bench:xmpp can run, at toy size (seed 000's
// experiment, N = 20, 3 messages), so a change to the bench or the server that
// breaks one shows before a long measurement does. Real server, generator,
// pump and nats-server processes; it checks that everything arrives, not how
// fast. `npm test` keeps only the smallest of these (test/e2e/bench/).
const pump = buildPump();
const HAVE_NATS = spawnSync("sh", ["-c", "command -v nats-server"]).status === 0;
const SMALL = toyRun({ users: 20, messages: 3, rate: 5, rampMs: 200, procs: 2 });

for (const generator of ["c", "c-spin", "node"] as const) {
  const skip = generator !== "node" && pump === null ? "no C compiler here for bench/xmpp/pump.c" : false;
  test(`bench:xmpp smoke (${generator} messaging phase): 20 users × 3 messages against switchboard, all delivered`, { timeout: 60_000, skip }, async () => {
    const r = await runXmpp({ ...SMALL, pump: generator === "node" ? null : pump, spin: generator === "c-spin" });
    assert.equal(r.generator, generator);
    assert.equal(r.loggedIn, 20, r.firstError);
    assert.equal(r.sent, 60);
    assert.equal(r.received, 60);
    assert.equal(r.deliveryRate, 1);
    assert.equal(r.errors, 0);
    assert.ok(r.serverCpuSeconds >= 0);
    // Spinning costs the whole core; the turns that did work cost a part of it.
    if (generator === "c-spin") assert.ok(r.generatorBusyCores! > 0 && r.generatorBusyCores! <= r.generatorCpuCores + 0.01, `busy ${r.generatorBusyCores} of ${r.generatorCpuCores}`);
  });
}

// --sm both --runs K: the order turns round run by run (ABBA), and the side-by-side table pairs each run's two
// sides by their run k, whatever the order they ran in. No processes: results made up so that the machine
// drifts by +2 µs a run, which an always-off-first order would put on one side.
test("bench:xmpp --sm both: runs alternate off→on, on→off, and the report gives each run's and each ABBA pair's ratio", () => {
  assert.deepEqual([0, 1, 2, 3].map((k) => runOrder(2, k)), [[0, 1], [1, 0], [0, 1], [1, 0]]);
  assert.deepEqual(runOrder(4, 1), [3, 2, 1, 0], "--sm both with --mam both: all four reversed");
  assert.deepEqual(runOrder(1, 1), [0]);
  const base = toyRun({});
  const at = (us: number, sm: boolean, run: number, slot: number) =>
    ({ target: "switchboard", load: 20000, users: 10000, rate: 2, messages: 20, sent: 200000, deliveryRate: 1, p99Ms: 10, serverUsPerMessage: us, serverCoreStealShare: 0, loggedIn: base.users, slowConsumers: 0, run, slot, ...(sm ? { sm: { enabled: base.users, serverRequests: 0, clientRequests: 0, badAcks: 0, failed: 0, clientEvery: 1, policy: { ackEveryStanzas: 10, ackEveryMs: 5000, maxUnacked: 1000, resumeTimeoutMs: 300000 }, unackedMax: 0, unackedEnd: 0, unackedSettled: 0, settleSeconds: 0 } } : {}) }) as unknown as Parameters<typeof smRatios>[0][number];
  // Run order as main.ts makes it: off 30 (t=0), on 36 (t=1), on 38 (t=2), off 36 (t=3): SM's own +5 plus the drift.
  const every = [at(30, false, 0, 0), at(36, true, 0, 1), at(38, true, 1, 0), at(36, false, 1, 1)];
  const off = every.filter((r) => r.sm === undefined);
  const on = every.filter((r) => r.sm !== undefined);
  const { runs, abba } = smRatios(off, on);
  assert.deepEqual(runs.map((x) => x.onFirst), [false, true]);
  assert.deepEqual(runs.map((x) => Number(x.ratio.toFixed(4))), [1.2, 1.0556]);
  assert.deepEqual(abba.map((x) => Number(x.toFixed(4))), [Number((74 / 66).toFixed(4))]);
  const table = smComparison(every, "test");
  assert.match(table, /runs 1\.20 off→on · 1\.06 on→off, median 1\.13; ABBA pairs 1\.12/);
  // Saved runs from before (no run or slot) still pair by their place, with no order and no ABBA pair claimed.
  const old = every.map(({ run: _r, slot: _s, ...r }) => r);
  const before = smRatios(old.filter((r) => r.sm === undefined), old.filter((r) => r.sm !== undefined));
  assert.deepEqual(before.runs.map((x) => x.onFirst), [undefined, undefined]);
  assert.deepEqual(before.abba, []);
});

// --sm: every client enables XEP-0198, answers the server's <r/>, asks with every message and checks the
// answers. About 12 messages reach each client: the server's <r/> comes after 10 stanzas (default policy)
// during the phase and by time (5 s) after it, while the pump still runs; nothing may stay unacknowledged
// once the last is answered, so every client's h was exact.
for (const generator of ["c", "node"] as const) {
  const skip = generator !== "node" && pump === null ? "no C compiler here for bench/xmpp/pump.c" : false;
  test(`bench:xmpp --sm smoke (${generator} messaging phase): 20 users × 12 messages with stream management, all delivered and acknowledged`, { timeout: 60_000, skip }, async () => {
    const r = await runXmpp({ ...SMALL, messages: 12, rate: 20, pump: generator === "node" ? null : pump, sm: true, smEvery: 1 });
    assert.equal(r.loggedIn, 20, r.firstError);
    assert.equal(r.received, 240);
    assert.equal(r.deliveryRate, 1);
    assert.equal(r.errors, 0);
    const sm = r.sm!;
    assert.equal(sm.enabled, 20);
    assert.equal(sm.policy.ackEveryStanzas, 10, "the server's default policy, recorded");
    assert.equal(sm.clientRequests, 240, "an <r/> with every message");
    assert.equal(sm.badAcks, 0, "each <a/> of the server counts exactly what the client sent before its <r/>");
    assert.equal(sm.failed, 0);
    assert.ok(sm.serverRequests >= 20, `the server asked ${sm.serverRequests} times`);
    assert.ok(sm.unackedMax > 0 && sm.unackedMax <= 20 * 10, `unacked max ${sm.unackedMax}`);
    assert.equal(sm.unackedSettled, 0, "every client's h covered every stanza it was sent");
    assert.equal(r.slowConsumers, 0);
  });
}

// --warmup (the pump's warm=): messages before t0 at a share of the rate, not measured. 20 users × 5 warm-up messages
// (1 s at the full 5/s) then 3 measured ones each: the measured figures count the 60 alone, the warm-up's 100 all
// arrive, and stream management's counts stay exact across the two (the warm-up's stanzas are counted and acknowledged too).
test("bench:xmpp --warmup smoke (pump): 20 users, 5 warm-up messages each not measured, then 3 measured, with stream management", { timeout: 60_000, skip: pump === null ? "no C compiler here for bench/xmpp/pump.c" : false }, async () => {
  const r = await runXmpp({ ...SMALL, pump, sm: true, smEvery: 1, warmup: { ms: 1000, share: 1 } });
  assert.equal(r.loggedIn, 20, r.firstError);
  assert.deepEqual(r.warmup, { ms: 1000, share: 1, sent: 100, received: 100 });
  assert.equal(r.sent, 60);
  assert.equal(r.received, 60);
  assert.equal(r.deliveryRate, 1);
  assert.equal(r.errors, 0);
  const sm = r.sm!;
  assert.equal(sm.clientRequests, 60, "the measured messages' <r/>s alone");
  assert.equal(sm.badAcks, 0, "each <a/> counts the warm-up's stanzas too");
  assert.equal(sm.failed, 0);
  assert.equal(sm.unackedSettled, 0);
});

test("bench:xmpp smoke against a host of two workers over NATS (--workers 2): all delivered", { timeout: 90_000, skip: HAVE_NATS ? false : "nats-server is not installed" }, async () => {
  const r = await runXmpp({ ...SMALL, workers: 2, serverCpu: "0,1", genCpu: "0,1" });
  assert.equal(r.loggedIn, 20, r.firstError);
  assert.equal(r.received, 60);
  assert.equal(r.deliveryRate, 1);
  assert.match(r.version, /2 workers/);
});

// --hosts 2: two `switchboard start` hosts (127.0.0.1 and .2) over one nats-server and one PostgreSQL; user i on
// host i % 2, so about half the messages cross hosts. Everything must arrive.
const NO_HOSTS = hostsUnavailable();
test("bench:xmpp smoke against two hosts (--hosts 2): 50 users × 5 messages, all delivered", { timeout: 120_000, skip: NO_HOSTS ?? false }, async () => {
  const r = await runXmpp({ ...SMALL, users: 50, messages: 5, rate: 5, rampMs: 500, hosts: 2, serverCpu: "0,1", genCpu: "0,1", pump });
  assert.equal(r.loggedIn, 50, r.firstError);
  assert.equal(r.sent, 250);
  assert.equal(r.received, 250);
  assert.equal(r.deliveryRate, 1);
  assert.equal(r.errors, 0);
  assert.match(r.version, /2 hosts × 1 worker/);
  assert.ok(r.serverCpuSeconds > 0);
});
