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
import { waitUntil } from "../../helpers.js";
import { online, type Online } from "./util.js";
import { SERVICE, configure, errorOf, join, openRoom } from "./muc-util.js";

// XEP-0045 §7.5 for iqs, with @xmpp/client on two workers of one process: an iq to room/nick goes to the
// occupant's real JID from the asker's occupant JID, and its answer — or a timeout, or an error at once
// when the occupant leaves — comes back to the asker from room/nick, through the core's pending requests.

const VCARD = "vcard-temp";
const SLOW = "urn:example:slow";

let dir: string;
let a: Server;
let b: Server;

before(async () => {
  dir = mkdtempSync(pathJoin(tmpdir(), "switchboard-muc-iq-"));
  const hub = new LocalHub(64);
  const c = validate({
    storage: { type: "sqlite", path: pathJoin(dir, "db.sqlite") },
    listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 }],
    muc: { enabled: true },
    timeouts: { xmpp: { byNamespace: { [SLOW]: 1500 } } },
  });
  a = await Server.start(c, { log: silentLogger(), hub, workerId: "w0" });
  b = await Server.start(c, { log: silentLogger(), hub, workerId: "w1" });
  for (const u of ["alice", "bob", "carol", "dave", "eve"]) await a.store.putUser(u, await deriveCredentials(`${u}-pass`, c.auth.scramIterations));
}, { timeout: 15_000 });

after(async () => {
  await a?.stop();
  await b?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** alice and carol on worker A; the others on worker B. */
const users = (...names: string[]): Promise<Online[]> => Promise.all(names.map((n) => online(n === "alice" || n === "carol" ? a.port("xmpp", "tcp") : b.port("xmpp", "tcp"), n, `${n}-pass`, { resource: "r" })));
const stop = (os: Online[]) => Promise.all(os.map((o) => o.stop()));

let n = 0;
/** Sends an iq and returns its id; the answer is awaited separately. */
async function ask(o: Online, to: string, type: "get" | "set", child: any): Promise<string> {
  const id = `fw${++n}`;
  await o.c.send(xml("iq", { to, type, id }, child));
  return id;
}
const answerTo = (o: Online, id: string, ms = 8000) => o.waitFor((el) => el.is("iq") && el.attrs.id === id && (el.attrs.type === "result" || el.attrs.type === "error"), ms);
/**
 * @xmpp/client answers every iq it has no handler for (service-unavailable): these hold the requests of
 * one kind until the test answers each (by id) with a child for a result, or an <error/>; never, if it does not.
 */
function held(o: Online, type: "get" | "set", ns: string, name: string): Map<string, (reply: any) => void> {
  const waiting = new Map<string, (reply: any) => void>();
  o.c.iqCallee[type](ns, name, (ctx: any) => new Promise((resolve) => waiting.set(ctx.stanza.attrs.id, resolve)));
  return waiting;
}
const stanzaError = (cond: string) => xml("error", { type: "cancel" }, xml(cond, { xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas" }));
const requestFrom = (o: Online, from: string, ns: string) => o.waitFor((el) => el.is("iq") && el.attrs.from === from && (el.attrs.type === "get" || el.attrs.type === "set") && el.getChildElements()[0]?.attrs.xmlns === ns, 8000);

test("a vCard request to room/nick reaches the occupant from the asker's occupant JID, and its answer comes back from room/nick", { timeout: 40_000 }, async () => {
  const room = `iqroom@${SERVICE}`;
  const [al, bo, ev] = await users("alice", "bob", "eve");
  const bobVcard = held(bo, "get", VCARD, "vCard");
  const aliceVersion = held(al, "set", "jabber:iq:version", "query");
  try {
    await openRoom(al, room, "Alice");
    await join(bo, room, "Bob");
    const id = await ask(al, `${room}/Bob`, "get", xml("vCard", { xmlns: VCARD }));
    const got = await requestFrom(bo, `${room}/Alice`, VCARD);
    assert.equal(got.attrs.id, id, "the asker's id passes through");
    assert.equal(got.attrs.to, bo.jid, "to the occupant's real full JID");
    // Semi-anonymous (the default): nothing of alice's real JID reaches bob.
    assert.ok(!got.toString().includes("alice@localhost"), got.toString());
    bobVcard.get(id)!(xml("vCard", { xmlns: VCARD }, xml("FN", {}, "Bob Builder")));
    const res = await answerTo(al, id);
    assert.equal(res.attrs.type, "result", `${res}`);
    assert.equal(res.attrs.from, `${room}/Bob`);
    assert.equal(res.getChild("vCard", VCARD).getChildText("FN"), "Bob Builder");
    assert.ok(!res.toString().includes("bob@localhost"), "nor bob's to alice");

    // The other way, an iq set, answered with an error: the occupant's own condition comes back.
    const id2 = await ask(bo, `${room}/Alice`, "set", xml("query", { xmlns: "jabber:iq:version" }));
    const got2 = await requestFrom(al, `${room}/Bob`, "jabber:iq:version");
    aliceVersion.get(got2.attrs.id)!(stanzaError("feature-not-implemented"));
    const res2 = await answerTo(bo, id2);
    assert.equal(errorOf(res2), "feature-not-implemented");
    assert.equal(res2.attrs.from, `${room}/Alice`);

    // Non-anonymous: still the occupant JID (the room passes iqs on; it does not introduce people).
    assert.equal((await configure(al, room, { "muc#roomconfig_whois": "anyone" })).attrs.type, "result");
    const id3 = await ask(al, `${room}/Bob`, "get", xml("vCard", { xmlns: VCARD }));
    const got3 = await requestFrom(bo, `${room}/Alice`, VCARD);
    assert.equal(got3.attrs.id, id3);

    // Refusals: no such nick; not an occupant; a self-ping is still the room's.
    assert.equal(errorOf(await answerTo(al, await ask(al, `${room}/Nobody`, "get", xml("vCard", { xmlns: VCARD })))), "item-not-found");
    const outsider = await answerTo(ev, await ask(ev, `${room}/Bob`, "get", xml("vCard", { xmlns: VCARD })));
    assert.equal(errorOf(outsider), "not-acceptable");
    assert.equal(outsider.attrs.from, `${room}/Bob`);
    const ping = await answerTo(bo, await ask(bo, `${room}/Bob`, "get", xml("ping", { xmlns: "urn:xmpp:ping" })));
    assert.equal(ping.attrs.type, "result");
    bobVcard.get(got3.attrs.id)!(xml("vCard", { xmlns: VCARD }));
    assert.equal((await answerTo(al, id3)).attrs.type, "result");
  } finally {
    await stop([al, bo, ev]);
  }
});

test("unanswered: the asker's timeout; the occupant leaves: an error at once, and its late answer goes nowhere", { timeout: 40_000 }, async () => {
  const room = `iqwait@${SERVICE}`;
  const [al, bo, ca, da] = await users("alice", "bob", "carol", "dave");
  held(bo, "get", SLOW, "q");
  const carolVcard = held(ca, "get", VCARD, "vCard");
  held(da, "get", VCARD, "vCard");
  try {
    await openRoom(al, room, "Alice");
    await join(bo, room, "Bob");
    await join(ca, room, "Carol");
    await join(da, room, "Dave");
    // The namespace's timeout (1.5 s): bob never answers.
    const t0 = Date.now();
    const slow = await ask(al, `${room}/Bob`, "get", xml("q", { xmlns: SLOW }));
    await requestFrom(bo, `${room}/Alice`, SLOW);
    const timedOut = await answerTo(al, slow, 10_000);
    assert.equal(errorOf(timedOut), "remote-server-timeout", `${timedOut}`);
    assert.equal(timedOut.attrs.from, `${room}/Bob`);
    assert.ok(Date.now() - t0 >= 1400, "not before the timeout");

    // Carol leaves with a request of alice's unanswered: alice hears at once (the default timeout is 30 s).
    const left = await ask(al, `${room}/Carol`, "get", xml("vCard", { xmlns: VCARD }));
    const req = await requestFrom(ca, `${room}/Alice`, VCARD);
    const t1 = Date.now();
    await ca.c.send(xml("presence", { to: `${room}/Carol`, type: "unavailable" }));
    const gone = await answerTo(al, left, 10_000);
    assert.equal(errorOf(gone), "item-not-found");
    assert.equal(gone.attrs.from, `${room}/Carol`);
    assert.ok(Date.now() - t1 < 10_000);
    // Her answer now arrives too late: counted as such on the room's worker, never given to alice.
    const late = a.proxy.stats.late + b.proxy.stats.late;
    carolVcard.get(req.attrs.id)!(xml("vCard", { xmlns: VCARD }));
    await waitUntil(() => a.proxy.stats.late + b.proxy.stats.late > late, 8000, "the late answer counted");
    assert.equal(al.stanzas.filter((el) => el.is("iq") && el.attrs.id === left).length, 0, "one answer only");

    // Dave's connection ends with a request of alice's unanswered: an error at once too.
    const dropped = await ask(al, `${room}/Dave`, "get", xml("vCard", { xmlns: VCARD }));
    await requestFrom(da, `${room}/Alice`, VCARD);
    await da.stop();
    const err = await answerTo(al, dropped, 10_000);
    assert.ok(["item-not-found", "service-unavailable"].includes(errorOf(err)), `${err}`);
  } finally {
    await stop([al, bo, ca]);
  }
});
