import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { xml } from "@xmpp/client";
import { validate, type Config } from "../../../src/config/config.js";
import { Server } from "../../../src/server/server.js";
import { silentLogger } from "../../../src/log/logger.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { Router } from "../../../src/router/router.js";
import { xmppListeners, waitUntil } from "../../helpers.js";
import { online, type Online } from "../xmpp/util.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";

const CARBONS = "urn:xmpp:carbons:2";
const USERS = Array.from({ length: 8 }, (_, i) => `c${i}`);

/**
 * XEP-0280 across two workers joined by a real nats-server: alice's two
 * resources on different workers, her bare JID owned by one of them, so each
 * copy crosses the bus to the owner and on to the other resource.
 */
describe("carbons across workers over a NATS bus", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  let dir: string;
  let config: Config;
  const workers = new Map<string, Server>();
  const clients: Online[] = [];

  const ownerOf = (user: string): string => new Router(workers.get("a")!.bus.membership()).ownerOf(`${user}@localhost`)!;
  const port = (w: string) => workers.get(w)!.port("xmpp", "tcp");

  before(async () => {
    nats = await startNats();
    dir = mkdtempSync(join(tmpdir(), "switchboard-carbons-"));
    config = validate({
      storage: { type: "sqlite", path: join(dir, "db.sqlite") },
      listeners: xmppListeners(),
      cluster: { bus: "nats", vnodes: 256, nats: { servers: [nats.url], subject: "sbcarbons", heartbeatMs: 200 } },
    });
    const start = async (id: string) => {
      const s = await Server.start(config, { log: silentLogger(), workerId: id, expectWorkers: 2 });
      workers.set(id, s);
      return s;
    };
    const [a] = await Promise.all([start("a"), start("b")]);
    for (const u of USERS) a.store.putUser(u, await deriveCredentials(`${u}-pw`, config.auth.scramIterations));
    await waitUntil(() => [...workers.values()].every((s) => Object.values(s.bus.membership().hosts).flat().length === 2), 5000, "both workers in the ring", 20);
  }, { timeout: 30_000 });
  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    for (const s of workers.values()) await s.stop();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("received and sent carbons reach the resource on the other worker; a bare-JID message is not doubled", { timeout: 30_000 }, async () => {
    // alice owned by b, bob owned by a: every copy goes a → b (owner) → a or b.
    const alice = USERS.find((u) => ownerOf(u) === "b")!;
    const bob = USERS.find((u) => ownerOf(u) === "a")!;
    const phone = await online(port("a"), alice, `${alice}-pw`, { resource: "phone" });
    const desk = await online(port("b"), alice, `${alice}-pw`, { resource: "desk" });
    const b = await online(port("a"), bob, `${bob}-pw`, { resource: "b" });
    clients.push(phone, desk, b);
    // Desk's presence reached phone through the owner (b): both are bound and available there.
    await phone.waitFor((el) => el.is("presence") && el.attrs.from === desk.jid);
    const copies = () => [...workers.values()].reduce((n, s) => n + s.proxy.stats.copies, 0);
    const told = (w: string, jid: string) => workers.get(w)!.proxy.sessions.get(jid)?.peersWantCopies;

    // Nobody wants copies yet: none is made on either worker, whichever way a message goes.
    await b.c.send(xml("message", { to: phone.jid, type: "chat", id: "n1" }, xml("body", {}, "shortcut on a")));
    await b.c.send(xml("message", { to: desk.jid, type: "chat", id: "n2" }, xml("body", {}, "through the owner")));
    await phone.c.send(xml("message", { to: `${bob}@localhost`, type: "chat", id: "n3" }, xml("body", {}, "sent")));
    await b.waitFor((el) => el.is("message") && el.attrs.id === "n3");
    await phone.waitFor((el) => el.is("message") && el.attrs.id === "n1");
    await desk.waitFor((el) => el.is("message") && el.attrs.id === "n2");
    assert.equal(copies(), 0);

    await phone.c.iqCaller.set(xml("enable", { xmlns: CARBONS }));
    await desk.c.iqCaller.set(xml("enable", { xmlns: CARBONS }));
    // The owner (b) tells each worker that the other resource wants copies: a bus hop after the enable's result.
    await waitUntil(() => told("a", phone.jid) === true && told("b", desk.jid) === true, 5000, "both told that the other wants copies", 10);

    const carbonOf = (dir: string, id: string) => (el: any) =>
      el.is("message") && el.attrs.from === `${alice}@localhost` && el.getChild(dir, CARBONS)?.getChild("forwarded", "urn:xmpp:forward:0")?.getChild("message")?.attrs.id === id;

    // bob and phone share worker a: the original is delivered there directly, the copy goes through b.
    await b.c.send(xml("message", { to: phone.jid, type: "chat", id: "x1" }, xml("body", {}, "to your phone")));
    await phone.waitFor((el) => el.is("message") && el.attrs.id === "x1");
    await desk.waitFor(carbonOf("received", "x1"));

    await desk.c.send(xml("message", { to: `${bob}@localhost`, type: "chat", id: "x2" }, xml("body", {}, "from the desk")));
    await b.waitFor((el) => el.is("message") && el.attrs.id === "x2");
    await phone.waitFor(carbonOf("sent", "x2"));

    await b.c.send(xml("message", { to: `${alice}@localhost`, type: "chat", id: "x3" }, xml("body", {}, "to alice")));
    await phone.waitFor((el) => el.is("message") && el.attrs.id === "x3");
    await desk.waitFor((el) => el.is("message") && el.attrs.id === "x3");
    // A later copy on the same paths has arrived: nothing more of x3 came before it, nor the origins' own copies.
    await b.c.send(xml("message", { to: desk.jid, type: "chat", id: "x4" }, xml("body", {}, "barrier")));
    await desk.waitFor((el) => el.is("message") && el.attrs.id === "x4");
    await phone.waitFor(carbonOf("received", "x4"));
    for (const c of [phone, desk]) {
      const extra = c.stanzas.filter((el) => el.is("message") && (el.attrs.id === "x3" || el.getChild("received", CARBONS) || el.getChild("sent", CARBONS)));
      assert.deepEqual(extra.map(String), []);
    }
  });

  test("to the bare JID, owned on the other worker: a resource with negative priority that enabled carbons gets one copy", { timeout: 30_000 }, async () => {
    const alice = USERS.filter((u) => ownerOf(u) === "b")[1];
    const bob = USERS.filter((u) => ownerOf(u) === "a")[1];
    const top = await online(port("b"), alice, `${alice}-pw`, { resource: "top" });
    const low = await online(port("a"), alice, `${alice}-pw`, { resource: "low", presence: false });
    const b = await online(port("a"), bob, `${bob}-pw`, { resource: "b" });
    clients.push(top, low, b);
    await low.c.send(xml("presence", {}, xml("priority", {}, "-1")));
    await low.c.iqCaller.set(xml("enable", { xmlns: CARBONS }));
    // bob is on a, like low: his messages reach the owner (b) behind low's carbons update, on the same bus path.
    const received = (id: string) => (el: any) => el.getChild("received", CARBONS)?.getChild("forwarded", "urn:xmpp:forward:0")?.getChild("message")?.attrs.id === id;
    for (const id of ["y1", "y2", "y3"]) await b.c.send(xml("message", { to: `${alice}@localhost`, type: "chat", id }, xml("body", {}, id)));
    for (const id of ["y1", "y2", "y3"]) {
      await top.waitFor((el) => el.is("message") && el.attrs.id === id);
      const copy = await low.waitFor(received(id));
      assert.equal(copy.attrs.from, `${alice}@localhost`);
      assert.equal(copy.attrs.to, low.jid);
    }
    // Barrier on both paths: bob's next message to top, copied to low.
    await b.c.send(xml("message", { to: top.jid, type: "chat", id: "y4" }, xml("body", {}, "barrier")));
    await top.waitFor((el) => el.is("message") && el.attrs.id === "y4");
    await low.waitFor(received("y4"));
    for (const c of [top, low]) assert.deepEqual(c.stanzas.filter((el) => el.is("message")).map(String), [], c.jid);
  });
});
