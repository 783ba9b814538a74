import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { client, xml } from "@xmpp/client";
import { validate, type Config } from "../../../src/config/config.js";
import { Server } from "../../../src/server/server.js";
import { silentLogger } from "../../../src/log/logger.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { waitUntil, within } from "../../helpers.js";
import { online } from "../xmpp/util.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";

const WS_PATH = "/xmpp-websocket";

/**
 * XEP-0198 resumption on another worker of the host, with the bus between
 * processes' code paths (a real nats-server, the wire encoding): @xmpp/client
 * loses its connection to worker a mid-conversation and reconnects, as a load
 * balancer would send it, to worker b — over TCP, then over WebSocket. The
 * counts are the assertions: lost 0, duplicated 0, in order, resumed not re-bound.
 */
describe("resumption across workers over a NATS bus", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  let dir: string;
  let config: Config;
  const workers = new Map<string, Server>();
  const tcp = (w: string) => `xmpp://127.0.0.1:${workers.get(w)!.port("xmpp", "tcp")}`;
  const ws = (w: string) => `ws://127.0.0.1:${workers.get(w)!.port("xmpp", "websocket")}${WS_PATH}`;

  before(async () => {
    nats = await startNats();
    dir = mkdtempSync(join(tmpdir(), "switchboard-resume-"));
    config = validate({
      storage: { type: "sqlite", path: join(dir, "db.sqlite") },
      listeners: [
        { protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 },
        { protocol: "xmpp", transport: "websocket", host: "127.0.0.1", port: 0, path: WS_PATH },
      ],
      xmpp: { allowPlainWithoutTls: true, sm: { resumeTimeoutMs: 20_000 } },
      cluster: { bus: "nats", vnodes: 256, nats: { servers: [nats.url], subject: "sbresume", heartbeatMs: 200 } },
    });
    const start = async (id: string) => {
      const s = await Server.start(config, { log: silentLogger(), workerId: id, expectWorkers: 2 });
      workers.set(id, s);
      return s;
    };
    const [a] = await Promise.all([start("a"), start("b")]);
    for (const u of ["alice", "bob"]) a.store.putUser(u, await deriveCredentials(`${u}-pw`, config.auth.scramIterations));
    await waitUntil(() => [...workers.values()].every((s) => Object.values(s.bus.membership().hosts).flat().length === 2), 5000, "both workers in the ring", 20);
  }, { timeout: 30_000 });
  after(async () => {
    for (const s of workers.values()) await s.stop();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("@xmpp/client cut twice mid-conversation resumes on the other worker each time (TCP, then WebSocket): every message once, in order", { timeout: 60_000 }, async () => {
    const c = client({ service: tcp("a"), domain: "localhost", username: "alice", password: "alice-pw", resource: "roaming" });
    c.on("error", () => {});
    c.reconnect.delay = 50;
    const got: string[] = [];
    c.on("stanza", (el: any) => {
      if (el.is("message") && el.getChildText("body") !== null) got.push(el.getChildText("body"));
    });
    let resumed = 0;
    c.streamManagement.on("resumed", () => resumed++);
    // The full JID the server bound (Bind2: the tag and the server's part); resumption keeps it.
    const alice = String(await c.start());
    await c.send(xml("presence"));
    await waitUntil(() => c.streamManagement.enabled === true && c.streamManagement.id !== "", 5000, "sm enabled with an id");
    const bob = await online(workers.get("b")!.port("xmpp", "tcp"), "bob", "bob-pw", { resource: "sender", presence: false });
    const moved = () => [...workers.values()].reduce((n, s) => n + s.proxy.handovers.stats.movedIn, 0);
    const N = 90;
    try {
      for (let i = 0; i < N; i++) {
        await bob.c.send(xml("message", { to: alice, type: "chat" }, xml("body", {}, String(i))));
        // The reconnection goes to the other worker: its session is claimed there.
        if (i === 20) {
          (c as any).options.service = tcp("b");
          c.socket.destroy();
        }
        if (i === 55) {
          await waitUntil(() => resumed === 1, 10_000, "the first resumption");
          (c as any).options.service = ws("a");
          c.socket.destroy();
        }
      }
      await within(
        waitUntil(() => got.length >= N, 30_000, () => `got ${got.length} of ${N}`),
        35_000,
        "all messages",
      );
      const seen = new Map<string, number>();
      for (const b of got) seen.set(b, (seen.get(b) ?? 0) + 1);
      const duplicated = [...seen.values()].filter((n) => n > 1).length;
      const lost = Array.from({ length: N }, (_, i) => String(i)).filter((b) => !seen.has(b)).length;
      assert.equal(lost, 0, "lost");
      assert.equal(duplicated, 0, `duplicated in ${got.join(",")}`);
      assert.deepEqual(got, Array.from({ length: N }, (_, i) => String(i)), "in order");
      assert.equal(resumed, 2, "resumed twice, never bound again");
      assert.equal(moved(), 2, "the session moved between the workers twice");
      assert.equal(workers.get("a")!.metrics.offlineStored + workers.get("b")!.metrics.offlineStored, 0, "nothing stored offline");
      // Still reachable at the same full JID after both moves, from either side.
      assert.equal(String(c.jid), alice, "the same full JID after both moves");
      await bob.c.send(xml("message", { to: alice, type: "chat" }, xml("body", {}, "after")));
      await waitUntil(() => got.includes("after"), 5000, "a message after both moves");
    } finally {
      c.reconnect.stop();
      await c.stop().catch(() => {});
      await bob.stop();
    }
  });
});
