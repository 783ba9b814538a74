import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { waitUntil, within } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { HostLog } from "./host-log.js";
import { rawLogin, rawResumable, type Raw } from "../xmpp/util.js";
import type { SessionsReport, StatusReport } from "../../../src/cli/cluster.js";

const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "src", "cli", "main.js");

/** The real CLI against the live cluster: its exit code and output. */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = execFile(process.execPath, [CLI, ...args], { timeout: 20_000 }, (_e, stdout, stderr) => resolve({ code: c.exitCode, stdout, stderr }));
  });
}

/**
 * `switchboard cluster status` and `switchboard sessions` against a real
 * `switchboard start` host of two worker processes and a real nats-server,
 * with real XMPP clients logged in; and the cluster metrics on its admin
 * listener. What the host's own log says (each session's "session started"
 * line names its worker) is the truth the commands are checked against.
 */
describe("cluster status, sessions and cluster metrics of a live host", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  let dir: string;
  let cfg: string;
  let port: number;
  let adminPort: number;
  let host: ChildProcess;
  const hostLog = new HostLog();
  const clients: Raw[] = [];
  const started = Date.now();

  const status = async (...extra: string[]): Promise<{ code: number | null; r: StatusReport; stderr: string }> => {
    const out = await cli(["cluster", "status", "--json", "--config", cfg, ...extra]);
    assert.ok(out.stdout.length > 0, `cluster status printed nothing: ${out.stderr}`);
    return { code: out.code, r: JSON.parse(out.stdout) as StatusReport, stderr: out.stderr };
  };
  /** The worker each full address's latest session started on, from the host's log. */
  const workerByLog = (): Map<string, string> => new Map(hostLog.logged("session started").map((l) => [String(l.address), String(l.worker)]));

  before(async () => {
    nats = await startNats();
    dir = mkdtempSync(join(tmpdir(), "switchboard-ops-"));
    port = await freePort();
    adminPort = await freePort();
    cfg = join(dir, "config.json");
    writeFileSync(
      cfg,
      JSON.stringify({
        log: { level: "info", format: "json" },
        listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port }],
        xmpp: { allowPlainWithoutTls: true, sm: { resumeTimeoutMs: 60_000 } },
        storage: { type: "sqlite", path: "db.sqlite" },
        cluster: { bus: "nats", workers: 2, nats: { servers: [nats.url], subject: "sbops", heartbeatMs: 2000 } },
        admin: { host: "127.0.0.1", port: adminPort },
        drainTimeoutMs: 2000,
      }),
    );
    writeFileSync(join(dir, "users.csv"), Array.from({ length: 8 }, (_, i) => `u${i},pw`).join("\n"));
    const imp = spawnSync(process.execPath, [CLI, "users", "import", join(dir, "users.csv"), "--config", cfg], { encoding: "utf8" });
    assert.equal(imp.status, 0, imp.stderr);
    host = spawn(process.execPath, [CLI, "start", "--config", cfg], { stdio: ["ignore", "ignore", "pipe"] });
    host.stderr!.on("data", hostLog.onData);
    await waitUntil(() => hostLog.logged("switchboard started").length === 2, 20_000, () => `both workers started; stderr:\n${hostLog.text}`, 20);
    // Six plain sessions, one resumable, one resumable whose connection then drops (detached, XEP-0198).
    for (let i = 0; i < 6; i++) clients.push(await rawLogin(port, `u${i}`, "pw", `r${i}`));
    clients.push((await rawResumable(port, "u6", "pw", "phone")).r);
    const gone = await rawResumable(port, "u7", "pw", "laptop");
    await waitUntil(() => workerByLog().size === 8, 5000, () => `eight sessions started; stderr:\n${hostLog.text}`, 20);
    gone.r.destroy();
  }, { timeout: 40_000 });

  after(async () => {
    for (const c of clients) c.destroy();
    if (host.exitCode === null) {
      const exited = new Promise((r) => host.once("exit", r));
      host.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 8000))]);
      if (host.exitCode === null) host.kill("SIGKILL");
    }
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("cluster status --json: one host, both workers, shares summing to 1, each worker's session count, a detached session", { timeout: 30_000 }, async () => {
    const truth = workerByLog();
    const perWorker = new Map<string, number>();
    for (const w of truth.values()) perWorker.set(w, (perWorker.get(w) ?? 0) + 1);
    assert.equal(perWorker.size, 2, `the primary spread the clients over both workers: ${[...perWorker]}`);
    // The dropped connection suspends its session: polled until the worker reports it detached.
    let r!: StatusReport;
    await waitUntil(
      async () => {
        const s = await status();
        r = s.r;
        return s.code === 0 && r.hosts.flatMap((h) => h.workers).reduce((n, w) => n + (w.detached ?? 0), 0) === 1;
      },
      10_000,
      () => `a complete status with one detached session: ${JSON.stringify(r)}`,
      100,
    );
    assert.equal(r.complete, true);
    assert.deepEqual(r.missing, []);
    assert.equal(r.vnodes, 2048);
    assert.equal(r.hosts.length, 1);
    const [h] = r.hosts;
    assert.equal(h.host, "127.0.0.1");
    assert.equal(h.share, 1);
    assert.deepEqual(h.workers.map((w) => w.worker), ["127_0_0_1-w0", "127_0_0_1-w1"]);
    const shareSum = h.workers.reduce((n, w) => n + w.share, 0);
    assert.ok(Math.abs(shareSum - 1) < 1e-9, `worker shares sum to 1: ${shareSum}`);
    for (const w of h.workers) {
      assert.ok(w.share > 0.4 && w.share < 0.6, `${w.worker}'s share near 1/2 with 2048 vnodes: ${w.share}`);
      assert.equal(w.overall, w.share);
      assert.equal(w.answered, true);
      assert.equal(w.sessions, perWorker.get(w.worker), `${w.worker}'s sessions`);
      assert.ok(typeof w.serverRttMs === "number" && w.serverRttMs >= 0 && w.serverRttMs < 1000, `server round trip ${w.serverRttMs}`);
      const peer = h.workers.find((x) => x.worker !== w.worker)!.worker;
      assert.deepEqual(Object.keys(w.peersRttMs), [peer]);
      assert.ok(typeof w.peersRttMs[peer] === "number", `${w.worker} reached ${peer} over NATS`);
    }
    assert.equal(r.sessions, 8);
    const detachedOn = h.workers.find((w) => w.detached === 1)!.worker;
    assert.equal(detachedOn, truth.get("u7@localhost/laptop"));

    const table = await cli(["cluster", "status", "--config", cfg]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /1 host, 2 workers, 8 sessions/);
    for (const w of h.workers) assert.match(table.stdout, new RegExp(`127\\.0\\.0\\.1\\s+100\\.0%\\s+${w.worker}\\s+${(100 * w.share).toFixed(1)}%`));
  });

  test("sessions --json: every connected full JID on the worker it is on, resumable and detached as they are; one JID alone", { timeout: 30_000 }, async () => {
    const truth = workerByLog();
    const out = await cli(["sessions", "--json", "--config", cfg]);
    assert.equal(out.code, 0, out.stderr);
    const r = JSON.parse(out.stdout) as SessionsReport;
    assert.equal(r.complete, true);
    assert.deepEqual(
      r.sessions.map((s) => [s.jid, s.worker]),
      [...truth].sort(([a], [b]) => (a < b ? -1 : 1)),
    );
    for (const s of r.sessions) {
      assert.equal(s.host, "127.0.0.1");
      assert.equal(s.protocol, "xmpp");
      const since = Date.parse(s.since);
      assert.ok(since >= started - 1000 && since <= Date.now(), `${s.jid} since ${s.since}`);
      assert.equal(s.resumable, s.jid === "u6@localhost/phone" || s.jid === "u7@localhost/laptop", `${s.jid} resumable`);
      assert.equal(s.detached, s.jid === "u7@localhost/laptop", `${s.jid} detached`);
    }
    const one = await cli(["sessions", "u3@localhost", "--json", "--config", cfg]);
    assert.equal(one.code, 0, one.stderr);
    assert.deepEqual(
      (JSON.parse(one.stdout) as SessionsReport).sessions.map((s) => [s.jid, s.worker]),
      [["u3@localhost/r3", truth.get("u3@localhost/r3")]],
    );
    const table = await cli(["sessions", "--config", cfg]);
    assert.match(table.stdout, /u7@localhost\/laptop\s+127_0_0_1-w\d\s+127\.0\.0\.1\s+xmpp\s+\S+\s+detached, resumable/);
    assert.match(table.stdout, /^8 sessions$/m);
  });

  test("the admin listener shows the cluster metrics of both workers", { timeout: 30_000 }, async () => {
    const scrape = async () => (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    const series = (text: string, name: string) => [...text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, "gm"))].map((m) => ({ labels: m[1], value: Number(m[2]) }));
    const text = await scrape();
    for (const name of ["switchboard_cluster_membership_changes_total", "switchboard_cluster_hosts", "switchboard_cluster_workers", "switchboard_cluster_bus_rtt_seconds", "switchboard_cluster_messages_rerouted_total", "switchboard_cluster_messages_held", "switchboard_cluster_duplicates_suppressed_total"]) {
      assert.deepEqual(series(text, name).map((s) => s.labels.match(/worker="([^"]+)"/)![1]).sort(), ["127_0_0_1-w0", "127_0_0_1-w1"], `${name} per worker:\n${text}`);
    }
    for (const s of series(text, "switchboard_cluster_membership_changes_total")) assert.ok(s.value >= 1, `a worker saw at least its peer join: ${s.value}`);
    for (const s of series(text, "switchboard_cluster_hosts")) assert.equal(s.value, 1);
    for (const s of series(text, "switchboard_cluster_workers")) assert.equal(s.value, 2);
    for (const s of series(text, "switchboard_cluster_bus_rtt_seconds")) assert.ok(s.value >= 0 && s.value < 1, `bus round trip ${s.value}`);
    // Binds and presence for users owned by the other worker crossed the bus; once nothing is in flight, sent = received.
    const busSum = (t: string, dir: string) => series(t, "switchboard_cluster_bus_messages_total").filter((s) => s.labels.includes(`direction="${dir}"`)).reduce((n, s) => n + s.value, 0);
    let last = "";
    await waitUntil(
      async () => {
        last = await scrape();
        return busSum(last, "sent") > 0 && busSum(last, "sent") === busSum(last, "received");
      },
      5000,
      () => `bus messages sent = received > 0:\n${last}`,
      100,
    );
  });

  test("a stalled worker: cluster status waits out its timeout, names it as not answering and exits 1", { timeout: 30_000 }, async () => {
    const { r } = await status();
    const victim = r.hosts[0].workers[0];
    process.kill(victim.pid!, "SIGSTOP");
    try {
      const s = await status("--timeout", "1000");
      assert.equal(s.code, 1, s.stderr);
      assert.equal(s.r.complete, false);
      assert.deepEqual(s.r.missing, [victim.worker]);
      const w = s.r.hosts[0].workers.find((x) => x.worker === victim.worker)!;
      assert.equal(w.answered, false);
      assert.equal(w.sessions, null);
      const other = s.r.hosts[0].workers.find((x) => x.worker !== victim.worker)!;
      assert.equal(other.peersRttMs[victim.worker], null, "the other worker's ping of the stalled one got no answer");
    } finally {
      process.kill(victim.pid!, "SIGCONT");
    }
    await waitUntil(async () => (await status()).code === 0, 10_000, "the resumed worker answers again", 100);
  });

  // Last: a duplicate disturbs the cluster (ids shared on the bus) until it is refused at start, which is not built yet.
  test("the same worker id started a second time: refused before it joins; cluster status sees one process per worker", { timeout: 40_000 }, async () => {
    const dupCfg = join(dir, "dup.json");
    const base = JSON.parse(readFileSync(cfg, "utf8")) as Record<string, any>;
    writeFileSync(dupCfg, JSON.stringify({ ...base, listeners: [{ ...base.listeners[0], port: await freePort() }], storage: { type: "sqlite", path: "dup.sqlite" }, admin: { enabled: false }, cluster: { ...base.cluster, workers: 1 } }));
    const dupLog = new HostLog();
    const dup = spawn(process.execPath, [CLI, "start", "--config", dupCfg], { stdio: ["ignore", "ignore", "pipe"] });
    dup.stderr!.on("data", dupLog.onData);
    const code = await within(new Promise<number | null>((r) => dup.once("exit", (c) => r(c))), 15_000, () => `the duplicate to exit; stderr:\n${dupLog.text}`);
    assert.equal(code, 78, dupLog.text);
    const s = await status();
    assert.equal(s.code, 0, JSON.stringify(s.r));
    assert.equal(s.r.duplicates.length, 0);
    assert.equal(s.r.hosts[0].workers.filter((w) => w.worker === "127_0_0_1-w0").length, 1);
  });
});
