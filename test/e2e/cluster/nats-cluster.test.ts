import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validate, type Config } from "../../../src/config/config.js";
import { Server } from "../../../src/server/server.js";
import { silentLogger } from "../../../src/log/logger.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { Router } from "../../../src/router/router.js";
import { RelayClient, RelayError, type IncomingRequest } from "../../../src/relay/client.js";
import { xmppListeners, waitUntil, within } from "../../helpers.js";
import { online } from "../xmpp/util.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { xml } from "@xmpp/client";

const HB = 200;
const USERS = Array.from({ length: 12 }, (_, i) => `u${i}`);

/**
 * Workers as separate Server instances with their own listeners, joined by a
 * real nats-server: everything that crosses between them goes through the
 * bus's bytes (BusWire), as between processes.
 */
describe("workers over a NATS bus", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  let dir: string;
  let config: Config;
  const workers = new Map<string, Server>();

  const start = async (id: string, expect = 1): Promise<Server> => {
    const s = await Server.start(config, { log: silentLogger(), workerId: id, expectWorkers: expect });
    workers.set(id, s);
    return s;
  };
  const relay = async (w: string, user: string, resource = "r"): Promise<RelayClient> => {
    const c = await RelayClient.connect({ port: workers.get(w)!.port("relay", "tcp") });
    await c.login({ user, password: `${user}-pw`, resource });
    return c;
  };
  /** Users whose bare address the current ring gives to `owner`. */
  const ownedBy = (owner: string): string[] => {
    const router = new Router(workers.values().next().value!.bus.membership());
    return USERS.map((u) => ({ u, o: router.ownerOf(`${u}@localhost`) })).filter((x) => x.o === owner).map((x) => x.u);
  };
  const waitMembers = (n: number): Promise<void> =>
    waitUntil(() => [...workers.values()].every((s) => Object.values(s.bus.membership().hosts).flat().length === n), 5000, `every worker to count ${n} members`, 20);
  /**
   * Each user's session `resource` is bound at the user's owner under the current ring: after a login
   * (the bind crosses the bus when the owner is another worker) or a re-homing.
   */
  const boundAtOwners = (users: string[], resource = "r"): Promise<void> =>
    waitUntil(
      () => {
        const router = new Router(workers.values().next().value!.bus.membership());
        return users.every((u) => workers.get(router.ownerOf(`${u}@localhost`) ?? "")?.proxy.owner.channels.get(`${u}@localhost`)?.resources.has(resource) === true);
      },
      5000,
      `the sessions ${users.map((u) => `${u}@localhost/${resource}`).join(" ")} bound at their owners`,
    );

  before(async () => {
    nats = await startNats();
    dir = mkdtempSync(join(tmpdir(), "switchboard-cluster-"));
    config = validate({
      storage: { type: "sqlite", path: join(dir, "db.sqlite") },
      listeners: xmppListeners(),
      cluster: { bus: "nats", vnodes: 256, nats: { servers: [nats.url], subject: "sbtest", heartbeatMs: HB } },
    });
    const [a] = await Promise.all([start("a", 2), start("b", 2)]);
    for (const u of USERS) a.store.putUser(u, await deriveCredentials(`${u}-pw`, config.auth.scramIterations));
    await waitMembers(2);
  }, { timeout: 30_000 });
  after(async () => {
    for (const s of workers.values()) await s.stop();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("both workers see the same ring, and each owns some users", { timeout: 30_000 }, () => {
    assert.deepEqual(workers.get("a")!.bus.membership(), workers.get("b")!.bus.membership());
    assert.ok(ownedBy("a").length > 0 && ownedBy("b").length > 0);
  });

  test("relay requests cross workers both ways, whoever owns the recipient; ids and from survive the bus", { timeout: 30_000 }, async () => {
    // Recipient on b, owned by a (two bus hops: owner, then session) and owned by b (one hop).
    for (const owner of ["a", "b"]) {
      const [asker, answerer] = ownedBy(owner).length >= 2 ? ownedBy(owner) : [...ownedBy(owner), ...ownedBy(owner === "a" ? "b" : "a")];
      const q = await relay("a", asker);
      const r = await relay("b", answerer, "svc");
      r.on("request", (req: IncomingRequest) => req.respond(`${req.from} asked ${req.body}`));
      await boundAtOwners([answerer], "svc");
      const res = await q.request(`${answerer}@localhost`, Buffer.from([0, 1, 2, 0xff]));
      assert.equal(res.header.from, `${answerer}@localhost/svc`);
      assert.equal(String(res.body), `${asker}@localhost/r asked ${Buffer.from([0, 1, 2, 0xff])}`);
      q.destroy();
      r.destroy();
    }
  });

  test("an unanswered request times out at the asker's worker; one to nobody fails at once", { timeout: 30_000 }, async () => {
    const [x] = ownedBy("a");
    const [y] = ownedBy("b");
    const q = await relay("a", x);
    const r = await relay("b", y);
    r.on("request", () => {}); // never answers
    const t0 = Date.now();
    await assert.rejects(q.request(`${y}@localhost/r`, "hello?", 200), (e: RelayError) => e.code === "timeout");
    assert.ok(Date.now() - t0 < 2000);
    await assert.rejects(q.request(`${ownedBy("b")[1]}@localhost`, "anyone?"), (e: RelayError) => e.code === "unavailable");
    q.destroy();
    r.destroy();
  });

  test("XMPP chat between clients on different workers, from stamped by the sender's worker", { timeout: 30_000 }, async () => {
    const [alice, bob] = [ownedBy("b")[0], ownedBy("a")[0]];
    const x1 = await online(workers.get("a")!.port("xmpp", "tcp"), alice, `${alice}-pw`, { resource: "pc" });
    const x2 = await online(workers.get("b")!.port("xmpp", "tcp"), bob, `${bob}-pw`, { resource: "phone" });
    // Bob's own presence comes back through his owner on the other worker, after it has marked him available.
    await x2.waitFor((el) => el.is("presence") && el.attrs.from === x2.jid);
    await x1.c.send(xml("message", { to: `${bob}@localhost`, type: "chat", id: "m1" }, xml("body", {}, "über the bus <&>")));
    const got = await x2.waitFor((el) => el.is("message"));
    assert.equal(got.attrs.from, x1.jid);
    assert.equal(got.getChildText("body"), "über the bus <&>");
    await x2.c.send(xml("message", { to: x1.jid, type: "chat" }, xml("body", {}, "back")));
    assert.equal((await x1.waitFor((el) => el.is("message"))).getChildText("body"), "back");
    await x1.stop();
    await x2.stop();
  });

  test("XMPP IQ across workers: the id passes through, the answer comes back over the bus; roster pushes reach resources on both", { timeout: 30_000 }, async () => {
    const [alice, bob] = [ownedBy("b")[1], ownedBy("a")[1]];
    const x1 = await online(workers.get("a")!.port("xmpp", "tcp"), alice, `${alice}-pw`, { resource: "pc" });
    const x2 = await online(workers.get("b")!.port("xmpp", "tcp"), bob, `${bob}-pw`, { resource: "phone" });
    await x2.waitFor((el) => el.is("presence") && el.attrs.from === x2.jid);
    let seen = "";
    x2.c.iqCallee.get("urn:example:echo", "echo", (ctx: any) => {
      seen = ctx.stanza.attrs.id;
      return xml("echo", { xmlns: "urn:example:echo" }, "from b");
    });
    await x1.c.send(xml("iq", { type: "get", to: x2.jid, id: "over-the-bus" }, xml("echo", { xmlns: "urn:example:echo" })));
    const r = await x1.waitFor((el) => el.is("iq") && el.attrs.id === "over-the-bus");
    assert.equal(seen, "over-the-bus");
    assert.equal(r.attrs.type, "result");
    assert.equal(r.getChildText("echo"), "from b");
    assert.equal(workers.get("a")!.proxy.pending.size, 0);

    // Alice on both workers; both fetched the roster; a set on one pushes to the other across the bus.
    const x3 = await online(workers.get("b")!.port("xmpp", "tcp"), alice, `${alice}-pw`, { resource: "laptop", presence: false });
    for (const c of [x1, x3]) await c.c.iqCaller.get(xml("query", { xmlns: "jabber:iq:roster" }));
    await x1.c.iqCaller.set(xml("query", { xmlns: "jabber:iq:roster" }, xml("item", { jid: `${bob}@localhost`, name: "B" })));
    for (const c of [x1, x3]) await c.waitFor((el) => el.is("iq") && el.attrs.type === "set" && el.getChild("query", "jabber:iq:roster")?.getChild("item")?.attrs.name === "B");
    await Promise.all([x1.stop(), x2.stop(), x3.stop()]);
  });

  test("a worker joins and leaves: users move owner and stay reachable", { timeout: 30_000 }, async () => {
    const clients = await Promise.all(USERS.slice(0, 8).map((u, i) => relay(i % 2 ? "a" : "b", u)));
    await boundAtOwners(USERS.slice(0, 8));
    const check = async () => {
      for (let i = 0; i < clients.length; i++) {
        const to = clients[(i + 3) % clients.length];
        const got = new Promise<string>((resolve) => to.once("message", (m: { from: string; body: Buffer }) => resolve(`${m.from} ${m.body}`)));
        clients[i].message(to.jid.slice(0, to.jid.indexOf("/")), `hi ${i}`);
        assert.equal(await within(got, 3000, `message ${i} to ${to.jid}`), `${clients[i].jid} hi ${i}`);
      }
    };
    await check();
    await start("c");
    await waitMembers(3);
    assert.ok(ownedBy("c").length > 0, "the new worker owns some users");
    await boundAtOwners(USERS.slice(0, 8)); // the re-binds of the moved users cross the bus
    await check();
    await workers.get("c")!.stop();
    workers.delete("c");
    await waitMembers(2);
    await boundAtOwners(USERS.slice(0, 8));
    await check();
    for (const c of clients) c.destroy();
  });

  test("a worker that stops and starts again under the same id gets its users' sessions back from the others", { timeout: 30_000 }, async () => {
    const kept = ownedBy("b").slice(0, 2);
    const onA = await Promise.all(kept.map((u) => relay("a", u)));
    await workers.get("b")!.stop();
    workers.delete("b");
    await start("b");
    // a learns of b's new incarnation and binds its sessions there again.
    await waitMembers(2);
    await boundAtOwners(kept);
    const from = await relay("b", ownedBy("a")[0], "new");
    for (const c of onA) {
      const got = new Promise<string>((resolve) => c.once("message", (m: { body: Buffer }) => resolve(String(m.body))));
      from.message(c.jid.slice(0, c.jid.indexOf("/")), "still there?");
      assert.equal(await within(got, 3000, `message to ${c.jid}`), "still there?");
    }
    for (const c of [...onA, from]) c.destroy();
  });
});
