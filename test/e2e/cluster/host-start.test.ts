import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { RelayClient, RelayError, type IncomingRequest } from "../../../src/relay/client.js";
import { waitUntil, within } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { hostDir, readyz, startHost, type Host } from "./host-proc.js";

// Start-up safety of `switchboard start` hosts of two workers (docs/operations.md, "Refused starts"
// and "NATS at start"): real CLI processes, a real nats-server, real relay clients.

const hostConfig = (o: { port: number; nats: string; admin?: number; subject: string; connectTimeoutMs?: number }) => ({
  log: { level: "info", format: "json" },
  listeners: [{ protocol: "relay", transport: "tcp", host: "127.0.0.1", port: o.port }],
  storage: { type: "sqlite", path: "db.sqlite" },
  cluster: { bus: "nats", workers: 2, nats: { servers: [o.nats], subject: o.subject, heartbeatMs: 500, connectTimeoutMs: o.connectTimeoutMs ?? 60_000 } },
  admin: { port: o.admin ?? 0 },
  drainTimeoutMs: 2000,
});

const login = async (port: number, user: string): Promise<RelayClient> => {
  const c = await RelayClient.connect({ port });
  await c.login({ user, password: "pw", resource: "r" });
  c.on("request", (r: IncomingRequest) => r.respond());
  return c;
};
const bare = (c: RelayClient) => c.jid.slice(0, c.jid.indexOf("/"));
/** Each client's bare address answers a request (its binding reached its owner, on either worker). */
const reachable = async (clients: RelayClient[], what: () => string): Promise<void> => {
  for (const c of clients) {
    const answered = () => clients[0].request(bare(c), "", 1000).then(() => true, (e: RelayError) => (e.code === "unavailable" ? false : Promise.reject(e)));
    await waitUntil(answered, 5000, what, 20);
  }
};
/** Counts the messages each client receives. */
const counting = (clients: RelayClient[]): { got: number } => {
  const n = { got: 0 };
  for (const c of clients) c.on("message", () => n.got++);
  return n;
};

describe("starting a host: refused duplicates, NATS out of reach", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  const hosts: Host[] = [];
  const dirs: { remove(): void }[] = [];
  let nats: NatsServer;
  const start = (cfg: string): Host => {
    const h = startHost(cfg);
    hosts.push(h);
    return h;
  };

  before(async () => {
    nats = await startNats();
  }, { timeout: 15_000 });
  after(async () => {
    for (const h of hosts) h.kill();
    for (const d of dirs) d.remove();
    await nats.stop();
  }, { timeout: 15_000 });

  test("the same configuration started twice: the second exits 78 before it serves; the first keeps every message and its membership", { timeout: 60_000 }, async () => {
    const port = await freePort();
    const d = hostDir(hostConfig({ port, nats: nats.url, subject: "sbdup" }), 4);
    dirs.push(d);
    const first = start(d.cfg);
    await waitUntil(() => first.log.logged("all workers started").length === 1, 20_000, () => `the first host to start; stderr:\n${first.log.text}`, 20);
    const clients = await Promise.all(["h0", "h1", "h2", "h3"].map((u) => login(port, u)));
    await reachable(clients, () => `every client reachable; stderr:\n${first.log.text}`);
    const n = counting(clients);
    const mark = first.log.lines.length;

    // Messages flow all the while the duplicate tries to start.
    let sent = 0;
    const flow = setInterval(() => {
      for (let i = 0; i < clients.length; i++) clients[i].message(bare(clients[(i + 1) % clients.length]), `m${sent++}`);
    }, 20);
    const second = start(d.cfg);
    let code: number | null;
    try {
      code = await second.exit(30_000);
    } finally {
      clearInterval(flow);
    }
    assert.equal(code, 78, second.log.text);
    assert.match(second.log.text, /refusing to join: another process \(host 127\.0\.0\.1\) already runs worker 127_0_0_1-w\d: the same configuration started twice\?/);
    assert.equal(second.log.logged("listening").length, 0, "the duplicate never listened");

    await waitUntil(() => n.got === sent, 5000, () => `all ${sent} messages delivered (got ${n.got}); stderr:\n${first.log.text}`, 20);
    assert.ok(sent >= 40, `messages flowed meanwhile (${sent})`);
    assert.ok(first.log.logged("a second process with this worker id tried to join; it is refused", mark).length >= 1, first.log.text);
    assert.deepEqual(first.log.logged("cluster membership changed", mark), [], "the running host's membership never changed");
    assert.equal(first.child.exitCode, null, "the first host still runs");
    for (const c of clients) c.destroy();
  });

  test("NATS down at start: the host retries with backoff and says so, /readyz is 503; once NATS is up it becomes ready and serves", { timeout: 60_000 }, async () => {
    const natsPort = await freePort();
    const [port, admin] = [await freePort(), await freePort()];
    const d = hostDir(hostConfig({ port, admin, nats: `nats://127.0.0.1:${natsPort}`, subject: "sbretry" }), 2);
    dirs.push(d);
    const host = start(d.cfg);
    await waitUntil(() => host.log.logged("cannot reach NATS: retrying").some((l) => Number(l.attempt) >= 2), 15_000, () => `two failed attempts; stderr:\n${host.log.text}`, 20);
    const retry = host.log.logged("cannot reach NATS: retrying")[0];
    assert.equal(typeof retry.nextDelayMs, "number", JSON.stringify(retry));
    const r = await readyz(admin);
    assert.equal(r.status, 503, r.body);
    assert.match(r.body, /not ready: .*starting/);

    const late = await startNats(natsPort);
    try {
      await waitUntil(() => host.log.logged("all workers started").length === 1, 20_000, () => `the host to start once NATS is up; stderr:\n${host.log.text}`, 20);
      await waitUntil(async () => (await readyz(admin)).status === 200, 5000, "/readyz 200", 50);
      const clients = await Promise.all(["h0", "h1"].map((u) => login(port, u)));
      await reachable(clients, () => `both clients reachable; stderr:\n${host.log.text}`);
      const got = new Promise((resolve) => clients[1].once("message", (m: { body: Buffer }) => resolve(String(m.body))));
      clients[0].message(bare(clients[1]), "after the wait");
      assert.equal(await within(got, 3000, "the message"), "after the wait");
      for (const c of clients) c.destroy();
      host.child.kill("SIGTERM");
      assert.equal(await host.exit(10_000), 0, "a host that ran stops cleanly");
    } finally {
      await late.stop();
    }
  });

  test("NATS out of reach for cluster.nats.connectTimeoutMs: the host gives up and exits non-zero", { timeout: 30_000 }, async () => {
    const d = hostDir(hostConfig({ port: await freePort(), nats: `nats://127.0.0.1:${await freePort()}`, subject: "sbgiveup", connectTimeoutMs: 1500 }));
    dirs.push(d);
    const host = start(d.cfg);
    const code = await host.exit(20_000);
    assert.notEqual(code, 0, host.log.text);
    assert.notEqual(code, null, host.log.text);
    assert.ok(host.log.logged("cannot reach NATS: giving up").length >= 1, host.log.text);
    assert.ok(host.log.logged("a worker could not start or was refused; stopping the host").length >= 1, host.log.text);
  });

  test("SIGTERM while the host is still trying NATS: it stops, and not with 0 as if it had run", { timeout: 30_000 }, async () => {
    const d = hostDir(hostConfig({ port: await freePort(), nats: `nats://127.0.0.1:${await freePort()}`, subject: "sbterm" }));
    dirs.push(d);
    const host = start(d.cfg);
    await waitUntil(() => host.log.logged("cannot reach NATS: retrying").length >= 1, 15_000, () => `a failed attempt; stderr:\n${host.log.text}`, 20);
    host.child.kill("SIGTERM");
    const code = await host.exit(10_000);
    assert.notEqual(code, 0, host.log.text);
    assert.notEqual(code, null, host.log.text);
  });
});
