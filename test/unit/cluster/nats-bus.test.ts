import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { performance } from "node:perf_hooks";
import { connect, type NatsConnection } from "nats";
import { NatsBus, type NatsBusOptions } from "../../../src/cluster/nats-bus.js";
import { BUS_PROTOCOL, ringOf } from "../../../src/cluster/join-guard.js";
import type { Membership } from "../../../src/router/router.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { waitUntil, within } from "../../helpers.js";

// Membership by heartbeats (docs/architecture.md, Cluster), against a real
// nats-server. Workers that must fall silent run in their own process and are
// killed with SIGKILL: no goodbye, exactly as when a worker dies.

interface Change {
  m: Membership;
  joined: readonly string[];
  at: number;
}

const BUS_MODULE = new URL("../../../src/cluster/nats-bus.js", import.meta.url).href;
/** A worker process: connects its NatsBus and lives until killed. */
const WORKER = `
const { NatsBus } = await import(process.argv[1]);
await NatsBus.connect(JSON.parse(process.argv[2]), {});
process.stdout.write("up\\n");
`;

/** A worker process that reports each membership callback as a JSON line on stdout. */
const REPORTER = `
const { NatsBus } = await import(process.argv[1]);
const bus = await NatsBus.connect(JSON.parse(process.argv[2]), {});
bus.onMembership((m, joined, resynced) => process.stdout.write(JSON.stringify({ joined, resynced }) + "\\n"));
process.stdout.write("up\\n");
`;

describe("NatsBus membership over a real nats-server", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  const buses: NatsBus[] = [];
  const children: ChildProcess[] = [];
  let subjects = 0;

  const opts = (subject: string, workerId: string, hostAddress: string, heartbeatMs: number): NatsBusOptions => ({
    servers: [nats.url],
    subject,
    heartbeatMs,
    vnodes: 64,
    workerId,
    hostAddress,
  });
  /** A bus in this process, its membership callbacks recorded: changes of who is there, and resyncs apart. */
  const bus = async (o: NatsBusOptions): Promise<{ bus: NatsBus; changes: Change[]; resynced: string[] }> => {
    const b = await NatsBus.connect(o, {});
    buses.push(b);
    const changes: Change[] = [];
    const resynced: string[] = [];
    b.onMembership((m, joined, again) => {
      if (again.length > 0) resynced.push(...again);
      else changes.push({ m, joined: [...joined], at: performance.now() });
    });
    return { bus: b, changes, resynced };
  };
  const workerProcess = (o: NatsBusOptions): ChildProcess => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", WORKER, BUS_MODULE, JSON.stringify(o)], { stdio: ["ignore", "pipe", "inherit"] });
    children.push(child);
    return child;
  };
  const killed = (child: ChildProcess): Promise<void> =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once("exit", () => resolve());
      child.kill("SIGKILL");
    });
  const ids = (m: Membership) => Object.values(m.hosts).flat().sort();

  before(async () => {
    nats = await startNats();
  }, { timeout: 15_000 });
  after(async () => {
    await Promise.all(children.map(killed));
    for (const b of buses) await b.close();
    await nats.stop();
  }, { timeout: 15_000 });

  test("a worker joining: both sides are called with the new membership, joined naming the other", { timeout: 10_000 }, async () => {
    const subject = `t${subjects++}`;
    const a = await bus(opts(subject, "a", "10.0.0.1", 1000));
    const t0 = performance.now();
    const b = await bus(opts(subject, "b", "10.0.0.2", 1000));
    // The newcomer's hello makes a beat at once: well before a heartbeat period.
    await b.bus.ready(2);
    assert.ok(performance.now() - t0 < 1000, `ready(2) took ${performance.now() - t0} ms`);
    await waitUntil(() => a.changes.length === 1, 3000, "a to hear b");
    const both: Membership = { hosts: { "10.0.0.1": ["a"], "10.0.0.2": ["b"] }, vnodes: 64 };
    assert.deepEqual(a.changes.map((c) => [c.m, c.joined]), [[both, ["b"]]]);
    assert.deepEqual(b.changes.map((c) => [c.m, c.joined]), [[both, ["a"]]]);
    assert.deepEqual(a.bus.membership(), both);
    assert.deepEqual(b.bus.membership(), both);
  });

  test("a worker with other ring parameters (cluster.vnodes) is not let in, and refuses to start itself, loudly", { timeout: 10_000 }, async () => {
    const subject = `t${subjects++}`;
    const a = await bus(opts(subject, "a", "10.0.0.1", 500));
    // The newcomer's probe is answered by a's beat: it gives up before it joins or serves.
    await assert.rejects(NatsBus.connect({ ...opts(subject, "b", "10.0.0.2", 500), vnodes: 128 }, {}), new RegExp(`refusing to join: worker a \\(host 10\\.0\\.0\\.1\\) uses ring parameters ${BUS_PROTOCOL}/murmur3/64, this one ${BUS_PROTOCOL}/murmur3/128`));
    // Two heartbeats later a's ring is as it was: b never became a member, so no owner moved.
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(a.changes, []);
    assert.deepEqual(a.bus.membership(), { hosts: { "10.0.0.1": ["a"] }, vnodes: 64 });
  });

  test("a second process with a running worker's id is refused at start; the running cluster changes nothing", { timeout: 10_000 }, async () => {
    const subject = `t${subjects++}`;
    const a = await bus(opts(subject, "a", "10.0.0.1", 500));
    const b = await bus(opts(subject, "b", "10.0.0.1", 500));
    await waitUntil(() => a.changes.length === 1 && b.changes.length === 1, 3000, "a and b to hear each other");
    const before = { a: a.changes.length, b: b.changes.length };
    await assert.rejects(NatsBus.connect(opts(subject, "a", "10.0.0.9", 500), {}), /refusing to join: another process \(host 10\.0\.0\.1\) already runs worker a/);
    // Three heartbeats: a flap (the newcomer's incarnation taken for a's, then a's again) would have shown by now.
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual([a.changes.length, b.changes.length], [before.a, before.b], "no membership change anywhere");
    assert.deepEqual(b.bus.membership(), { hosts: { "10.0.0.1": ["a", "b"] }, vnodes: 64 });
  });

  test("a late beat of another incarnation of this id, within the first heartbeats, refuses after joining (onRefuse); later it is only logged", { timeout: 10_000 }, async () => {
    const subject = `t${subjects++}`;
    const refused: string[] = [];
    // Two processes started at the same moment (neither hears the other's probe in time): the later beats decide.
    const x = await bus({ ...opts(subject, "x", "10.0.0.1", 300), onRefuse: (r) => refused.push(`x1 ${r}`) });
    const raw = await connect({ servers: nats.url });
    try {
      raw.publish(`${subject}.hb`, Buffer.from(JSON.stringify({ id: "x", host: "10.0.0.2", inc: "other", up: true, ring: ringOf(64) })));
      await waitUntil(() => refused.length === 1, 2000, "x to refuse");
      assert.match(refused[0], /already runs worker x/);
      // A long-running worker only logs: past 3 heartbeats of membership.
      const y = await bus({ ...opts(subject, "y", "10.0.0.1", 300), onRefuse: (r) => refused.push(`y ${r}`) });
      await new Promise((r) => setTimeout(r, 1000));
      raw.publish(`${subject}.hb`, Buffer.from(JSON.stringify({ id: "y", host: "10.0.0.2", inc: "other", up: true, ring: ringOf(64) })));
      raw.publish(`${subject}.hb`, Buffer.from(JSON.stringify({ id: "z", host: "10.0.0.2", inc: "other", up: true, ring: ringOf(7) })));
      await raw.flush();
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(refused.length, 1, refused.join("\n"));
      assert.deepEqual(y.bus.membership().hosts["10.0.0.2"], undefined, "neither the duplicate nor the foreign worker is a member");
    } finally {
      await raw.close();
    }
  });

  test("workers of one host are listed under it, sorted; a worker that closes says goodbye and leaves at once", { timeout: 10_000 }, async () => {
    const subject = `t${subjects++}`;
    const HB = 1000;
    const a = await bus(opts(subject, "w2", "h1", HB));
    const b = await bus(opts(subject, "w1", "h1", HB));
    const c = await bus(opts(subject, "w0", "h2", HB));
    await waitUntil(() => ids(a.bus.membership()).length === 3, 3000, "a to hear both others");
    assert.deepEqual(a.bus.membership(), { hosts: { h1: ["w1", "w2"], h2: ["w0"] }, vnodes: 64 });
    const heard = a.changes.length;
    const t0 = performance.now();
    await b.bus.close();
    await waitUntil(() => a.changes.length > heard, 3 * HB, "a to hear w1's goodbye");
    assert.ok(performance.now() - t0 < HB, "at once, not after three silent heartbeats");
    assert.deepEqual(a.changes.slice(heard).map((x) => [x.m, x.joined]), [[{ hosts: { h1: ["w2"], h2: ["w0"] }, vnodes: 64 }, []]]);
    await waitUntil(() => ids(c.bus.membership()).length === 2, 3000, "w0 to hear the goodbye too");
  });

  test("a worker in a turn longer than three heartbeats that publishes in it beats with its batches: nobody takes it off the ring", { timeout: 15_000 }, async () => {
    const subject = `t${subjects++}`;
    const HB = 100;
    const a = await bus(opts(subject, "a", "h", HB));
    // The worker's own process: one turn of 8 heartbeats, publishing a batch to a every 20 ms (as a worker reading a
    // backlog flushes its client output, and the bus batch before it, in a busy turn).
    const BUSY = `
const { NatsBus } = await import(process.argv[1]);
const bus = await NatsBus.connect(JSON.parse(process.argv[2]), {});
await new Promise((r) => setTimeout(r, ${5 * HB}));
process.stdout.write("turn\\n");
const end = performance.now() + ${8 * HB};
let next = 0;
for (let n = 0; performance.now() < end; ) {
  if (performance.now() < next) continue;
  next = performance.now() + 20;
  bus.send("a", { op: "unbind", address: "u@x/r", serial: n++ });
  bus.flushNow();
}
process.stdout.write("done\\n");
`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", BUSY, BUS_MODULE, JSON.stringify(opts(subject, "x", "h", HB))], { stdio: ["ignore", "pipe", "inherit"] });
    children.push(child);
    let out = "";
    child.stdout!.on("data", (d) => (out += d));
    await waitUntil(() => a.changes.some((c) => c.joined.includes("x")), 5000, "the worker process to join");
    const joinedAt = a.changes.length;
    // Silent for eight heartbeats without its batches' beats: a would have taken it off the ring by the turn's end.
    await waitUntil(() => out.includes("done"), 5000, "its long turn to end");
    assert.deepEqual(a.changes.slice(joinedAt).map((c) => ids(c.m)), [], "a saw no membership change");
    assert.deepEqual(ids(a.bus.membership()), ["a", "x"]);
  });

  test("a worker silent for three heartbeats is removed; not before", { timeout: 10_000 }, async () => {
    const subject = `t${subjects++}`;
    const HB = 100;
    // Watches the heartbeats on the wire, to know when the silent worker last spoke.
    const watcher: NatsConnection = await connect({ servers: [nats.url] });
    try {
      let lastBeat = 0;
      watcher.subscribe(`${subject}.hb`, {
        callback: (_e, m) => {
          if ((JSON.parse(Buffer.from(m.data).toString()) as { id: string }).id === "x") lastBeat = performance.now();
        },
      });
      await watcher.flush();
      const a = await bus(opts(subject, "a", "h", HB));
      const x = workerProcess(opts(subject, "x", "h", HB));
      await waitUntil(() => a.changes.some((c) => c.joined.includes("x")), 5000, "the worker process to join");
      const joinedAt = a.changes.length;
      await killed(x);
      await waitUntil(() => a.changes.length > joinedAt, 10 * HB, "a to notice the silence");
      const gone = a.changes[joinedAt];
      assert.deepEqual([gone.m, gone.joined], [{ hosts: { h: ["a"] }, vnodes: 64 }, []]);
      const silent = gone.at - lastBeat;
      // Ticks of HB ms look for members unheard for over 3 × HB: removal lands between 3 and 4 periods (and a late tick).
      assert.ok(silent >= 3 * HB - 5, `removed after ${silent.toFixed(0)} ms of silence, before three heartbeats`);
      assert.ok(silent < 6 * HB, `removed only after ${silent.toFixed(0)} ms of silence`);
    } finally {
      await watcher.close();
    }
  });

  test("a worker restarted under the same id counts as joined again (new incarnation), though nobody saw it gone", { timeout: 15_000 }, async () => {
    const subject = `t${subjects++}`;
    // Long heartbeats: the restart is over well before the first would have expired it.
    const HB = 2000;
    const a = await bus(opts(subject, "a", "h", HB));
    const first = workerProcess(opts(subject, "r", "h", HB));
    await waitUntil(() => a.changes.some((c) => c.joined.includes("r")), 5000, "the worker to join");
    const before = a.changes.length;
    await killed(first);
    const t0 = performance.now();
    const again = workerProcess(opts(subject, "r", "h", HB));
    await within(new Promise((resolve) => again.stdout!.once("data", resolve)), 5000, "the restarted worker to connect");
    await waitUntil(() => a.changes.length > before, 5000, "a to hear the new incarnation");
    assert.ok(performance.now() - t0 < 3 * HB, "before the old incarnation could have expired");
    assert.deepEqual(
      a.changes.slice(before).map((c) => [c.m, c.joined]),
      [[{ hosts: { h: ["a", "r"] }, vnodes: 64 }, ["r"]]],
      "one change: r joined, and never left",
    );
  });

  test("a worker its host's primary saw die (peerDied) leaves at once; a beat of it still on its way does not bring it back; its restart joins", { timeout: 15_000 }, async () => {
    const subject = `t${subjects++}`;
    const HB = 2000;
    const a = await bus(opts(subject, "a", "h", HB));
    // Beating fast, and left running: its beats stand in for those still on their way when a worker is killed.
    const first = workerProcess(opts(subject, "r", "h", 200));
    await waitUntil(() => a.changes.some((c) => c.joined.includes("r")), 5000, "the worker to join");
    const spy: NatsConnection = await connect({ servers: nats.url });
    let beats = 0;
    spy.subscribe(`${subject}.hb`, { callback: (_e, m) => void (JSON.parse(m.string()).id === "r" && beats++) });
    await spy.flush();
    const before = a.changes.length;
    a.bus.peerDied("r");
    assert.deepEqual(a.changes.slice(before).map((c) => [c.m, c.joined]), [[{ hosts: { h: ["a"] }, vnodes: 64 }, []]], "left at once, long before three heartbeats");
    // Three of its beats later (the same server hands each to a as well, within a fraction of the 200 ms between
    // them), it is still gone.
    const seen = beats;
    await waitUntil(() => beats >= seen + 3, 5000, "three more beats of r");
    assert.deepEqual(ids(a.bus.membership()), ["a"], "its old incarnation's beats are ignored");
    assert.equal(a.changes.length, before + 1);
    await killed(first);
    workerProcess(opts(subject, "r", "h", 200));
    await waitUntil(() => a.changes.length > before + 1, 5000, "a to hear the restarted worker");
    assert.deepEqual(a.changes.slice(before + 1).map((c) => [c.m, c.joined]), [[{ hosts: { h: ["a", "r"] }, vnodes: 64 }, ["r"]]], "joined, as a new incarnation");
    await spy.close();
  });

  test("a worker stalled past the expiry window is dropped, and comes back as resynced (not restarted): both sides bind again", { timeout: 15_000 }, async () => {
    const subject = `t${subjects++}`;
    const HB = 200;
    const a = await bus(opts(subject, "a", "h", HB));
    const child = spawn(process.execPath, ["--input-type=module", "-e", REPORTER, BUS_MODULE, JSON.stringify(opts(subject, "x", "h", HB))], { stdio: ["ignore", "pipe", "inherit"] });
    children.push(child);
    const reported: { joined: string[]; resynced: string[] }[] = [];
    let partial = "";
    child.stdout!.on("data", (b: Buffer) => {
      const lines = (partial + b).split("\n");
      partial = lines.pop()!;
      for (const l of lines) if (l.startsWith("{")) reported.push(JSON.parse(l) as { joined: string[]; resynced: string[] });
    });
    await waitUntil(() => a.changes.some((c) => c.joined.includes("x")), 5000, "x to join");
    const heard = a.changes.length;
    child.kill("SIGSTOP");
    await waitUntil(() => a.changes.length > heard && !ids(a.bus.membership()).includes("x"), 10 * HB, "a to drop the stalled worker");
    const mark = reported.length;
    const resyncs = a.resynced.length;
    child.kill("SIGCONT");
    // x is back, as the same process: a resync at a (no new "joined"), and x, welcomed by a, resyncs with it.
    await waitUntil(() => a.resynced.slice(resyncs).includes("x") && ids(a.bus.membership()).includes("x"), 5000, "a to take x back");
    await waitUntil(() => reported.slice(mark).some((r) => r.resynced.includes("a")), 5000, () => `x to resync with a; x said ${JSON.stringify(reported)}`);
    assert.ok(!a.changes.slice(heard).some((c) => c.joined.includes("x")), "x did not count as restarted");
    await killed(child);
  });

  test("every worker stalled at once past the expiry window (a starved machine): each sees its timer late, nobody is expired, renews or resyncs", { timeout: 15_000 }, async () => {
    const subject = `t${subjects++}`;
    const HB = 200;
    const a = await bus(opts(subject, "a", "h", HB));
    const b = await bus(opts(subject, "b", "h", HB));
    await waitUntil(() => ids(a.bus.membership()).length === 2 && ids(b.bus.membership()).length === 2, 3000, "a and b to hear each other");
    // The join made each welcome the other: count from after it.
    await new Promise((r) => setTimeout(r, 2 * HB));
    const heard = [a.changes.length, b.changes.length];
    const resyncs = [a.resynced.length, b.resynced.length];
    // Both in this process: one blocked event loop stalls both, as a starved host stalls all its workers.
    const end = Date.now() + 5 * HB;
    while (Date.now() < end);
    await waitUntil(() => a.bus.lateBeats >= 1 && b.bus.lateBeats >= 1, 3 * HB, "both timers to fire late");
    await new Promise((r) => setTimeout(r, 5 * HB));
    assert.deepEqual([a.changes.length, b.changes.length], heard, "nobody expired or joined");
    assert.deepEqual([a.resynced.length, b.resynced.length], resyncs, "nobody resynced");
    assert.deepEqual([a.bus.renewals, b.bus.renewals], [0, 0]);
  });

  // Last: it stops the shared nats-server and starts another on the same port.
  test("a NATS outage: nobody is expired while cut off; after the reconnect each side resyncs with the other", { timeout: 40_000 }, async () => {
    const subject = `t${subjects++}`;
    // Each nats.js client tries again every 2 s on its own, so two workers come back up to 2 s apart: three
    // heartbeats must be longer than that, or the first back expires the other (as with the default 1 s beat).
    const HB = 800;
    const a = await bus(opts(subject, "a", "h1", HB));
    const b = await bus(opts(subject, "b", "h2", HB));
    await waitUntil(() => ids(a.bus.membership()).length === 2 && ids(b.bus.membership()).length === 2, 3000, "a and b to hear each other");
    const heard = [a.changes.length, b.changes.length];
    // The join itself made each welcome the other: count only what comes after the outage.
    await new Promise((r) => setTimeout(r, 2 * HB));
    const resyncs = [a.resynced.length, b.resynced.length];
    const port = nats.port;
    await nats.stop();
    await waitUntil(() => !a.bus.connected && !b.bus.connected, 3000, "both to see the outage");
    await new Promise((r) => setTimeout(r, 6 * HB));
    assert.deepEqual([a.changes.length, b.changes.length], heard, "nobody expired while cut off");
    nats = await startNats(port);
    // nats.js tries again every 2 s (reconnectTimeWait).
    await waitUntil(() => a.resynced.slice(resyncs[0]).includes("b") && b.resynced.slice(resyncs[1]).includes("a"), 10_000, "each to resync with the other");
    assert.deepEqual([a.changes.length, b.changes.length], heard, "still nobody joined or left");
    assert.ok(a.bus.connected && b.bus.connected);
  });
});
