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

const MAM = "urn:xmpp:mam:2";
const FORWARD = "urn:xmpp:forward:0";
const USERS = Array.from({ length: 16 }, (_, i) => `m${i}`);

/**
 * XEP-0313 on a host of two workers joined by a real nats-server: alice owned
 * by worker b, bob by worker a, both connected to a. Each archive is written by
 * its user's owner: bob's where he is (a), alice's on b — her sent messages
 * reach b as the sent copy, those to her full JID (delivered on a without the
 * owner) as a copy for the archive. Her second device, on b, fetches it all.
 */
describe("archives on a host of two workers", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  let dir: string;
  let config: Config;
  const workers = new Map<string, Server>();
  const clients: Online[] = [];
  const ownerOf = (user: string): string => new Router(workers.get("a")!.bus.membership()).ownerOf(`${user}@localhost`)!;
  const port = (w: string) => workers.get(w)!.port("xmpp", "tcp");
  const archived = (w: string) => workers.get(w)!.archive!.stats.archived;

  before(async () => {
    nats = await startNats();
    dir = mkdtempSync(join(tmpdir(), "switchboard-mam-"));
    config = validate({
      storage: { type: "sqlite", path: join(dir, "db.sqlite") },
      listeners: xmppListeners(),
      cluster: { bus: "nats", vnodes: 256, nats: { servers: [nats.url], subject: "sbmam", heartbeatMs: 200 } },
      xmpp: { mam: { enabled: true } },
    });
    const start = async (id: string) => {
      const s = await Server.start(config, { log: silentLogger(), workerId: id, expectWorkers: 2 });
      workers.set(id, s);
      return s;
    };
    const [a] = await Promise.all([start("a"), start("b")]);
    for (const u of USERS) await a.store.putUser(u, await deriveCredentials(`${u}-pw`, config.auth.scramIterations));
    await waitUntil(() => [...workers.values()].every((s) => Object.values(s.bus.membership().hosts).flat().length === 2), 5000, "both workers in the ring", 20);
  }, { timeout: 30_000 });
  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    for (const s of workers.values()) await s.stop();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("each user's archive is written by its owner worker; a second device on the other worker reads it", { timeout: 30_000 }, async () => {
    const alice = USERS.find((u) => ownerOf(u) === "b")!;
    const bob = USERS.find((u) => ownerOf(u) === "a")!;
    assert.ok(alice !== undefined && bob !== undefined, USERS.map(ownerOf).join(","));
    const phone = await online(port("a"), alice, `${alice}-pw`, { resource: "phone" });
    const b = await online(port("a"), bob, `${bob}-pw`, { resource: "b" });
    clients.push(phone, b);
    await waitUntil(() => phone.c.streamManagement?.enabled === true && b.c.streamManagement?.enabled === true, 5000, "stream management on");
    const isMsg = (id: string) => (el: any) => el.is("message") && el.attrs.id === id;
    for (let i = 0; i < 6; i++) {
      if (i % 2 === 0) {
        await phone.c.send(xml("message", { to: `${bob}@localhost`, type: "chat", id: `x${i}` }, xml("body", {}, `alice ${i}`)));
        await b.waitFor(isMsg(`x${i}`));
      } else {
        // To her full JID, connected on a: delivered there without her owner (b), which gets a copy to archive.
        await b.c.send(xml("message", { to: phone.jid, type: "chat", id: `x${i}` }, xml("body", {}, `bob ${i}`)));
        await phone.waitFor(isMsg(`x${i}`));
      }
    }
    // Six messages in each archive: bob's written on a, alice's on b.
    await waitUntil(() => archived("a") === 6 && archived("b") === 6, 5000, () => `archived a=${archived("a")} b=${archived("b")}`);
    const desk = await online(port("b"), alice, `${alice}-pw`, { resource: "desk" });
    clients.push(desk);
    await waitUntil(() => desk.c.streamManagement?.enabled === true, 5000, "desk's stream management on");
    await desk.c.iqCaller.get(xml("ping", { xmlns: "urn:xmpp:ping" }));
    const res = await desk.c.iqCaller.request(xml("iq", { type: "set" }, xml("query", { xmlns: MAM, queryid: "h" })));
    assert.equal(res.getChild("fin", MAM).attrs.complete, "true");
    const bodies = desk.stanzas
      .filter((el) => el.getChild("result", MAM)?.attrs.queryid === "h")
      .map((el) => el.getChild("result", MAM).getChild("forwarded", FORWARD).getChild("message").getChildText("body"));
    assert.deepEqual(bodies, ["alice 0", "bob 1", "alice 2", "bob 3", "alice 4", "bob 5"]);
  });

  test("preferences set on the worker of the user's session apply to what its owner, another worker, archives next", { timeout: 30_000 }, async () => {
    const alice = USERS.filter((u) => ownerOf(u) === "b")[1];
    const bob = USERS.filter((u) => ownerOf(u) === "a")[1];
    assert.ok(alice !== undefined && bob !== undefined, USERS.map(ownerOf).join(","));
    const phone = await online(port("a"), alice, `${alice}-pw`, { resource: "phone" });
    const b = await online(port("a"), bob, `${bob}-pw`, { resource: "b" });
    clients.push(phone, b);
    const isMsg = (id: string) => (el: any) => el.is("message") && el.attrs.id === id;
    const owner = workers.get("b")!.archive!;
    const exchange = async (tag: string) => {
      await phone.c.send(xml("message", { to: `${bob}@localhost`, type: "chat", id: `${tag}-1` }, xml("body", {}, `${tag} from alice`)));
      await b.waitFor(isMsg(`${tag}-1`));
      await b.c.send(xml("message", { to: phone.jid, type: "chat", id: `${tag}-2` }, xml("body", {}, `${tag} from bob`)));
      await phone.waitFor(isMsg(`${tag}-2`));
    };
    const setPrefs = (mode: string, never: string[]) =>
      phone.c.iqCaller.request(xml("iq", { type: "set" }, xml("prefs", { xmlns: MAM, default: mode }, xml("always"), xml("never", {}, ...never.map((j) => xml("jid", {}, j))))));
    // Her preferences (none: the default, always) read by b and kept there.
    let archived = owner.stats.archived;
    await exchange("p0");
    await waitUntil(() => owner.stats.archived === archived + 2, 5000, () => `b archived ${owner.stats.archived - archived} of alice's 2`);
    const reads = owner.prefs.reads;
    await exchange("p1");
    await waitUntil(() => owner.stats.archived === archived + 4, 5000, () => `b archived ${owner.stats.archived - archived} of alice's 4`);
    assert.equal(owner.prefs.reads, reads, "kept on b: not read again");
    // Set on a (her session's worker): b is told over the bus and reads them again.
    await setPrefs("always", [`${bob}@localhost`]);
    const skipped = owner.stats.skipped;
    await exchange("p2");
    await waitUntil(() => owner.stats.skipped === skipped + 2, 5000, () => `b skipped ${owner.stats.skipped - skipped} of alice's 2 (never: bob)`);
    assert.equal(owner.stats.archived, archived + 4, "nothing with bob archived for alice");
    await setPrefs("always", []);
    archived = owner.stats.archived;
    await exchange("p3");
    await waitUntil(() => owner.stats.archived === archived + 2, 5000, () => `b archived ${owner.stats.archived - archived} of alice's 2 after her change back`);
    assert.equal(owner.stats.skipped, skipped + 2);
    const store = workers.get("b")!.store.archive;
    const page = await store.query({ user: alice, max: 100 });
    const texts = page!.items.map((it) => it.stanza);
    assert.ok(texts.some((t) => t.includes("p1 from bob")) && texts.some((t) => t.includes("p3 from alice")));
    assert.ok(!texts.some((t) => t.includes("p2 from")), "the messages sent while bob was in never are not in her archive");
    const bobs = (await store.query({ user: bob, max: 100 }))!.items.map((it) => it.stanza);
    assert.ok(bobs.some((t) => t.includes("p2 from alice")), "bob's archive (his owner, a) has them");
  });
});
