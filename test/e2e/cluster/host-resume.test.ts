import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { client, xml } from "@xmpp/client";
import { waitUntil, within } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { online, type Online } from "../xmpp/util.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { HostLog, workersOf } from "./host-log.js";

const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "src", "cli", "main.js");

/**
 * A rolling restart of one worker of a real host (`switchboard start`, two
 * worker processes, a real nats-server): SIGTERM to the worker holding a
 * client with stream management. It drains, its stream ends with
 * <system-shutdown/>, its session moves to the other worker, and the client's
 * reconnection resumes it there while the primary restarts the stopped one.
 */
describe("a worker of a host restarted under a resumable client", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  let dir: string;
  let port: number;
  let host: ChildProcess;
  const hostLog = new HostLog();

  before(async () => {
    nats = await startNats();
    dir = mkdtempSync(join(tmpdir(), "switchboard-host-resume-"));
    port = await freePort();
    const cfg = join(dir, "config.json");
    writeFileSync(
      cfg,
      JSON.stringify({
        log: { level: "info", format: "json" },
        listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port }],
        xmpp: { allowPlainWithoutTls: true, sm: { resumeTimeoutMs: 20_000 } },
        storage: { type: "sqlite", path: "db.sqlite" },
        // Two sessions placed on different workers by the primary: the hand-off (cluster.handoff) would move both to their owner.
        cluster: { bus: "nats", workers: 2, handoff: false, nats: { servers: [nats.url], subject: "sbrestart", heartbeatMs: 500 } },
        admin: { enabled: false },
        drainTimeoutMs: 3000,
      }),
    );
    writeFileSync(join(dir, "users.csv"), "alice,a-pw\nbob,b-pw\n");
    const imp = spawnSync(process.execPath, [CLI, "users", "import", join(dir, "users.csv"), "--config", cfg], { encoding: "utf8" });
    assert.equal(imp.status, 0, imp.stderr);
    host = spawn(process.execPath, [CLI, "start", "--config", cfg], { stdio: ["ignore", "ignore", "pipe"] });
    host.stderr!.on("data", hostLog.onData);
    await waitUntil(() => hostLog.logged("switchboard started").length === 2, 20_000, () => `both workers started; stderr:\n${hostLog.text}`, 20);
  }, { timeout: 30_000 });
  after(async () => {
    if (host.exitCode === null) host.kill("SIGKILL");
    for (const p of workersOf(host.pid!).values()) process.kill(p, "SIGKILL");
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The worker (its log's `worker`) where `address`'s latest session started. */
  const workerOf = (address: string): string => String(hostLog.logged("session started").filter((l) => l.address === address).at(-1)?.worker);

  test("SIGTERM to the client's worker: the session moves to the other worker, the client resumes, every message once and in order", { timeout: 60_000 }, async () => {
    const c = client({ service: `xmpp://127.0.0.1:${port}`, domain: "localhost", username: "alice", password: "a-pw", resource: "phone" });
    c.on("error", () => {});
    c.reconnect.delay = 100;
    const got: string[] = [];
    c.on("stanza", (el: any) => {
      if (el.is("message") && el.getChildText("body") !== null) got.push(el.getChildText("body"));
    });
    let resumed = 0;
    c.streamManagement.on("resumed", () => resumed++);
    const statuses: string[] = [];
    c.on("status", (st: string) => statuses.push(st));
    c.on("error", (e: Error) => statuses.push(`error ${e.message}`));
    // The full JID the server bound (Bind2: the tag and the server's part); resumption keeps it.
    const alice = String(await c.start());
    await c.send(xml("presence"));
    await waitUntil(() => c.streamManagement.enabled === true && c.streamManagement.id !== "", 5000, "sm enabled with an id");
    await waitUntil(() => workerOf(alice) !== "undefined", 5000, "alice's start line");
    const aliceWorker = workerOf(alice);
    // bob on the other worker (connections go round-robin): he is not the one restarted.
    let bob: Online | null = null;
    const spare: Online[] = [];
    for (let i = 0; i < 4 && bob === null; i++) {
      const b = await online(port, "bob", "b-pw", { resource: `s${i}`, presence: false });
      await waitUntil(() => workerOf(b.jid) !== "undefined", 5000, "bob's start line");
      if (workerOf(b.jid) !== aliceWorker) bob = b;
      else spare.push(b);
    }
    for (const s of spare) await s.stop();
    assert.ok(bob !== null, "bob landed on the other worker");
    const index = Number(aliceWorker.slice(aliceWorker.lastIndexOf("w") + 1));
    const victim = workersOf(host.pid!).get(index);
    assert.ok(victim !== undefined, `the pid of ${aliceWorker}`);
    const N = 60;
    try {
      for (let i = 0; i < N; i++) {
        await bob.c.send(xml("message", { to: alice, type: "chat" }, xml("body", {}, String(i))));
        if (i === 20) process.kill(victim, "SIGTERM");
      }
      await within(waitUntil(() => got.length >= N, 30_000, () => `got ${got.length} of ${N}: ${got.join(",")}; client: ${statuses.join(" ")}; stderr:\n${hostLog.text.slice(-3000)}`), 35_000, "all messages");
      const seen = new Map<string, number>();
      for (const b of got) seen.set(b, (seen.get(b) ?? 0) + 1);
      assert.equal(Array.from({ length: N }, (_, i) => String(i)).filter((b) => !seen.has(b)).length, 0, "lost");
      assert.equal([...seen.values()].filter((n) => n > 1).length, 0, `duplicated in ${got.join(",")}`);
      assert.deepEqual(got, Array.from({ length: N }, (_, i) => String(i)), "in order");
      assert.equal(resumed, 1, "resumed, not bound again");
      assert.notEqual(workerOf(alice), aliceWorker, "her session now runs on the other worker");
      // The primary restarts the stopped worker; the host goes on.
      await waitUntil(() => hostLog.logged("switchboard started").length === 3, 15_000, () => `the worker restarted; stderr:\n${hostLog.text.slice(-3000)}`, 20);
    } finally {
      c.reconnect.stop();
      await c.stop().catch(() => {});
      await bob.stop();
    }
  });
});
