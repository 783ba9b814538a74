import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { RelayClient, RelayError, type IncomingRequest } from "../../../src/relay/client.js";
import { Router } from "../../../src/router/router.js";
import { workerIdOf } from "../../../src/cluster/nats-bus.js";
import { waitUntil, within } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { HostLog } from "./host-log.js";

// Bindings heal (docs/architecture.md, "Healing"), on a real `switchboard start` host of two worker
// processes and a real nats-server: after a worker stalls (SIGSTOP) or NATS goes away for 5 s, every
// client is reachable again without logging in; a request to a session on a worker killed with
// SIGKILL fails at once instead of at its timeout.

const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "src", "cli", "main.js");
const HB = 1000;
const USERS = 10;
/**
 * Clients logged in for the SIGKILL test, which needs one on the worker that dies whose user the survivor owns:
 * where a connection lands is the workers' accept race (each within its ceiling), so enough of them, and a
 * second try, that such a one is there whatever the race.
 */
const PLACED = 30;

/** The worker processes of the host, by worker index (node:cluster gives each SWITCHBOARD_WORKER). */
function workerPids(primary: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = readFileSync(`/proc/${name}/stat`, "utf8");
      if (Number(s.slice(s.lastIndexOf(")") + 2).split(" ")[1]) !== primary) continue;
      const env = readFileSync(`/proc/${name}/environ`, "utf8").split("\0").find((e) => e.startsWith("SWITCHBOARD_WORKER="));
      if (env !== undefined) out.set(Number(env.slice(env.indexOf("=") + 1)), Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

describe("bindings heal on a host of two worker processes", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  let dir: string;
  let port: number;
  let host: ChildProcess;
  const hostLog = new HostLog();
  const ids = [workerIdOf("127.0.0.1", 0), workerIdOf("127.0.0.1", 1)];
  const router = new Router({ hosts: { "127.0.0.1": ids }, vnodes: 2048 });
  const bareOf = (c: RelayClient) => c.jid.slice(0, c.jid.indexOf("/"));
  /** The worker a client's connection landed on, from its "session started" line. */
  const workerOf = (c: RelayClient): string => String(hostLog.logged("session started").filter((l) => l.address === c.jid).pop()?.worker);

  const login = async (user: string, answer = true): Promise<RelayClient> => {
    const c = await RelayClient.connect({ port });
    await c.login({ user, password: "pw", resource: "r" });
    if (answer) c.on("request", (r: IncomingRequest) => r.respond());
    return c;
  };
  /** Every client answers a request to its bare address (bound at its owner, wherever that is). */
  const reachable = async (clients: RelayClient[], ms: number): Promise<void> => {
    const deadline = Date.now() + ms;
    for (const c of clients) {
      const ok = () =>
        clients[0].request(bareOf(c), "", 500).then(
          () => true,
          (e: RelayError) => (e.code === "unavailable" || e.code === "timeout" ? false : Promise.reject(e)),
        );
      await waitUntil(ok, Math.max(0, deadline - Date.now()), () => `${c.jid} to be reachable again; stderr:\n${hostLog.text.slice(-4000)}`, 50);
    }
  };
  /** All pairs: each client messages every other's bare address; every message must arrive, and no error. */
  const allPairs = async (clients: RelayClient[]): Promise<{ sent: number; got: number; errors: number }> => {
    let got = 0;
    let errors = 0;
    const onMsg = () => void got++;
    const onFrame = (h: Record<string, unknown>) => void (h.t === "err" && errors++);
    for (const c of clients) c.on("message", onMsg).on("frame", onFrame);
    let sent = 0;
    for (const a of clients) for (const b of clients) if (a !== b) (a.message(bareOf(b), `m${sent++}`));
    await waitUntil(() => got + errors >= sent, 5000, () => `${sent} messages: ${got} arrived, ${errors} errors; stderr:\n${hostLog.text.slice(-4000)}`, 20).catch(() => {});
    for (const c of clients) c.off("message", onMsg).off("frame", onFrame);
    return { sent, got, errors };
  };
  const logins = () => Promise.all(Array.from({ length: USERS }, (_, i) => login(`h${i}`)));

  before(async () => {
    nats = await startNats();
    dir = mkdtempSync(join(tmpdir(), "switchboard-heal-"));
    port = await freePort();
    const cfg = join(dir, "config.json");
    writeFileSync(
      cfg,
      JSON.stringify({
        log: { level: "info", format: "json" },
        listeners: [{ protocol: "relay", transport: "tcp", host: "127.0.0.1", port }],
        storage: { type: "sqlite", path: "db.sqlite" },
        cluster: { bus: "nats", workers: 2, nats: { servers: [nats.url], subject: "sbheal", heartbeatMs: HB } },
        drainTimeoutMs: 2000,
      }),
    );
    writeFileSync(join(dir, "users.csv"), Array.from({ length: PLACED + 2 }, (_, i) => `h${i},pw`).join("\n"));
    const imp = spawnSync(process.execPath, [CLI, "users", "import", join(dir, "users.csv"), "--config", cfg], { encoding: "utf8" });
    assert.equal(imp.status, 0, imp.stderr);
    host = spawn(process.execPath, [CLI, "start", "--config", cfg], { stdio: ["ignore", "ignore", "pipe"] });
    host.stderr!.on("data", hostLog.onData);
    await waitUntil(() => hostLog.logged("switchboard started").length === 2, 20_000, () => `both workers started; stderr:\n${hostLog.text}`, 20);
  }, { timeout: 30_000 });
  after(async () => {
    if (host.exitCode === null) host.kill("SIGKILL");
    for (const p of workerPids(host.pid!).values()) {
      try {
        process.kill(p, "SIGKILL");
      } catch {
        // gone
      }
    }
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a worker stopped (SIGSTOP) for 5 s: afterwards every client receives every message, without logging in again", { timeout: 40_000 }, async () => {
    const clients = await logins();
    await reachable(clients, 5000);
    const on = new Set(clients.map(workerOf));
    assert.equal(on.size, 2, "clients on both workers");
    const pid = workerPids(host.pid!).get(1)!;
    const mark = hostLog.lines.length;
    process.kill(pid, "SIGSTOP");
    await new Promise((r) => setTimeout(r, 5000));
    process.kill(pid, "SIGCONT");
    // The other worker dropped it after three heartbeats; back, it binds again within a few.
    const t0 = performance.now();
    await reachable(clients, 4 * HB);
    const healedMs = performance.now() - t0;
    assert.ok(hostLog.logged("cluster worker not heard from: removed", mark).length >= 1, "the stalled worker was dropped by the other");
    // Welcomed back by the other (not a renewal towards everyone): both sides resynced.
    assert.ok(hostLog.logged("cluster membership changed", mark).some((l) => l.worker === ids[1] && l.resynced === ids[0]), "the stalled worker resynced with the other");
    assert.equal(hostLog.logged("cluster bus lost touch: binding again", mark).length, 0, "no renewal after a stall");
    const r = await allPairs(clients);
    assert.deepEqual(r, { sent: r.sent, got: r.sent, errors: 0 }, `healed in ${healedMs.toFixed(0)} ms`);
    for (const c of clients) c.destroy();
  });

  test("nats-server stopped for 5 s and started again: afterwards every client receives every message, without logging in again", { timeout: 40_000 }, async () => {
    const clients = await logins();
    await reachable(clients, 5000);
    const mark = hostLog.lines.length;
    const natsPort = nats.port;
    await nats.stop();
    await new Promise((r) => setTimeout(r, 5000));
    nats = await startNats(natsPort);
    // nats.js tries again every 2 s; then both resync.
    await waitUntil(() => hostLog.logged("cluster bus lost touch: binding again", mark).length >= 2, 8000, () => `both workers to reconnect; stderr:\n${hostLog.text.slice(-4000)}`, 50);
    assert.equal(hostLog.logged("cluster worker not heard from: removed", mark).length, 0, "nobody expired while NATS was down");
    await reachable(clients, 4 * HB);
    const r = await allPairs(clients);
    assert.deepEqual(r, { sent: r.sent, got: r.sent, errors: 0 });
    for (const c of clients) c.destroy();
  });

  test("a request to a session on a worker killed with SIGKILL fails with unavailable within two seconds, not at its timeout", { timeout: 40_000 }, async () => {
    // The recipient on the worker that dies, its user owned by the survivor (who tells); the requester on the survivor.
    const victim = ids[1];
    let clients: RelayClient[] = [];
    let target: RelayClient | undefined;
    let asker: RelayClient | undefined;
    for (let attempt = 0; attempt < 3 && (target === undefined || asker === undefined); attempt++) {
      for (const c of clients) c.destroy();
      // This try's session lines only (a client of the try before had the same address).
      const since = hostLog.lines.length;
      const placed = (c: RelayClient) => String(hostLog.logged("session started", since).filter((l) => l.address === c.jid).pop()?.worker);
      clients = await Promise.all(Array.from({ length: PLACED }, (_, i) => login(`h${i}`, false)));
      await waitUntil(() => clients.every((c) => placed(c) !== "undefined"), 5000, "session lines");
      target = clients.find((c) => placed(c) === victim && router.ownerOf(bareOf(c)) === ids[0]);
      asker = clients.find((c) => placed(c) === ids[0]);
    }
    assert.ok(target !== undefined && asker !== undefined, `placement: ${clients.map((c) => `${c.jid}@${workerOf(c)}`).join(" ")}`);
    const answer = asker.request(target.jid, "q", 30_000).then(
      () => "answered",
      (e: RelayError) => e.code,
    );
    // Delivered (the target's client never answers), then the worker dies.
    await new Promise<void>((resolve) => target.once("request", () => resolve()));
    const t0 = performance.now();
    process.kill(workerPids(host.pid!).get(1)!, "SIGKILL");
    assert.equal(await within(answer, 10_000, "the request to end"), "unavailable");
    const ms = performance.now() - t0;
    // On failure, what the host said last (a restarted worker slow to boot on a loaded machine joins late).
    assert.ok(ms < 2000, `failed after ${ms.toFixed(0)} ms; ${hostLog.lines.slice(-40).filter((l) => !String(l.message).startsWith("session")).map((l) => JSON.stringify(l)).join("\n")}`);
    for (const c of clients) c.destroy();
  });
});
