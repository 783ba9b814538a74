import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { RelayClient, RelayError, type IncomingRequest } from "../../../src/relay/client.js";
import { Router } from "../../../src/router/router.js";
import { workerIdOf } from "../../../src/cluster/nats-bus.js";
import { waitUntil, within } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { hostDir, startHost, type Host } from "./host-proc.js";
import { workersOf } from "./host-log.js";

// A request whose recipient lives on a surviving worker, but whose way there ran through the
// recipient's owner when that owner died, fails with `unavailable` once the others see the death,
// instead of waiting for its timeout (issue 14: "IQs whose recipient's worker died fail at once").
// A real `switchboard start` host of three worker processes on a real nats-server.

const HB = 300;
const USERS = 24;

describe("a request through an owner that dies", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)", timeout: 60_000 }, () => {
  let nats: NatsServer;
  let host: Host;
  let dirs: ReturnType<typeof hostDir>;
  let port: number;
  const ids = [0, 1, 2].map((i) => workerIdOf("127.0.0.1", i));
  const router = new Router({ hosts: { "127.0.0.1": ids }, vnodes: 2048 });

  before(async () => {
    nats = await startNats();
    port = await freePort();
    dirs = hostDir(
      {
        log: { level: "info", format: "json" },
        listeners: [{ protocol: "relay", transport: "tcp", host: "127.0.0.1", port }],
        storage: { type: "sqlite", path: "db.sqlite" },
        cluster: { bus: "nats", workers: 3, nats: { servers: [nats.url], subject: "sbownerdeath", heartbeatMs: HB } },
        drainTimeoutMs: 2000,
      },
      USERS,
    );
    host = startHost(dirs.cfg);
    await waitUntil(() => host.log.logged("switchboard started").length === 3, 30_000, () => `three workers started; stderr:\n${host.log.text}`, 20);
  }, { timeout: 40_000 });

  after(async () => {
    host?.kill();
    await nats?.stop();
    dirs?.remove();
  });

  test("fails with unavailable within a few heartbeats, not at its 30 s timeout", { timeout: 40_000 }, async () => {
    // The asker on w0, the recipient on w1, and the recipient's owner w2: the one that dies. Where a connection
    // lands is the workers' accept race (each within its ceiling): up to three tries for that placement.
    const bare = (c: RelayClient) => c.jid.slice(0, c.jid.indexOf("/"));
    let clients: RelayClient[] = [];
    let since = 0;
    const workerOf = (c: RelayClient) => String(host.log.logged("session started", since).filter((l) => l.address === c.jid).pop()?.worker);
    let target: RelayClient | undefined;
    let asker: RelayClient | undefined;
    for (let attempt = 0; attempt < 3 && (target === undefined || asker === undefined); attempt++) {
      for (const c of clients) c.destroy();
      since = host.log.lines.length;
      clients = await Promise.all(
        Array.from({ length: USERS }, async (_, i) => {
          const c = await RelayClient.connect({ port });
          await c.login({ user: `h${i}`, password: "pw", resource: "r" });
          return c;
        }),
      );
      await waitUntil(() => clients.every((c) => workerOf(c) !== "undefined"), 5000, "session lines");
      target = clients.find((c) => workerOf(c) === ids[1] && router.ownerOf(bare(c)) === ids[2]);
      asker = clients.find((c) => workerOf(c) === ids[0]);
    }
    assert.ok(target !== undefined && asker !== undefined, `placement: ${clients.map((c) => `${c.jid}@${workerOf(c)}`).join(" ")}`);
    let seen = 0;
    target.on("request", (r: IncomingRequest) => {
      seen++;
      r.respond();
    });
    // Routed before as a control: it is answered.
    await asker.request(target.jid, "before", 5000);
    // Stopped first, so that the request surely dies unread with the owner, then killed.
    const victim = workersOf(host.child.pid!).get(2)!;
    process.kill(victim, "SIGSTOP");
    const answer = asker.request(target.jid, "q", 30_000).then(
      () => "answered",
      (e: RelayError) => e.code,
    );
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 50));
    process.kill(victim, "SIGKILL");
    assert.equal(await within(answer, 20_000, "the request to end"), "unavailable");
    const ms = performance.now() - t0;
    // Expiry takes three heartbeats, or the primary's restart of the worker announces it sooner.
    assert.ok(ms < 10 * HB + 1000, `failed after ${ms.toFixed(0)} ms`);
    assert.equal(seen, 1, "the recipient saw only the control request");
    for (const c of clients) c.destroy();
  });
});
