import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { RelayClient } from "../../../src/relay/client.js";
import { sleep } from "../../helpers.js";
import { freePort, waitPort } from "../../../bench/lib/proc.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";

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
  let stderr = "";

  const login = async (user: string): Promise<RelayClient> => {
    const c = await RelayClient.connect({ port });
    await c.login({ user, password: "pw", resource: "r" });
    return c;
  };
  /** Each client messages the next one's bare address; true when all arrive. */
  const ring = async (clients: RelayClient[]): Promise<void> => {
    for (let i = 0; i < clients.length; i++) {
      const to = clients[(i + 1) % clients.length];
      const got = new Promise<string>((resolve) => to.once("message", (m: { from: string; body: Buffer }) => resolve(`${m.from} ${m.body}`)));
      clients[i].message(to.jid.slice(0, to.jid.indexOf("/")), `n${i}`);
      assert.equal(await Promise.race([got, sleep(3000).then(() => "lost")]), `${clients[i].jid} n${i}`, stderr);
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
        log: { level: "warn" },
        listeners: [{ protocol: "relay", transport: "tcp", host: "127.0.0.1", port }],
        storage: { type: "sqlite", path: "db.sqlite" },
        cluster: { bus: "nats", workers: 2, nats: { servers: [nats.url], subject: "sbhost", heartbeatMs: 1000 } },
      }),
    );
    writeFileSync(join(dir, "users.csv"), Array.from({ length: 8 }, (_, i) => `h${i},pw`).join("\n"));
    const imp = spawnSync(process.execPath, [CLI, "users", "import", join(dir, "users.csv"), "--config", cfg], { encoding: "utf8" });
    assert.equal(imp.status, 0, imp.stderr);
    host = spawn(process.execPath, [CLI, "start", "--config", cfg], { stdio: ["ignore", "ignore", "pipe"] });
    host.stderr!.on("data", (b: Buffer) => (stderr += b));
    await waitPort(port);
    await sleep(300); // both workers listening: the primary hands connections out only to those that are
  });
  after(async () => {
    if (host.exitCode === null) host.kill("SIGKILL");
    for (const p of childrenOf(host.pid!)) process.kill(p, "SIGKILL");
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("connections are spread over both workers, and messages cross between them", async () => {
    assert.equal(childrenOf(host.pid!).length, 2);
    const clients = await Promise.all(["h0", "h1", "h2", "h3"].map(login));
    await ring(clients);
    for (const c of clients) c.destroy();
  });

  test("a worker killed with SIGKILL is restarted; the other worker's sessions keep working with the new one's", async () => {
    const kept = await Promise.all(["h4", "h5", "h6", "h7"].map(login));
    const [victim] = childrenOf(host.pid!);
    process.kill(victim, "SIGKILL");
    await sleep(300);
    const alive = kept.filter((c) => !c.isClosed);
    assert.ok(alive.length >= 1 && alive.length < kept.length, `the killed worker's clients are cut off, the others' are not (${alive.length} left)`);
    // Restarted within the heartbeat expiry: the others learn of it from its new incarnation.
    const until = Date.now() + 5000;
    while (childrenOf(host.pid!).filter((p) => p !== victim).length < 2 && Date.now() < until) await sleep(100);
    assert.equal(childrenOf(host.pid!).filter((p) => p !== victim).length, 2, stderr);
    await sleep(500);
    const fresh = await Promise.all(["h0", "h1"].map(login));
    await ring([...alive, ...fresh]);
    for (const c of [...alive, ...fresh]) c.destroy();
  });

  test("SIGTERM to the primary stops the workers and the host", async () => {
    const workers = childrenOf(host.pid!);
    const exited = new Promise<number | null>((resolve) => host.once("exit", (code) => resolve(code)));
    host.kill("SIGTERM");
    assert.equal(await exited, 0, stderr);
    for (const p of workers) assert.throws(() => process.kill(p, 0), "worker still running");
  });
});
