import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import { waitUntil } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { Scrape } from "../../../bench/lib/scrape.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { hostDir, startHost, type Host } from "./host-proc.js";
import { workersOf } from "./host-log.js";
import { fleetClient, phaseOutcome, type FleetClient } from "./fleet.js";

// Heal storms (issue 14; docs/architecture.md, "Membership changes and healing"): on a host of three
// workers with XMPP clients (XEP-0198) messaging each other's bare JIDs, workers are stopped with
// SIGSTOP for less and for more than the expiry window (three heartbeats). Every message the server
// acknowledged must arrive once (lost and duplicated 0), and what the cluster does about it is counted
// from /metrics: a stop that nobody noticed, or one that every worker shared (each late, none expiring
// another: a starved machine), binds nothing again; one past the window binds again only what the
// expiry moved, and nobody renews towards everyone.

const HB = 300;
const USERS = 24;
const PHASE_MS = 6000;
const EVERY_MS = 250;

interface Counts {
  /** Messages the server put into offline storage (a recipient with no session bound at its owner). */
  offline: number;
  rebinds: number;
  rebindMessages: number;
  resyncs: number;
  renewals: number;
  late: number;
}

describe("stalls on a host of three workers: healed, nothing lost, only what changed bound again", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)", timeout: 180_000 }, () => {
  let nats: NatsServer;
  let host: Host;
  let adminPort: number;
  let remove = () => {};
  const clients: FleetClient[] = [];

  before(async () => {
    nats = await startNats();
    const port = await freePort();
    adminPort = await freePort();
    const d = hostDir(
      {
        log: { level: "info", format: "json" },
        listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port }],
        xmpp: { allowPlainWithoutTls: true, sm: { resumeTimeoutMs: 20_000 } },
        storage: { type: "sqlite", path: "db.sqlite" },
        // holdAfterExpiryMs (off by default): what comes for the stopped worker's users waits for it past the heal window.
        cluster: { bus: "nats", workers: 3, holdAfterExpiryMs: 10_000, nats: { servers: [nats.url], subject: "sbstall", heartbeatMs: HB } },
        admin: { port: adminPort },
        drainTimeoutMs: 2000,
      },
      USERS,
    );
    remove = d.remove;
    host = startHost(d.cfg);
    await waitUntil(() => host.log.logged("switchboard started").length === 3 || host.child.exitCode !== null, 30_000, () => `the host to start; stderr:\n${host.log.text}`, 20);
    for (let i = 0; i < USERS; i += 6) {
      const batch = Array.from({ length: Math.min(6, USERS - i) }, (_, k) => i + k);
      // Acks awaited longer than the stops last: the clients stay on their streams.
      clients.push(...(await Promise.all(batch.map((u) => fleetClient([{ host: "127.0.0.1", port }], 0, `h${u}`, "pw", { ackIntervalMs: 300, ackTimeoutMs: 8000 })))));
    }
    const per = new Map<string, number>();
    for (const l of host.log.logged("session started")) per.set(String(l.worker), (per.get(String(l.worker)) ?? 0) + 1);
    process.stdout.write(`# stall-heal: ${USERS} clients, sessions per worker ${JSON.stringify(Object.fromEntries(per))}\n`);
  }, { timeout: 60_000 });

  after(async () => {
    await Promise.all(clients.map((s) => s.stop()));
    host?.kill();
    await nats?.stop();
    remove();
  });

  const counts = async (): Promise<Counts> => {
    const s = await Scrape.of(adminPort);
    const n = (name: string, labels: Record<string, string> = {}) => {
      const v = s.get(name, labels);
      return Number.isNaN(v) ? 0 : v;
    };
    return {
      offline: n("switchboard_offline_messages_stored_total"),
      rebinds: n("switchboard_cluster_rebinds_total", { unit: "sessions" }),
      rebindMessages: n("switchboard_cluster_rebinds_total", { unit: "messages" }),
      resyncs: n("switchboard_cluster_resyncs_total"),
      renewals: n("switchboard_cluster_renewals_total"),
      late: n("switchboard_cluster_late_heartbeats_total"),
    };
  };
  const minus = (a: Counts, b: Counts): Counts => ({ offline: a.offline - b.offline, rebinds: a.rebinds - b.rebinds, rebindMessages: a.rebindMessages - b.rebindMessages, resyncs: a.resyncs - b.resyncs, renewals: a.renewals - b.renewals, late: a.late - b.late });
  const stop = async (pids: number[], ms: number) => {
    for (const p of pids) process.kill(p, "SIGSTOP");
    await new Promise((r) => setTimeout(r, ms));
    for (const p of pids) process.kill(p, "SIGCONT");
  };

  /**
   * Every client sends to another's bare JID every EVERY_MS for PHASE_MS; `fault` a third of the way in.
   * Then acknowledgements settled, and each message the server acknowledged must have arrived once.
   */
  async function phase(tag: string, fault: () => Promise<void>): Promise<{ accepted: number; lost: number; duplicated: number; bounced: number }> {
    const accepted = new Set<string>();
    const onAck = (el: any) => {
      const b = el.getChildText?.("body");
      if (typeof b === "string" && b.startsWith(`${tag}:`)) accepted.add(b);
    };
    clients.forEach((s) => s.c.streamManagement.on("ack", onAck));
    let faultDone: Promise<void> | null = null;
    const start = Date.now();
    await Promise.all(
      clients.map(async (s, i) => {
        for (let n = 0; Date.now() - start < PHASE_MS; n++) {
          const body = `${tag}:h${i}:${n}`;
          if (s.c.status === "online") s.c.send(xml("message", { to: `h${(i + 1 + ((n * 7) % (USERS - 1))) % USERS}@localhost`, type: "chat", id: body }, xml("body", {}, body))).catch(() => {});
          if (faultDone === null && Date.now() - start > PHASE_MS / 3) faultDone = fault();
          await new Promise((r) => setTimeout(r, EVERY_MS));
        }
      }),
    );
    await faultDone;
    const { received, bounced, missing } = await phaseOutcome(clients, accepted, (b) => b.startsWith(`${tag}:`), () =>
      clients.forEach((s) => s.c.streamManagement.removeListener("ack", onAck)),
    );
    const f = { accepted: accepted.size, lost: missing.length, duplicated: [...received.values()].filter((n) => n > 1).length, bounced: bounced.size };
    const down = clients.filter((s) => s.downAt >= start).length;
    if (f.lost + f.duplicated > 0 || down > 0) {
      const dups = [...received.entries()].filter(([, n]) => n > 1).map(([b]) => b);
      process.stdout.write(`# ${tag}: clients that lost their stream ${down}; lost ${missing.slice(0, 10).join(" ")}; duplicated ${dups.slice(0, 10).join(" ")}\n`);
    }
    return f;
  }

  const workerPids = () => [...workersOf(host.child.pid!).entries()].sort((a, b) => a[0] - b[0]).map(([, p]) => p);

  test("one worker stopped for less than the expiry window (0.5 s): nobody dropped, nothing bound again", { timeout: 60_000 }, async () => {
    const before = await counts();
    const mark = host.log.lines.length;
    const f = await phase("short", () => stop([workerPids()[1]], 500));
    const d = minus(await counts(), before);
    process.stdout.write(`# short stop: ${JSON.stringify({ ...f, ...d })}\n`);
    assert.deepEqual([f.lost, f.duplicated], [0, 0], JSON.stringify(f));
    assert.ok(f.accepted > 300, `accepted ${f.accepted}`);
    assert.equal(host.log.logged("cluster worker not heard from: removed", mark).length, 0);
    assert.deepEqual([d.rebinds, d.resyncs, d.renewals], [0, 0, 0], JSON.stringify(d));
  });

  test("every worker stopped for 2 s at once (a starved machine): each is late, none expires another; no resync, nothing bound again", { timeout: 60_000 }, async () => {
    const before = await counts();
    const mark = host.log.lines.length;
    const f = await phase("all", () => stop(workerPids(), 2000));
    const d = minus(await counts(), before);
    process.stdout.write(`# all stopped: ${JSON.stringify({ ...f, ...d })}\n`);
    assert.deepEqual([f.lost, f.duplicated], [0, 0], JSON.stringify(f));
    assert.ok(d.late >= 3, `every worker saw its timer late: ${JSON.stringify(d)}`);
    assert.equal(host.log.logged("cluster worker not heard from: removed", mark).length, 0, "nobody expired");
    // Before: each late worker renewed its generation, every peer resynced with it, and every session bound again.
    assert.deepEqual([d.rebinds, d.resyncs, d.renewals], [0, 0, 0], JSON.stringify(d));
  });

  let long: { lost: number; duplicated: number; offline: number } | null = null;
  test("one worker stopped for 3 s (past the expiry window): dropped and welcomed back; only what moved binds again, in batches", { timeout: 60_000 }, async () => {
    const before = await counts();
    const mark = host.log.lines.length;
    const f = await phase("long", () => stop([workerPids()[2]], 3000));
    // Healed: the others took it back.
    await waitUntil(async () => (await Scrape.of(adminPort)).get("switchboard_cluster_workers") === 9, 10_000, "every worker to count three", 200);
    const d = minus(await counts(), before);
    process.stdout.write(`# long stop: ${JSON.stringify({ ...f, ...d })}\n`);
    long = { lost: f.lost, duplicated: f.duplicated, offline: d.offline };
    assert.equal(f.duplicated, 0, JSON.stringify(f));
    assert.ok(host.log.logged("cluster worker not heard from: removed", mark).length >= 1, "the others dropped it");
    assert.equal(d.renewals, 0, "no renewal towards everyone");
    // Each of the two others resyncs with it, and it with each: four.
    assert.ok(d.resyncs >= 4 && d.resyncs <= 8, JSON.stringify(d));
    // Bound again: sessions owned by the stopped worker (at the expiry on the others, and back), and its own at the others:
    // at most twice the sessions, never the every-session-everywhere of a renewal storm.
    assert.ok(d.rebinds > 0 && d.rebinds <= 2 * USERS, JSON.stringify(d));
    assert.ok(d.rebindMessages <= d.rebinds, JSON.stringify(d));
  });

  // On main, and with cluster.holdAfterExpiryMs at its default 0, 66-68 of ~550 were lost here: sent after the others dropped the stopped worker,
  // they waited the heal window at their owner and were then stored offline while their clients stayed connected.
  test("one worker stopped for 3 s: nothing acknowledged is lost, nothing stored offline for its connected clients", { timeout: 5000 }, () => {
    assert.ok(long !== null, "the stop above ran");
    assert.deepEqual([long.lost, long.duplicated, long.offline], [0, 0, 0], `lost ${long.lost} (stored offline meanwhile: ${long.offline})`);
  });
});
