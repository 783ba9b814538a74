import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as pathJoin } from "node:path";
import { xml } from "@xmpp/client";
import { validate } from "../../../src/config/config.js";
import { Server } from "../../../src/server/server.js";
import { LocalHub } from "../../../src/cluster/local-bus.js";
import { silentLogger } from "../../../src/log/logger.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { online, type Online } from "./util.js";
import { MUC, SERVICE, bodyFrom, codes, errorOf, groupchat, instant, iq, itemOf, join, presenceFrom } from "./muc-util.js";

// XEP-0045 with @xmpp/client: two workers in one process on a LocalHub, each with its own listener; a
// room lives on the worker that owns its address, its occupants on either (test/e2e/cluster/muc-host.test.ts
// does the same over NATS between processes, where the bus ops go through their wire format).

let dir: string;
let a: Server;
let b: Server;
let portA: number;
let portB: number;
const USERS = ["alice", "bob", "carol", "dave", "eve"];

before(async () => {
  dir = mkdtempSync(pathJoin(tmpdir(), "switchboard-muc-"));
  const hub = new LocalHub(64);
  const c = validate({
    storage: { type: "sqlite", path: pathJoin(dir, "db.sqlite") },
    listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 }],
    muc: { enabled: true, historyMessages: 5, maxPresencePerSecond: 3 },
  });
  a = await Server.start(c, { log: silentLogger(), hub, workerId: "w0" });
  b = await Server.start(c, { log: silentLogger(), hub, workerId: "w1" });
  for (const u of USERS) await a.store.putUser(u, await deriveCredentials(`${u}-pass`, c.auth.scramIterations));
  portA = a.port("xmpp", "tcp");
  portB = b.port("xmpp", "tcp");
}, { timeout: 15_000 });

after(async () => {
  await a.stop();
  await b.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** alice on worker A; the others on worker B. */
async function users(...names: string[]): Promise<Online[]> {
  return Promise.all(names.map((n) => online(n === "alice" ? portA : portB, n, `${n}-pass`, { resource: "r" })));
}

const stop = (os: Online[]) => Promise.all(os.map((o) => o.stop()));
const fanoutMessages = () => a.proxy.services.fanoutMessages + b.proxy.services.fanoutMessages;

test("the service is listed in the server's disco#items, with its disco#info", { timeout: 15_000 }, async () => {
  const [al] = await users("alice");
  try {
    const items = await iq(al, "localhost", "get", xml("query", { xmlns: "http://jabber.org/protocol/disco#items" }));
    assert.ok(items.getChild("query").getChildren("item").some((i: any) => i.attrs.jid === SERVICE), `${items}`);
    const info = await iq(al, SERVICE, "get", xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }));
    const q = info.getChild("query");
    assert.equal(q.getChild("identity").attrs.category, "conference");
    assert.ok(q.getChildren("feature").some((f: any) => f.attrs.var === MUC));
    const other = await iq(al, "elsewhere.example", "get", xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }));
    assert.equal(errorOf(other), "remote-server-not-found", "other domains stay unreachable");
  } finally {
    await stop([al]);
  }
});

test("join across workers: 201 for the creator, occupants first, self-presence 110, conflict 409, groupchat to all with one bus message per worker, leave", { timeout: 30_000 }, async () => {
  const room = `lobby@${SERVICE}`;
  const [al, bo, ca] = await users("alice", "bob", "carol");
  try {
    const self = await join(al, room, "Alice");
    assert.deepEqual(codes(self).sort(), [110, 201]);
    assert.equal(itemOf(self).attrs.affiliation, "owner");
    assert.equal(itemOf(self).attrs.role, "moderator");
    // §10.1: locked until configured; others cannot enter yet.
    const early = await join(bo, room, "Bob");
    assert.equal(errorOf(early), "item-not-found");
    await instant(al, room);

    const bob = await join(bo, room, "Bob");
    assert.deepEqual(codes(bob), [110]);
    assert.equal(itemOf(bob).attrs.jid, bo.jid, "self-presence shows one's own real JID");
    // Before his self-presence, Bob was shown Alice (semi-anonymous: no real JID for a participant).
    const aliceToBob = await bo.waitFor(presenceFrom(`${room}/Alice`));
    assert.equal(itemOf(aliceToBob).attrs.jid, undefined);
    // Alice, a moderator, sees Bob's real JID.
    const bobToAlice = await al.waitFor(presenceFrom(`${room}/Bob`));
    assert.equal(itemOf(bobToAlice).attrs.jid, bo.jid);
    await bo.waitFor((el) => el.is("message") && el.getChild("subject") !== undefined);

    const clash = await join(ca, room, "Bob");
    assert.equal(errorOf(clash), "conflict");
    assert.equal(clash.attrs.type, "error");
    await join(ca, room, "Carol");

    const before = fanoutMessages();
    await groupchat(al, room, "hello all");
    for (const o of [al, bo, ca]) await o.waitFor(bodyFrom(`${room}/Alice`, "hello all"));
    // Alice's worker and the other: one occupant here, two there — one bus message at most, whichever owns the room.
    assert.equal(fanoutMessages() - before, 1, "one fan-out bus message for the two occupants on the other worker");

    await ca.c.send(xml("presence", { to: `${room}/Carol`, type: "unavailable" }));
    const gone = await ca.waitFor(presenceFrom(`${room}/Carol`, 110));
    assert.equal(gone.attrs.type, "unavailable");
    for (const o of [al, bo]) await o.waitFor((el) => presenceFrom(`${room}/Carol`)(el) && el.attrs.type === "unavailable");
    // A connection that ends leaves its rooms.
    await bo.stop();
    await al.waitFor((el) => presenceFrom(`${room}/Bob`)(el) && el.attrs.type === "unavailable");
  } finally {
    await stop([al, bo, ca]);
  }
});

test("history on join (maxstanzas, maxchars, seconds, since), subject after it, nick change 303 and 210, private messages", { timeout: 30_000 }, async () => {
  const room = `talk@${SERVICE}`;
  const [al, bo, ca, da] = await users("alice", "bob", "carol", "dave");
  try {
    await join(al, room, "Alice");
    await instant(al, room);
    for (let i = 1; i <= 7; i++) await groupchat(al, room, `m${i}`);
    await al.waitFor(bodyFrom(`${room}/Alice`, "m7"));
    await al.c.send(xml("message", { to: room, type: "groupchat" }, xml("subject", {}, "Today: MUC")));
    await al.waitFor((el) => el.is("message") && el.getChildText("subject") === "Today: MUC");

    const histOf = async (o: Online, nick: string, ...h: any[]) => {
      await join(o, room, nick, ...h);
      const subject = await o.waitFor((el) => el.is("message") && el.getChild("subject") !== undefined);
      assert.equal(subject.getChildText("subject"), "Today: MUC");
      const got = o.stanzas.filter((el) => el.is("message") && el.getChild("body") !== undefined);
      o.stanzas.length = 0;
      return got;
    };
    // The room keeps 5 (muc.historyMessages); Bob asks for 2.
    const two = await histOf(bo, "Bob", xml("history", { maxstanzas: "2" }));
    assert.deepEqual(two.map((m) => m.getChildText("body")), ["m6", "m7"]);
    assert.ok(two[0].getChild("delay", "urn:xmpp:delay")?.attrs.stamp, "history carries <delay/>");
    const none = await histOf(ca, "Carol", xml("history", { maxchars: "0" }));
    assert.equal(none.length, 0);
    const all = await histOf(da, "Dave", xml("history", { seconds: "3600" }));
    assert.deepEqual(all.map((m) => m.getChildText("body")), ["m3", "m4", "m5", "m6", "m7"]);

    // §7.6: Dave becomes "Dave2": 303 with the new nick, then available from it.
    await da.c.send(xml("presence", { to: `${room}/Dave2` }));
    const old = await bo.waitFor(presenceFrom(`${room}/Dave`, 303));
    assert.equal(itemOf(old).attrs.nick, "Dave2");
    await bo.waitFor((el) => el.is("presence") && el.attrs.from === `${room}/Dave2` && el.attrs.type === undefined);
    // §7.2.9: the service's nick policy trims spaces; told with 210.
    await ca.c.send(xml("presence", { to: `${room}/ Carol2 ` }));
    const trimmed = await ca.waitFor(presenceFrom(`${room}/Carol2`, 110, 210));
    assert.equal(trimmed.attrs.type, undefined);

    // §7.5: a private message reaches the occupant's real JID, from the sender's occupant JID.
    await bo.c.send(xml("message", { to: `${room}/Alice`, type: "chat" }, xml("body", {}, "psst")));
    const pm = await al.waitFor(bodyFrom(`${room}/Bob`, "psst"));
    assert.equal(pm.attrs.type, "chat");
    assert.ok(pm.getChild("x", "http://jabber.org/protocol/muc#user"));
    await bo.c.send(xml("message", { to: `${room}/Nobody`, type: "chat", id: "pm2" }, xml("body", {}, "?")));
    assert.equal(errorOf(await bo.waitFor((el) => el.is("message") && el.attrs.id === "pm2")), "item-not-found");
    const eve = (await users("eve"))[0];
    try {
      await eve.c.send(xml("message", { to: `${room}/Alice`, type: "chat", id: "pm3" }, xml("body", {}, "let me in")));
      assert.equal(errorOf(await eve.waitFor((el) => el.is("message") && el.attrs.id === "pm3")), "not-acceptable");
      await eve.c.send(xml("message", { to: room, type: "groupchat", id: "gc3" }, xml("body", {}, "let me in")));
      assert.equal(errorOf(await eve.waitFor((el) => el.is("message") && el.attrs.id === "gc3")), "not-acceptable");
    } finally {
      await eve.stop();
    }
  } finally {
    await stop([al, bo, ca, da]);
  }
});
