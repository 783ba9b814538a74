import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { CA, TLS_FILES, waitUntil, within } from "../../helpers.js";
import { RelayClient } from "../../../src/relay/client.js";
import { freePort } from "../../../bench/lib/proc.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { childrenOf, hostDir, startHost, type Host } from "./host-proc.js";

// A joining worker takes its share of new connections (src/host/balancer.ts): the primary hands each
// one to the worker with the fewest. Where they land is read from the host's own /metrics.

/** switchboard_connections per worker, from the primary's /metrics. */
async function perWorker(admin: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("switchboard_connections{")) continue;
    const w = /worker="([^"]+)"/.exec(line)?.[1];
    if (w !== undefined) out.set(w, (out.get(w) ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1)));
  }
  return out;
}
const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

describe("a host of two workers hands new connections to the one with the fewest", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  let host: Host;
  let remove: () => void;
  let port: number;
  let admin: number;
  let tlsPort: number;
  let wsPort: number;
  const sockets: Socket[] = [];
  /** Opens `n` raw connections (a connection counts from its accept, before any login). */
  const open = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const s = connect(port, "127.0.0.1");
      s.on("error", () => {});
      sockets.push(s);
      await new Promise((resolve) => s.once("connect", resolve));
    }
  };

  before(async () => {
    nats = await startNats();
    [port, admin, tlsPort, wsPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const d = hostDir({
      log: { level: "info", format: "json" },
      listeners: [
        { protocol: "relay", transport: "tcp", host: "127.0.0.1", port },
        { protocol: "relay", transport: "tls", host: "127.0.0.1", port: tlsPort, tls: TLS_FILES },
        { protocol: "relay", transport: "websocket", host: "127.0.0.1", port: wsPort, path: "/relay" },
      ],
      storage: { type: "sqlite", path: "db.sqlite" },
      cluster: { bus: "nats", workers: 2, nats: { servers: [nats.url], subject: "sbbalance", heartbeatMs: 500 } },
      admin: { port: admin },
      limits: { authTimeoutMs: 120_000 },
    }, 2);
    remove = d.remove;
    host = startHost(d.cfg);
    await waitUntil(() => host.log.logged("all workers started").length === 1, 20_000, () => `the host to start; stderr:\n${host.log.text}`, 20);
  }, { timeout: 30_000 });
  after(async () => {
    for (const s of sockets) s.destroy();
    host.kill();
    remove();
    await nats.stop();
  }, { timeout: 15_000 });

  test("after a worker is killed and restarted, the connections made once it is back go to it until both hold the same", { timeout: 60_000 }, async () => {
    await open(4);
    await waitUntil(async () => sum(await perWorker(admin)) === 4, 5000, "4 connections counted", 50);
    const spread = await perWorker(admin);
    assert.deepEqual([...spread.values()], [2, 2], `spread evenly at first: ${JSON.stringify([...spread])}`);

    const mark = host.log.lines.length;
    process.kill(childrenOf(host.child.pid!)[0], "SIGKILL");
    // While it restarts (≥ 0.5 s): these all land on the survivor.
    await open(10);
    await waitUntil(() => host.log.logged("worker died; restarting it", mark).length === 1, 5000, () => `the restart; stderr:\n${host.log.text}`, 20);
    const restarted = String(host.log.logged("worker died; restarting it", mark)[0].workerId);
    await waitUntil(async () => (await perWorker(admin)).has(restarted), 15_000, () => `${restarted} back and answering; stderr:\n${host.log.text}`, 50);
    const back = await perWorker(admin);
    const survivor = [...back.keys()].find((w) => w !== restarted)!;
    assert.equal(back.get(survivor), 12, `the survivor's 2 and the 10 made meanwhile: ${JSON.stringify([...back])}`);

    // Once it is back: node:cluster's round-robin would split these 7/7 and leave the survivor 19 against 7.
    await open(14);
    await waitUntil(async () => sum(await perWorker(admin)) === 12 + 14, 5000, "all 26 counted", 50);
    const after = await perWorker(admin);
    const gained = after.get(restarted)! - (back.get(restarted) ?? 0);
    assert.ok(gained >= 12, `the restarted worker took its share of the 14 new connections: ${gained} (${JSON.stringify([...after])})`);
    assert.ok(Math.abs(after.get(restarted)! - after.get(survivor)!) <= 2, `even again: ${JSON.stringify([...after])}`);
  });

  test("TLS and WebSocket connections handed over by the primary work as accepted by the worker itself", { timeout: 20_000 }, async () => {
    const a = await RelayClient.connect({ port: tlsPort, tls: { ca: CA, servername: "localhost" } });
    const b = await RelayClient.connect({ url: `ws://127.0.0.1:${wsPort}/relay` });
    try {
      await a.login({ user: "h0", password: "pw", resource: "r" });
      await b.login({ user: "h1", password: "pw", resource: "r" });
      const got = new Promise((resolve) => b.on("message", (m: { body: Buffer }) => resolve(String(m.body))));
      // The first message may meet the binding still on its way to the owner: send until one arrives.
      let n = 0;
      const again = setInterval(() => a.message(b.jid, `over tls ${n++}`), 200);
      a.message(b.jid, `over tls ${n++}`);
      try {
        assert.match(String(await within(got, 5000, () => `a message from TLS to WebSocket; stderr:\n${host.log.text}`)), /^over tls \d+$/);
      } finally {
        clearInterval(again);
      }
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  test("a worker stopped (SIGSTOP) gets no new connections: every client that comes meanwhile is served by the other", { timeout: 30_000 }, async () => {
    const victim = childrenOf(host.child.pid!)[0];
    process.kill(victim, "SIGSTOP");
    const clients: RelayClient[] = [];
    try {
      // The primary hears from each worker at least twice a second; one silent for a second gets nothing new.
      await new Promise((r) => setTimeout(r, 1500));
      const logins = Array.from({ length: 6 }, async () => {
        const c = await RelayClient.connect({ port });
        clients.push(c);
        await c.login({ user: "h0", password: "pw", resource: `s${clients.length}` });
      });
      await within(Promise.all(logins), 10_000, () => `6 logins while a worker is stopped; stderr:\n${host.log.text.slice(-3000)}`);
    } finally {
      process.kill(victim, "SIGCONT");
      for (const c of clients) c.destroy();
    }
  });
});
