import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { RelayClient, RelayError, type IncomingRequest } from "../../../src/relay/client.js";
import { waitUntil, within } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { HostLog } from "./host-log.js";
import { BUS_PROTOCOL } from "../../../src/cluster/join-guard.js";

const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "src", "cli", "main.js");

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = readFileSync(`/proc/${name}/stat`, "utf8");
      if (Number(s.slice(s.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out.sort();
}

/** `switchboard start` with cluster.workers 2: the real CLI, the real node:cluster host, a real nats-server. */
describe("a host of two worker processes", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  let dir: string;
  let port: number;
  let host: ChildProcess;
  const hostLog = new HostLog();
  const logs = hostLog.lines;
  const logged = (message: string, since = 0) => hostLog.logged(message, since);


  const login = async (user: string): Promise<RelayClient> => {
    const c = await RelayClient.connect({ port });
    await c.login({ user, password: "pw", resource: "r" });
    c.on("request", (r: IncomingRequest) => r.respond());
    return c;
  };
  /**
   * Each client's session is bound at its user's owner, which may be the other worker (the bind
   * crosses the bus after the login's ok, and again after a re-homing): a request to the bare
   * address is answered rather than refused `unavailable`.
   */
  const reachable = async (clients: RelayClient[]): Promise<void> => {
    for (const c of clients) {
      const bare = c.jid.slice(0, c.jid.indexOf("/"));
      const answered = () => clients[0].request(bare, "", 1000).then(() => true, (e: RelayError) => (e.code === "unavailable" ? false : Promise.reject(e)));
      await waitUntil(answered, 5000, () => `${bare} to be reachable; stderr:\n${hostLog.text}`, 20);
    }
  };
  /** Each client messages the next one's bare address; true when all arrive. */
  const ring = async (clients: RelayClient[]): Promise<void> => {
    for (let i = 0; i < clients.length; i++) {
      const to = clients[(i + 1) % clients.length];
      const got = new Promise<string>((resolve) => to.once("message", (m: { from: string; body: Buffer }) => resolve(`${m.from} ${m.body}`)));
      clients[i].message(to.jid.slice(0, to.jid.indexOf("/")), `n${i}`);
      assert.equal(await within(got, 3000, () => `n${i} at ${to.jid}; stderr:\n${hostLog.text}`), `${clients[i].jid} n${i}`, hostLog.text);
    }
  };

  before(async () => {
    nats = await startNats();
    dir = mkdtempSync(join(tmpdir(), "switchboard-host-"));
    port = await freePort();
    const cfg = join(dir, "config.json");
    writeFileSync(
      cfg,
      JSON.stringify({
        log: { level: "info", format: "json" },
        listeners: [{ protocol: "relay", transport: "tcp", host: "127.0.0.1", port }],
        storage: { type: "sqlite", path: "db.sqlite" },
        cluster: { bus: "nats", workers: 2, nats: { servers: [nats.url], subject: "sbhost", heartbeatMs: 1000 } },
        admin: { port: 0 },
        drainTimeoutMs: 3000,
      }),
    );
    writeFileSync(join(dir, "users.csv"), Array.from({ length: 8 }, (_, i) => `h${i},pw`).join("\n"));
    const imp = spawnSync(process.execPath, [CLI, "users", "import", join(dir, "users.csv"), "--config", cfg], { encoding: "utf8" });
    assert.equal(imp.status, 0, imp.stderr);
    host = spawn(process.execPath, [CLI, "start", "--config", cfg], { stdio: ["ignore", "ignore", "pipe"] });
    host.stderr!.on("data", hostLog.onData);
    // Both workers listening: the primary hands connections out only to those that are.
    await waitUntil(() => logged("switchboard started").length === 2, 20_000, () => `both workers started; stderr:\n${hostLog.text}`, 20);
  }, { timeout: 30_000 });
  after(async () => {
    if (host.exitCode === null) host.kill("SIGKILL");
    for (const p of childrenOf(host.pid!)) process.kill(p, "SIGKILL");
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("connections are spread over both workers, and messages cross between them", { timeout: 30_000 }, async () => {
    assert.equal(childrenOf(host.pid!).length, 2);
    const clients = await Promise.all(["h0", "h1", "h2", "h3"].map(login));
    await reachable(clients);
    await ring(clients);
    for (const c of clients) c.destroy();
  });

  test("a worker killed with SIGKILL is restarted; the other worker's sessions keep working with the new one's", { timeout: 30_000 }, async () => {
    const kept = await Promise.all(["h4", "h5", "h6", "h7"].map(login));
    const [victim] = childrenOf(host.pid!);
    const mark = logs.length;
    process.kill(victim, "SIGKILL");
    // A ping on a connection of the dead worker meets a closed socket; the others are answered.
    const answered = await Promise.all(kept.map((c) => within(c.ping().then(() => true, () => false), 5000, `a pong or a close for ${c.jid}`)));
    const alive = kept.filter((_, i) => answered[i]);
    assert.ok(alive.length >= 1 && alive.length < kept.length, `the killed worker's clients are cut off, the others' are not (${alive.length} left)`);
    // Restarted within the heartbeat expiry: the others learn of it from its new incarnation.
    await waitUntil(() => logged("switchboard started", mark).length === 1, 10_000, () => `the killed worker restarted; stderr:\n${hostLog.text}`, 20);
    assert.equal(childrenOf(host.pid!).filter((p) => p !== victim).length, 2, hostLog.text);
    const restarted = String(logged("worker died; restarting it", mark)[0]?.workerId);
    // The survivor re-binds its sessions owned by the new incarnation as it logs the change (docs/architecture.md, Cluster).
    await waitUntil(
      () => logged("cluster membership changed", mark).some((l) => String(l.joined).split(" ").includes(restarted)),
      5000,
      () => `the other worker to hear ${restarted} again; stderr:\n${hostLog.text}`,
      20,
    );
    const fresh = await Promise.all(["h0", "h1"].map(login));
    await reachable([...alive, ...fresh]);
    await ring([...alive, ...fresh]);
    for (const c of [...alive, ...fresh]) c.destroy();
  });

  test("a second host with other ring parameters (cluster.vnodes) is refused: it exits 78, loudly; the running host is undisturbed", { timeout: 40_000 }, async () => {
    const otherDir = mkdtempSync(join(tmpdir(), "switchboard-host-other-"));
    try {
      const cfg = join(otherDir, "config.json");
      writeFileSync(
        cfg,
        JSON.stringify({
          log: { level: "info", format: "json" },
          listeners: [{ protocol: "relay", transport: "tcp", host: "127.0.0.1", port: await freePort() }],
          storage: { type: "sqlite", path: "db.sqlite" },
          cluster: { bus: "nats", workers: 2, hostAddress: "other-host", vnodes: 128, nats: { servers: [nats.url], subject: "sbhost", heartbeatMs: 1000 } },
          admin: { enabled: false },
        }),
      );
      const mark = logs.length;
      const other = spawn(process.execPath, [CLI, "start", "--config", cfg], { stdio: ["ignore", "ignore", "pipe"] });
      let otherErr = "";
      other.stderr!.on("data", (b: Buffer) => (otherErr += b));
      const code = await within(new Promise<number | null>((resolve) => other.once("exit", (c) => resolve(c))), 30_000, () => `the other host to give up; its stderr:\n${otherErr}`);
      assert.equal(code, 78, otherErr);
      assert.match(otherErr, new RegExp(`refusing to join: worker 127_0_0_1-w\\d \\(host 127\\.0\\.0\\.1\\) uses ring parameters ${BUS_PROTOCOL}/murmur3/\\d+, this one ${BUS_PROTOCOL}/murmur3/128`));
      // The running host said so too, and never counted the other host's workers as members.
      await waitUntil(() => logged("cluster worker with other ring parameters not let in", mark).length > 0, 5000, () => `the running host to log it; stderr:\n${hostLog.text}`);
      assert.equal(logs.slice(mark).filter((l) => l.message === "cluster membership changed" && String(l.workers).includes("other-host")).length, 0, "not a member, ever");
      const clients = await Promise.all(["h0", "h1", "h2", "h3"].map(login));
      await reachable(clients);
      await ring(clients);
      for (const c of clients) c.destroy();
    } finally {
      rmSync(otherDir, { recursive: true, force: true });
    }
  });

  test("SIGTERM to the primary drains both workers' clients and stops the host within drainTimeoutMs", { timeout: 30_000 }, async () => {
    const workers = childrenOf(host.pid!);
    const clients = await Promise.all(["h0", "h1", "h2", "h3"].map(login));
    await reachable(clients);
    const last = clients.map((c) => {
      let h: Record<string, unknown> | null = null;
      c.on("frame", (header: Record<string, unknown>) => (h = header));
      return () => h;
    });
    const closed = clients.map((c) => new Promise<void>((r) => (c.isClosed ? r() : c.once("close", () => r()))));
    const exited = new Promise<number | null>((resolve) => host.once("exit", (code) => resolve(code)));
    host.kill("SIGTERM");
    assert.equal(await within(exited, 3000 + 3000, () => `the host to exit; stderr:\n${hostLog.text}`), 0, hostLog.text);
    for (const p of workers) assert.throws(() => process.kill(p, 0), "worker still running");
    await within(Promise.all(closed), 1000, "every client closed");
    for (const [i, c] of clients.entries()) assert.deepEqual(last[i](), { t: "err", code: "unavailable", text: "server shutdown" }, `${c.jid}'s last frame`);
  });
});
