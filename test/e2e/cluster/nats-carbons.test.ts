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
    await phone.c.iqCaller.set(xml("enable", { xmlns: CARBONS }));
    await desk.c.iqCaller.set(xml("enable", { xmlns: CARBONS }));

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
});
