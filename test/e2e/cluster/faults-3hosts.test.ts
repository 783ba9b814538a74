import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { xml } from "@xmpp/client";
import pg from "pg";
import { waitUntil } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { HAVE_NATS, startNatsCluster, type NatsCluster } from "../../nats.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";
import { CLI, startHost, type Host } from "./host-proc.js";
import { workersOf } from "./host-log.js";
import { fleetClient, phaseOutcome, type FleetClient, type Service } from "./fleet.js";

// Issue 14, "Fault tests in CI": three hosts (`switchboard start`, each its own hostAddress and
// loopback address) of two workers each, a three-node NATS cluster, one PostgreSQL; clients with
// XEP-0198 spread over the hosts send chat messages to each other's bare JIDs while, in turn, a
// worker is killed, a worker is stopped for 5 s, a whole host is killed, a NATS node is stopped,
// and a duplicate of a host is started. A message counts as accepted when the server acknowledged
// it to its sender (XEP-0198 <a/>); each one must reach its recipient once, or come back to its
// sender as an error (bounced): lost and duplicated must be 0 in every scenario.
// One scenario alone: `node --test --test-name-pattern=SIGSTOP dist/test/e2e/cluster/faults-3hosts.test.js`.
// Tracing: FAULTS_TRACE=1 FAULTS_LOG=debug prints, for a lost message, what the hosts logged of its recipient, and for
// a duplicate every path it took (delivered where, routed again by its custodian, stored offline, taken from
// storage, resent from a resumed session's queue or its keeper's copies); FAULTS_DUMP=<dir> writes each host's log.
// FAULTS_COALESCE_MS=<n> sets cluster.coalesceMs on every host (unset: the product's default).

const HOSTS = 3;
/** The issue says 300; what the 2 cores carry besides 6 workers, 3 NATS nodes and PostgreSQL (logins use PLAIN: fleet.ts). */
const USERS = Number(process.env.FAULTS_USERS ?? 150);
const PHASE_MS = Number(process.env.FAULTS_PHASE_MS ?? 10_000);
const EVERY_MS = Number(process.env.FAULTS_EVERY_MS ?? 250);
/** xmpp.sm.resumeTimeoutMs of the hosts. */
const RESUME_MS = 20_000;
/** cluster.coalesceMs of the hosts, when set (FAULTS_COALESCE_MS). */
const COALESCE_MS = process.env.FAULTS_COALESCE_MS === undefined || process.env.FAULTS_COALESCE_MS === "" ? undefined : Number(process.env.FAULTS_COALESCE_MS);
const SKIP = !HAVE_NATS ? "nats-server is not installed (apt-get install nats-server)" : (HAVE_POSTGRES ?? false);

interface Figures {
  sent: number;
  accepted: number;
  online: number;
  fromOffline: number;
  bounced: number;
  lost: number;
  duplicated: number;
  backMs: number;
}

describe("faults on 3 hosts × 2 workers, 3 NATS nodes, PostgreSQL", { skip: SKIP, timeout: 300_000 }, () => {
  let pgs: PostgresServer;
  let nats: NatsCluster;
  let dir: string;
  const cfgs: string[] = [];
  const services: Service[] = [];
  const hosts: Host[] = [];
  const clients: FleetClient[] = [];

  async function startAt(h: number): Promise<Host> {
    const host = startHost(cfgs[h]);
    await waitUntil(() => host.log.logged("switchboard started").length === 2 || host.child.exitCode !== null, 30_000, () => `host ${h} to start; stderr:\n${host.log.text}`, 20);
    assert.equal(host.child.exitCode, null, `host ${h} exited: ${host.log.text}`);
    return host;
  }

  before(async () => {
    pgs = await startPostgres();
    const postgres = await pgs.createDatabase("faults3");
    nats = await startNatsCluster(3);
    dir = mkdtempSync(join(tmpdir(), "switchboard-faults3-"));
    for (let h = 0; h < HOSTS; h++) {
      const address = `127.0.0.${h + 1}`;
      services.push({ host: address, port: await freePort() });
      cfgs.push(join(dir, `host${h}.json`));
      writeFileSync(
        cfgs[h],
        JSON.stringify({
          log: { level: process.env.FAULTS_LOG ?? "info", format: "json" },
          listeners: [{ protocol: "xmpp", transport: "tcp", host: address, port: services[h].port }],
          xmpp: { allowPlainWithoutTls: true, sm: { resumeTimeoutMs: RESUME_MS } },
          storage: { type: "postgres", postgres: { ...postgres, poolSize: 4 } },
          cluster: { hostAddress: address, bus: "nats", workers: 2, nats: { servers: nats.urls, subject: "sbfaults3", heartbeatMs: 300 }, ...(COALESCE_MS === undefined ? {} : { coalesceMs: COALESCE_MS }) },
          admin: { enabled: false },
          drainTimeoutMs: 3000,
        }),
      );
    }
    writeFileSync(join(dir, "users.csv"), Array.from({ length: USERS }, (_, i) => `u${i},pw${i}`).join("\n") + "\n");
    const imp = spawnSync(process.execPath, [CLI, "users", "import", join(dir, "users.csv"), "--config", cfgs[0]], { encoding: "utf8", timeout: 30_000 });
    assert.equal(imp.status, 0, imp.stderr);
    for (let h = 0; h < HOSTS; h++) hosts.push(await startAt(h));
    // A few logins at a time: each costs this process a SCRAM derivation.
    const t0 = Date.now();
    for (let i = 0; i < USERS; i += 6) {
      const batch = Array.from({ length: Math.min(6, USERS - i) }, (_, k) => i + k);
      // A login that fails on the busy machine is tried again (twice) before the suite gives up.
      const login = async (u: number, tries = 3): Promise<FleetClient> => {
        try {
          return await fleetClient(services, u % HOSTS, `u${u}`, `pw${u}`, { ackIntervalMs: 200, ackTimeoutMs: 1500 });
        } catch (e) {
          if (tries <= 1) throw e;
          return login(u, tries - 1);
        }
      };
      const got = await Promise.allSettled(batch.map((u) => login(u)));
      for (const r of got) if (r.status === "fulfilled") clients.push(r.value);
      const failed = got.find((r) => r.status === "rejected");
      if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
    }
    process.stdout.write(`# faults-3hosts: ${USERS} clients logged in over ${HOSTS} hosts in ${Date.now() - t0} ms; cluster.coalesceMs ${COALESCE_MS ?? "default"}\n`);
  }, { timeout: 120_000 });

  after(async () => {
    await Promise.all(clients.map((s) => s.stop()));
    for (const h of hosts) h?.kill();
    await nats?.stop();
    await pgs?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const logText = () => hosts.map((h, i) => `--- host ${i}\n${h.log.text.slice(-1500)}`).join("\n");

  /** The worker of host `h` that holds most of the clients now, from the "session started" lines. */
  function busiestWorker(h: number): number {
    const count = new Map<number, number>();
    for (const l of hosts[h].log.logged("session started")) {
      const w = String(l.worker);
      const idx = Number(w.slice(w.lastIndexOf("w") + 1));
      count.set(idx, (count.get(idx) ?? 0) + 1);
    }
    const idx = [...count.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 0;
    const pid = workersOf(hosts[h].child.pid!).get(idx);
    assert.ok(pid !== undefined, `the pid of host ${h}'s worker ${idx}`);
    process.stdout.write(`# host ${h}: sessions started per worker ${JSON.stringify(Object.fromEntries(count))}; victim w${idx} pid ${pid}\n`);
    return pid;
  }

  /**
   * One traffic phase of PHASE_MS: every client sends to another's bare JID every EVERY_MS while
   * online; `fault` runs a third of the way in. Then every client back online, acknowledgements
   * settled both ways, and every accepted message received or bounced (or the deadline). With
   * `countAfterMs`, nothing is counted before that long after the fault.
   */
  async function phase(tag: string, fault: () => Promise<void> | void, countAfterMs = 0): Promise<Figures> {
    const accepted = new Set<string>();
    const onAck = (el: any) => {
      const b = el.getChildText?.("body");
      if (typeof b === "string" && b.startsWith(`${tag}:`)) accepted.add(b);
    };
    clients.forEach((s) => s.c.streamManagement.on("ack", onAck));
    let sent = 0;
    let faultAt = 0;
    let faultDone: Promise<void> = Promise.resolve();
    const start = Date.now();
    await Promise.all(
      clients.map(async (s, i) => {
        for (let n = 0; Date.now() - start < PHASE_MS; n++) {
          const to = `u${(i + 1 + ((n * 7) % (USERS - 1))) % USERS}@localhost`;
          const body = `${tag}:u${i}:${n}`;
          if (s.c.status === "online") {
            s.c.send(xml("message", { to, type: "chat", id: body }, xml("body", {}, body))).catch(() => {});
            sent++;
          }
          if (faultAt === 0 && Date.now() - start > PHASE_MS / 3) {
            faultAt = Date.now();
            faultDone = Promise.resolve(fault());
          }
          await new Promise((r) => setTimeout(r, EVERY_MS));
        }
      }),
    );
    await faultDone;
    await waitUntil(() => clients.every((s) => s.c.status === "online"), 30_000, () => `every client back online (${clients.filter((s) => s.c.status !== "online").length} not); ${logText()}`, 20);
    // What must not come is waited for by the clock: there is no event for "nothing more".
    if (Date.now() < faultAt + countAfterMs) await new Promise((r) => setTimeout(r, faultAt + countAfterMs - Date.now()));
    const wentDown = clients.filter((s) => s.downAt >= faultAt);
    const backMs = wentDown.length === 0 ? 0 : Math.max(...wentDown.map((s) => s.onlineAt)) - faultAt;
    const mine = (b: string) => b.startsWith(`${tag}:`);
    const { received, bounced, missing: lost } = await phaseOutcome(clients, accepted, mine, () =>
      clients.forEach((s) => s.c.streamManagement.removeListener("ack", onAck)),
    );
    const delayed = clients.reduce((a, s) => a + [...s.delayed].filter(mine).length, 0);
    const dups = [...received.entries()].filter(([, n]) => n > 1).map(([b]) => b);
    const f: Figures = { sent, accepted: accepted.size, online: received.size - delayed, fromOffline: delayed, bounced: bounced.size, lost: lost.length, duplicated: dups.length, backMs };
    process.stdout.write(`# ${tag}: ${JSON.stringify({ ...f, clientsDown: wentDown.length })}\n`);
    if (lost.length > 0) {
      // Where they are: stored offline for a recipient who never logged in again, or nowhere.
      const db = new pg.Client({ host: "127.0.0.1", port: pgs.port, user: "postgres", database: "faults3" });
      await db.connect();
      const rows = (await db.query("SELECT username, stanza FROM offline")).rows as { username: string; stanza: string }[];
      await db.end();
      const stored = lost.filter((b) => rows.some((r) => r.stanza.includes(`>${b}<`)));
      const recipient = (b: string) => {
        const [, u, n] = b.split(":");
        const i = Number(u.slice(1));
        const to = (i + 1 + ((Number(n) * 7) % (USERS - 1))) % USERS;
        return `${b}->u${to}${clients[to].downAt >= faultAt ? "(down)" : ""}`;
      };
      process.stdout.write(`# ${tag} lost: ${lost.length}, of which stored offline: ${stored.length}; ${lost.slice(0, 20).map(recipient).join(" ")}\n`);
      if (process.env.FAULTS_TRACE) {
        // What the hosts logged about the first one's recipient (FAULTS_LOG=debug says most), and what that client saw.
        const [, u, n] = lost[0].split(":");
        const to = (Number(u.slice(1)) + 1 + ((Number(n) * 7) % (USERS - 1))) % USERS;
        const c = clients[to];
        process.stdout.write(`# trace u${to}: faultAt ${faultAt} downAt ${c.downAt} onlineAt ${c.onlineAt} now on h${c.at}\n`);
        for (const [i, h] of hosts.entries()) {
          for (const l of h.log.lines) if (String(l.address ?? l.user ?? l.to ?? "").startsWith(`u${to}@`) || String(l.user ?? "") === `u${to}`) process.stdout.write(`# trace host${i} ${JSON.stringify(l)}\n`);
        }
      }
    }
    // For each: its recipient, whether that client lost its stream in this phase (down), took it from offline (+delay),
    // and whether its sender got it back as an error too (+bounced).
    const where = (b: string) => {
      const to = clients.findIndex((s) => s.got.includes(b));
      const r = to < 0 ? undefined : clients[to];
      return `${b}->u${to}${r !== undefined && r.downAt >= faultAt ? `(down, now on h${r.at})` : ""}${r?.delayed.has(b) ? "+delay" : ""}${bounced.has(b) ? "+bounced" : ""}`;
    };
    if (dups.length > 0) process.stdout.write(`# ${tag} duplicated: ${dups.slice(0, 20).map(where).join(" ")}\n`);
    // Every host's whole log, for reading afterwards (FAULTS_DUMP=<dir>, with FAULTS_LOG=debug).
    if (process.env.FAULTS_DUMP) for (const [i, h] of hosts.entries()) writeFileSync(join(process.env.FAULTS_DUMP, `${tag}-host${i}.log`), h.log.text);
    if (dups.length > 0 && process.env.FAULTS_TRACE) {
      // Every path each of the first duplicates took (FAULTS_LOG=debug): the workers that delivered it ("message:
      // delivered"), stored it offline, took it from offline storage, routed it again as its custodian, resent it
      // from a resumed session's queue or the keeper's copies; then what the hosts logged about its recipient.
      for (const b of dups.slice(0, 3)) {
        const to = clients.findIndex((s) => s.got.includes(b));
        const c = clients[to];
        process.stdout.write(`# trace ${b}: recipient u${to} faultAt ${faultAt} downAt ${c.downAt} onlineAt ${c.onlineAt} now on h${c.at}; got it at ${c.got.map((x, i) => (x === b ? i : -1)).filter((i) => i >= 0).join(",")} of ${c.got.length}\n`);
        for (const [i, h] of hosts.entries()) {
          for (const l of h.log.lines) {
            const ids = Array.isArray(l.ids) ? (l.ids as string[]) : [];
            if (l.id === b || ids.includes(b)) process.stdout.write(`# trace ${b} host${i} ${JSON.stringify({ ...l, ids: ids.length > 0 ? `${ids.length} ids` : undefined })}\n`);
          }
        }
        for (const [i, h] of hosts.entries()) {
          for (const l of h.log.lines) if (l.id === undefined && String(l.address ?? "").startsWith(`u${to}@`)) process.stdout.write(`# trace u${to} host${i} ${JSON.stringify({ ...l, ids: undefined })}\n`);
        }
      }
    }
    return f;
  }

  const check = (f: Figures) => {
    assert.equal(f.lost, 0, `lost: ${JSON.stringify(f)}`);
    assert.equal(f.duplicated, 0, `duplicated: ${JSON.stringify(f)}`);
  };

  test("SIGKILL one worker", { timeout: 120_000 }, async () => {
    const victim = busiestWorker(0);
    check(await phase("kill-worker", () => void process.kill(victim, "SIGKILL")));
  });

  // Session 12's occasional duplicate here (1 in 1 of 2 CI runs) was traced in session 13 (FAULTS_TRACE=1 FAULTS_LOG=debug,
  // this scenario alone: --test-name-pattern=SIGSTOP): a stanza the stopped worker had handled and gathered for the
  // bus, published only after SIGCONT, while its client had resumed elsewhere and sent it again (docs/architecture.md,
  // "Back from a stop"); and with it three other paths to a duplicate or a loss after a stop (same section). Session 32's
  // (1 in 28 runs): a stop inside the publish, after its batch was judged fresh — "Stopped in the middle of a publish",
  // reproduced every time by test/unit/proxy/stop-mid-flush.test.ts.
  test("SIGSTOP one worker for 5 s, then SIGCONT", { timeout: 120_000 }, async () => {
    const victim = busiestWorker(1);
    const victimIdx = [...workersOf(hosts[1].child.pid!).entries()].find(([, p]) => p === victim)![0];
    check(
      await phase("stop-worker", async () => {
        process.kill(victim, "SIGSTOP");
        await new Promise((r) => setTimeout(r, 5000));
        const st = new Map<string, number>();
        for (const s of clients) st.set(s.c.status, (st.get(s.c.status) ?? 0) + 1);
        process.stdout.write(`# stop-worker: client states before SIGCONT: ${JSON.stringify(Object.fromEntries(st))}\n`);
        const procState = readFileSync(`/proc/${victim}/stat`, "utf8").split(") ")[1].slice(0, 1);
        const onIt = clients.filter((s) => String(hosts[1].log.logged("session started").filter((l) => l.address === String(s.c.jid)).at(-1)?.worker).endsWith(`-w${victimIdx}`));
        process.stdout.write(`# stop-worker: victim state ${procState}; its ${onIt.length} clients: ${onIt.slice(0, 5).map((s) => `${s.c.status} q=${s.c.streamManagement.outbound_q.length} heard ${Date.now() - s.heardAt} ms ago`).join("; ")}\n`);
        process.kill(victim, "SIGCONT");
      }),
    );
  });

  // Counted once the keepers' windows for the dead host's records have passed (RESUME_MS, then the custody grace of
  // copies nobody took, 10 s, from when a keeper saw the death): a record rebuilt from a keeper that had not seen the
  // death yet left its copies there, which went on to their clients then, from offline storage (session 19: 20 such
  // duplicates in CI, counted only because a loss kept that phase waiting; here 8 after the phase in one of two full runs).
  test("SIGKILL a whole host; its clients go to another", { timeout: 150_000 }, async () => {
    const h = 2;
    check(await phase("kill-host", () => hosts[h].kill(), RESUME_MS + 10_000 + 3000));
    assert.ok(clients.every((s) => s.at !== h), "no client on the dead host");
    // Back to three hosts for what follows.
    hosts[h] = await startAt(h);
    // Some clients' watchdogs give up on a server busy with the new host's joining (1.5 s without an answer) and
    // resume: settled before what follows, or a teardown that overtakes such a resumption has @xmpp/client write
    // to a closing stream (its "resumed" handler is not awaited: "Connection is closing", unhandled, in 3 of 10 runs).
    const back = Date.now();
    await waitUntil(() => clients.every((s) => s.c.status === "online" && s.heardAt > back + 1600), 30_000, () => `every client online and answering after host ${h} is back`, 50);
  });

  test("stop one NATS node", { timeout: 120_000 }, async () => {
    const counts = await Promise.all(nats.nodes.map((n) => n.connections()));
    const busiest = counts.indexOf(Math.max(...counts));
    process.stdout.write(`# NATS connections per node: ${counts.join(",")}; stopping node ${busiest}\n`);
    check(await phase("stop-nats", () => nats.nodes[busiest].stop()));
  });

  test("a duplicate of a host's config is refused, nothing disturbed", { timeout: 120_000 }, async () => {
    const before = [...workersOf(hosts[0].child.pid!).values()].sort();
    let code: number | null = null;
    let dupLog = "";
    const f = await phase("duplicate", async () => {
      const dup = startHost(cfgs[0]);
      code = await dup.exit(30_000).catch((e) => {
        dup.kill();
        throw e;
      });
      dupLog = dup.log.text;
    });
    assert.notEqual(code, 0, `the duplicate's exit code; its stderr:\n${dupLog}`);
    assert.notEqual(code, null);
    check(f);
    assert.equal(f.backMs, 0, "no client lost its stream");
    assert.deepEqual([...workersOf(hosts[0].child.pid!).values()].sort(), before, "host 0's workers are the same processes");
  });
});
