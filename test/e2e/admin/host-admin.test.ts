import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { RelayClient } from "../../../src/relay/client.js";
import { freePort, processTree } from "../../../bench/lib/proc.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { http, scrape, until } from "./admin-helpers.js";

const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "src", "cli", "main.js");

/** `switchboard start` as an operator runs it, with the admin listener on a free port. */
class Host {
  stderr = "";
  readonly exited: Promise<number | null>;
  private constructor(
    readonly child: ChildProcess,
    readonly dir: string,
  ) {
    child.stderr!.on("data", (b: Buffer) => (this.stderr += b));
    this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  }

  static start(config: Record<string, unknown>, users: string[]): Host {
    const dir = mkdtempSync(join(tmpdir(), "switchboard-admin-"));
    const file = join(dir, "config.json");
    writeFileSync(file, JSON.stringify({ storage: { type: "sqlite", path: "db.sqlite" }, ...config }));
    writeFileSync(join(dir, "users.csv"), users.map((u) => `${u},pw`).join("\n"));
    const imp = spawnSync(process.execPath, [CLI, "users", "import", join(dir, "users.csv"), "--config", file], { encoding: "utf8" });
    assert.equal(imp.status, 0, imp.stderr);
    return new Host(spawn(process.execPath, [CLI, "start", "--config", file], { stdio: ["ignore", "ignore", "pipe"] }), dir);
  }

  /** Another `start` with the same config file. */
  again(): Host {
    return new Host(spawn(process.execPath, [CLI, "start", "--config", join(this.dir, "config.json")], { stdio: ["ignore", "ignore", "pipe"] }), this.dir);
  }

  workers(): number[] {
    return processTree(this.child.pid!).filter((p) => p !== this.child.pid);
  }

  async kill(): Promise<void> {
    for (const p of this.workers()) process.kill(p, "SIGKILL");
    if (this.child.exitCode === null) this.child.kill("SIGKILL");
    await this.exited;
  }
}

async function login(port: number, user: string): Promise<RelayClient> {
  const c = await RelayClient.connect({ port });
  await c.login({ user, password: "pw", resource: "r" });
  return c;
}

const ready = async (port: number) => (await http(port, "/readyz").catch(() => ({ status: 0 }))).status === 200;

test("a host of one worker: its admin port serves that worker; a second start on the same admin port fails at once", { timeout: 30_000 }, async () => {
  const [port, adminPort] = [await freePort(), await freePort()];
  const host = Host.start({ log: { level: "info" }, listeners: [{ protocol: "relay", transport: "tcp", host: "127.0.0.1", port }], admin: { port: adminPort } }, ["u0"]);
  try {
    await until("readyz 200", () => ready(adminPort), 15_000);
    const c = await login(port, "u0");
    const s = await scrape(adminPort);
    assert.equal(s.get("switchboard_sessions", { protocol: "relay", transport: "tcp", worker: "w0" }), 1);
    await until("the session's start line", () => /info session started \{"address":"u0@localhost\/r","remote":"127\.0\.0\.1","protocol":"relay","transport":"tcp"\}/.test(host.stderr));
    assert.doesNotMatch(host.stderr, /\[w0\] session/, "one worker: lines carry no worker tag");

    const second = host.again();
    assert.equal(await second.exited, 1, second.stderr);
    assert.match(second.stderr, /EADDRINUSE/);
    assert.ok(await ready(adminPort), "the first host is untouched");

    c.destroy();
    await until("the session's end line", () => /info session ended \{"address":"u0@localhost\/r",.*"reason":"peer closed"\}/.test(host.stderr)).catch(() => assert.fail(host.stderr));
    host.child.kill("SIGTERM");
    assert.equal(await host.exited, 0, host.stderr);
  } finally {
    await host.kill();
    rmSync(host.dir, { recursive: true, force: true });
  }
});

describe("a host of two workers: the primary's admin port", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  let host: Host;
  let port: number;
  let adminPort: number;
  const W0 = "127_0_0_1-w0";
  const W1 = "127_0_0_1-w1";

  before(async () => {
    nats = await startNats();
    [port, adminPort] = [await freePort(), await freePort()];
    host = Host.start(
      {
        log: { level: "info" },
        listeners: [{ protocol: "relay", transport: "tcp", host: "127.0.0.1", port }],
        cluster: { bus: "nats", workers: 2, nats: { servers: [nats.url], subject: `sbadmin${process.pid}`, heartbeatMs: 300 } },
        admin: { port: adminPort },
      },
      ["h0", "h1", "h2", "h3"],
    );
    await until("readyz 200 (both workers listening)", () => ready(adminPort), 20_000);
  }, { timeout: 40_000 });
  after(async () => {
    await host.kill();
    await nats.stop();
    rmSync(host.dir, { recursive: true, force: true });
  }, { timeout: 10_000 });

  test("one scrape has every worker's series side by side, and the primary's", { timeout: 30_000 }, async () => {
    const clients = await Promise.all(["h0", "h1", "h2", "h3"].map((u) => login(port, u)));
    await clients[0].request(clients[3].jid.slice(0, -2), "", 500).catch(() => {});
    const s = await scrape(adminPort);
    assert.equal(s.get("switchboard_worker_up", { worker: W0 }), 1);
    assert.equal(s.get("switchboard_worker_up", { worker: W1 }), 1);
    assert.equal(s.get("switchboard_sessions"), 4, "summed over the workers");
    for (const w of [W0, W1]) {
      assert.ok(s.get("switchboard_sessions", { worker: w }) >= 0);
      assert.equal(s.get("switchboard_cluster_workers", { worker: w }), 2);
      assert.equal(s.get("switchboard_cluster_bus_connected", { worker: w }), 1);
    }
    for (const w of ["primary", W0, W1]) assert.ok(s.get("process_cpu_seconds_total", { worker: w }) > 0, `${w}'s process metrics`);
    assert.equal(s.get("switchboard_requests_total"), 1);
    for (const c of clients) c.destroy();
    await until("the sessions to end", async () => (await scrape(adminPort)).get("switchboard_sessions") === 0);
  });

  test("every log line of the host names its worker", { timeout: 5000 }, () => {
    const lines = host.stderr.split("\n").filter((l) => l !== "");
    assert.ok(lines.length > 5);
    for (const l of lines) assert.match(l, /^\S+ \w+ \[(primary|127_0_0_1-w[01])\] /);
    assert.match(host.stderr, /\[primary\] admin listening/);
    assert.match(host.stderr, new RegExp(`\\[${W1}\\] session started`));
  });

  test("a worker killed: readyz 503 naming it until its restart is serving; the restart is counted", { timeout: 40_000 }, async () => {
    const [victim] = host.workers();
    process.kill(victim, "SIGKILL");
    let said = "";
    await until("readyz 503", async () => {
      const r = await http(adminPort, "/readyz");
      said = r.body;
      return r.status === 503;
    });
    assert.match(said, /^not ready: 127_0_0_1-w[01]: (not running|starting|no answer)\n$/);
    const s = await scrape(adminPort);
    assert.equal(s.get("switchboard_worker_up"), 1, `the scrape still answers, with one worker; readyz said ${said}; ${s.series.filter((x) => x.name === "switchboard_worker_up").map((x) => JSON.stringify(x)).join(" ")}`);
    await until("readyz 200 again", () => ready(adminPort), 30_000);
    const s2 = await scrape(adminPort);
    assert.equal(s2.get("switchboard_worker_restarts_total"), 1);
    assert.equal(s2.get("switchboard_worker_up"), 2);
  });
});
