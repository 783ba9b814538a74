import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { client, xml } from "@xmpp/client";
import { validate } from "../../../src/config/config.js";
import { Server } from "../../../src/server/server.js";
import { silentLogger } from "../../../src/log/logger.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { waitUntil, within } from "../../helpers.js";
import { online } from "../xmpp/util.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";

/**
 * A live session resumed through another host (a load balancer in front of
 * two hosts sends the reconnection anywhere): the claim on the new host's own
 * workers misses, the resume record's keeper (on the other host) names the
 * worker that holds the session, and the session is claimed from there. Two
 * workers in this process, each its own host, on a real nats-server.
 */
describe("resumption on another host while the session lives", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  let dir: string;
  const workers = new Map<string, Server>();
  const tcp = (w: string) => `xmpp://127.0.0.1:${workers.get(w)!.port("xmpp", "tcp")}`;

  before(async () => {
    nats = await startNats();
    dir = mkdtempSync(join(tmpdir(), "switchboard-xhost-"));
    const configOf = (hostAddress: string) =>
      validate({
        storage: { type: "sqlite", path: join(dir, "db.sqlite") },
        listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 }],
        xmpp: { allowPlainWithoutTls: true, sm: { resumeTimeoutMs: 20_000 } },
        cluster: { bus: "nats", hostAddress, vnodes: 256, nats: { servers: [nats.url], subject: "sbxhost", heartbeatMs: 200 } },
      });
    const start = async (id: string, host: string) => {
      const s = await Server.start(configOf(host), { log: silentLogger(), workerId: id, expectWorkers: 1 });
      workers.set(id, s);
      return s;
    };
    const [a] = await Promise.all([start("hostA-w0", "10.0.0.1"), start("hostB-w0", "10.0.0.2")]);
    for (const u of ["alice", "bob"]) await a.store.putUser(u, await deriveCredentials(`${u}-pw`, 4096));
    await waitUntil(() => [...workers.values()].every((s) => Object.keys(s.bus.membership().hosts).length === 2), 5000, "both hosts in the ring", 20);
  }, { timeout: 30_000 });
  after(async () => {
    for (const s of workers.values()) await s.stop();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("@xmpp/client cut mid-conversation on host A resumes through host B: claimed from A, every message once, in order", { timeout: 60_000 }, async () => {
    const c = client({ service: tcp("hostA-w0"), domain: "localhost", username: "alice", password: "alice-pw", resource: "roaming" });
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
    // Its record reached its keeper, the worker on the other host.
    const b = workers.get("hostB-w0")!;
    await waitUntil(() => b.proxy.records.size === 1, 5000, "the record at its keeper");
    const bob = await online(b.port("xmpp", "tcp"), "bob", "bob-pw", { resource: "sender", presence: false });
    const N = 60;
    try {
      for (let i = 0; i < N; i++) {
        await bob.c.send(xml("message", { to: alice, type: "chat" }, xml("body", {}, String(i))));
        if (i === 20) {
          (c as any).options.service = tcp("hostB-w0");
          c.socket.destroy();
        }
      }
      await within(waitUntil(() => got.length >= N, 30_000, () => `got ${got.length} of ${N}`), 35_000, "all messages");
      assert.deepEqual(got, Array.from({ length: N }, (_, i) => String(i)), "every message once, in order");
      assert.equal(resumed, 1, "resumed, not bound again");
      assert.equal(b.proxy.handovers.stats.movedIn, 1, "claimed from host A");
      assert.equal(b.proxy.records.stats.found, 1, "after the keeper named its holder");
      assert.equal(b.metrics.sm.rebuilt + workers.get("hostA-w0")!.metrics.sm.rebuilt, 0, "not rebuilt: it lived");
      await bob.c.send(xml("message", { to: alice, type: "chat" }, xml("body", {}, "after")));
      await waitUntil(() => got.includes("after"), 5000, "a message after the move");
    } finally {
      c.reconnect.stop();
      await c.stop().catch(() => {});
      await bob.stop();
    }
  });
});
