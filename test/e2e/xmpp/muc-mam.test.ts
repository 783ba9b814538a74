import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import { waitUntil } from "../../helpers.js";
import type { Online } from "./util.js";
import { SERVICE, admin, bodyFrom, configure, errorOf, groupchat, iq, join, MUC_OWNER, MUC_USER, openRoom, startPair, usersOn } from "./muc-util.js";

// XEP-0313 on rooms with @xmpp/client: the room (on its owner worker) archives its groupchat with
// <stanza-id by=room/>, and occupants on both workers, or outsiders the room lets in, page through it.

const MAM = "urn:xmpp:mam:2";
const SID = "urn:xmpp:sid:0";
const RSM = "http://jabber.org/protocol/rsm";
const FORWARD = "urn:xmpp:forward:0";
const DISCO_INFO = "http://jabber.org/protocol/disco#info";

let pair: Awaited<ReturnType<typeof startPair>>;

before(async () => {
  pair = await startPair(["alice", "bob", "carol", "dave"], { mam: { enabled: true, maxPageSize: 5 } });
}, { timeout: 15_000 });
after(async () => {
  await pair?.stop();
});

let qn = 0;
/** One query to the room's archive: its results (by queryid) and the iq answer (result with <fin/>, or error). */
async function query(o: Online, room: string, form: Record<string, string> = {}, set: any[] = []): Promise<{ results: any[]; answer: any }> {
  const queryid = `rq${++qn}`;
  const fields = Object.entries(form).map(([k, v]) => xml("field", { var: k }, xml("value", {}, v)));
  const x = fields.length === 0 ? [] : [xml("x", { xmlns: "jabber:x:data", type: "submit" }, xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, MAM)), ...fields)];
  const rsm = set.length === 0 ? [] : [xml("set", { xmlns: RSM }, ...set)];
  const answer = await iq(o, room, "set", xml("query", { xmlns: MAM, queryid }, ...x, ...rsm));
  const results = o.stanzas.filter((el) => el.is("message") && el.getChild("result", MAM)?.attrs.queryid === queryid);
  for (const r of results) o.stanzas.splice(o.stanzas.indexOf(r), 1);
  return { results, answer };
}
const forwarded = (m: any) => m.getChild("result", MAM).getChild("forwarded", FORWARD).getChild("message");
const bodies = (r: { results: any[] }) => r.results.map((m) => forwarded(m).getChildText("body"));
const fin = (r: { answer: any }) => r.answer.getChild("fin", MAM);
const features = async (o: Online, jid: string) => (await iq(o, jid, "get", xml("query", { xmlns: DISCO_INFO }))).getChild("query").getChildren("feature").map((f: any) => f.attrs.var as string);
const stop = (os: Online[]) => Promise.all(os.map((o) => o.stop()));

test("a room archives its groupchat with a stanza-id by the room; occupants on both workers page through it", { timeout: 40_000 }, async () => {
  const room = `archived@${SERVICE}`;
  const [al, bo] = await usersOn([pair.portA, pair.portB], "alice", "bob");
  try {
    await openRoom(al, room, "Alice");
    await join(bo, room, "Bob");
    const vars = await features(bo, room);
    assert.ok(vars.includes(MAM) && vars.includes(SID), vars.join(" "));
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      await groupchat(i % 2 === 0 ? al : bo, room, `m${i}`);
      const nick = i % 2 === 0 ? "Alice" : "Bob";
      const atBob = await bo.waitFor(bodyFrom(`${room}/${nick}`, `m${i}`), 8000);
      const atAlice = await al.waitFor(bodyFrom(`${room}/${nick}`, `m${i}`), 8000);
      const sid = atBob.getChild("stanza-id", SID);
      assert.equal(sid?.attrs.by, room, `${atBob}`);
      assert.equal(atAlice.getChild("stanza-id", SID).attrs.id, sid.attrs.id, "every occupant gets the same id");
      ids.push(sid.attrs.id);
    }
    // A client's own stanza-id claiming to be the room's is dropped (XEP-0359 §5); a private message is not archived.
    await al.c.send(xml("message", { to: room, type: "groupchat" }, xml("body", {}, "forged"), xml("stanza-id", { xmlns: SID, by: room, id: "forged-id" })));
    const forged = await bo.waitFor(bodyFrom(`${room}/Alice`, "forged"), 8000);
    assert.deepEqual(forged.getChildren("stanza-id", SID).map((s: any) => s.attrs.id).filter((i: string) => i === "forged-id"), []);
    assert.equal(forged.getChildren("stanza-id", SID).length, 1);
    await al.c.send(xml("message", { to: `${room}/Bob`, type: "chat" }, xml("body", {}, "private")));
    const pm = await bo.waitFor(bodyFrom(`${room}/Alice`, "private"), 8000);
    assert.equal(pm.getChild("stanza-id", SID), undefined, "private messages are not the room's archive");

    // The first page (maxPageSize 5), from the room, with the occupant JID as the archived message's from.
    const p1 = await query(bo, room, {}, [xml("max", {}, "100")]);
    assert.equal(p1.answer.attrs.type, "result", `${p1.answer}`);
    assert.equal(p1.answer.attrs.from, room);
    assert.deepEqual(bodies(p1), ["m0", "m1", "m2", "m3", "m4"]);
    assert.ok(p1.results.every((m) => m.attrs.from === room), "results come from the room");
    assert.equal(forwarded(p1.results[1]).attrs.from, `${room}/Bob`);
    assert.equal(forwarded(p1.results[1]).attrs.type, "groupchat");
    assert.equal(forwarded(p1.results[1]).getChild("stanza-id", SID), undefined, "the id is the result's");
    assert.ok(forwarded(p1.results[1]).getChild("occupant-id", "urn:xmpp:occupant-id:0"), "the occupant id is kept");
    assert.deepEqual(p1.results.map((m) => m.getChild("result", MAM).attrs.id), ids.slice(0, 5));
    assert.ok(p1.results[0].getChild("result", MAM).getChild("forwarded", FORWARD).getChild("delay", "urn:xmpp:delay"));
    assert.notEqual(fin(p1).attrs.complete, "true");
    const last = fin(p1).getChild("set", RSM).getChildText("last");
    const p2 = await query(al, room, {}, [xml("after", {}, last)]);
    assert.deepEqual(bodies(p2), ["m5", "m6", "forged"]);
    assert.equal(fin(p2).attrs.complete, "true");
    // Backwards: the last page, then the one before it.
    const back = await query(bo, room, {}, [xml("max", {}, "2"), xml("before")]);
    assert.deepEqual(bodies(back), ["m6", "forged"]);
    const before2 = await query(bo, room, {}, [xml("max", {}, "2"), xml("before", {}, fin(back).getChild("set", RSM).getChildText("first"))]);
    assert.deepEqual(bodies(before2), ["m4", "m5"]);
    // with: one occupant JID; start in the future: nothing; a count (max 0).
    assert.deepEqual(bodies(await query(bo, room, { with: `${room}/Bob` })), ["m1", "m3", "m5"]);
    assert.deepEqual(bodies(await query(bo, room, { start: new Date(Date.now() + 3_600_000).toISOString() })), []);
    const count = await query(bo, room, {}, [xml("max", {}, "0")]);
    assert.equal(fin(count).getChild("set", RSM).getChildText("count"), "8");
    // The form (iq get).
    const form = await iq(bo, room, "get", xml("query", { xmlns: MAM }));
    assert.deepEqual(form.getChild("query", MAM).getChild("x", "jabber:x:data").getChildren("field").map((f: any) => f.attrs.var), ["FORM_TYPE", "with", "start", "end"]);

    // Bad input: clear errors, from the room.
    const unknownId = await query(bo, room, {}, [xml("after", {}, "no-such-id")]);
    assert.equal(errorOf(unknownId.answer), "item-not-found");
    assert.equal((await query(bo, room, { start: "yesterday" })).answer.getChild("error").getChildText("text", "urn:ietf:params:xml:ns:xmpp-stanzas")?.includes("start"), true);
    assert.equal(errorOf((await query(bo, room, { start: "yesterday" })).answer), "bad-request");
    assert.equal(errorOf((await query(bo, room, { "full-text-search": "m1" })).answer), "feature-not-implemented");
    assert.equal(errorOf((await query(bo, room, {}, [xml("index", {}, "3")])).answer), "feature-not-implemented");
    const badType = await iq(bo, room, "set", xml("query", { xmlns: MAM }, xml("x", { xmlns: "jabber:x:data", type: "form" })));
    assert.equal(errorOf(badType), "bad-request");
    assert.equal(errorOf(await iq(bo, room, "get", xml("prefs", { xmlns: MAM }))), "feature-not-implemented");
  } finally {
    await stop([al, bo]);
  }
});

test("who may read: anyone who could join an open room; members of a members-only room; never the banned", { timeout: 40_000 }, async () => {
  const open = `openarch@${SERVICE}`;
  const closed = `closedarch@${SERVICE}`;
  const [al, ca] = await usersOn([pair.portA, pair.portB], "alice", "carol");
  try {
    await openRoom(al, open, "Alice");
    await groupchat(al, open, "hello all");
    await al.waitFor(bodyFrom(`${open}/Alice`, "hello all"), 8000);
    // carol never joined: the open room's archive is hers to read, as the room would be.
    assert.deepEqual(bodies(await query(ca, open)), ["hello all"]);
    assert.equal((await admin(al, open, { affiliation: "outcast", jid: "carol@localhost" })).attrs.type, "result");
    const banned = await query(ca, open);
    assert.equal(errorOf(banned.answer), "forbidden");
    assert.equal(banned.results.length, 0);

    await openRoom(al, closed, "Alice");
    assert.equal((await configure(al, closed, { "muc#roomconfig_membersonly": "1" })).attrs.type, "result");
    await groupchat(al, closed, "members only");
    await al.waitFor(bodyFrom(`${closed}/Alice`, "members only"), 8000);
    assert.equal(errorOf((await query(ca, closed)).answer), "forbidden", "not a member");
    assert.equal((await admin(al, closed, { affiliation: "member", jid: "carol@localhost" })).attrs.type, "result");
    assert.deepEqual(bodies(await query(ca, closed)), ["members only"]);
    // No such room.
    assert.equal(errorOf((await query(ca, `nowhere@${SERVICE}`)).answer), "item-not-found");
  } finally {
    await stop([al, ca]);
  }
});

test("muc#roomconfig_enablelogging off: no features, no ids, no archive; a destroyed room's archive goes", { timeout: 40_000 }, async () => {
  const room = `quiet@${SERVICE}`;
  const [al, bo] = await usersOn([pair.portA, pair.portB], "alice", "dave");
  try {
    await openRoom(al, room, "Alice");
    await join(bo, room, "Dave");
    const form = await iq(al, room, "get", xml("query", { xmlns: MUC_OWNER }));
    const field = form.getChild("query").getChild("x").getChildren("field").find((f: any) => f.attrs.var === "muc#roomconfig_enablelogging");
    assert.equal(field?.getChildText("value"), "1", "archived by default, and the owner is offered the switch");
    await groupchat(al, room, "kept");
    await bo.waitFor(bodyFrom(`${room}/Alice`, "kept"), 8000);
    assert.equal((await configure(al, room, { "muc#roomconfig_enablelogging": "0" })).attrs.type, "result");
    const vars = await features(bo, room);
    assert.ok(!vars.includes(MAM) && !vars.includes(SID), vars.join(" "));
    await groupchat(al, room, "not kept");
    const m = await bo.waitFor(bodyFrom(`${room}/Alice`, "not kept"), 8000);
    assert.equal(m.getChild("stanza-id", SID), undefined);
    assert.equal(errorOf((await query(bo, room)).answer), "service-unavailable");
    // Back on: what was said meanwhile is not there.
    assert.equal((await configure(al, room, { "muc#roomconfig_enablelogging": "1" })).attrs.type, "result");
    assert.deepEqual(bodies(await query(bo, room)), ["kept"]);
    // Destroyed: the archive is removed (after what was queued), so a room made again under the name starts empty.
    const store = pair.a.store.archive;
    assert.equal(await store.count(room), 1);
    assert.equal((await iq(al, room, "set", xml("query", { xmlns: MUC_OWNER }, xml("destroy")))).attrs.type, "result");
    await waitUntil(async () => (await store.count(room)) === 0, 8000, "the destroyed room's archive removed");
    await openRoom(al, room, "Alice");
    assert.deepEqual(bodies(await query(al, room)), []);
  } finally {
    await stop([al, bo]);
  }
});

/** The real JIDs a result's forwarded message carries in <x xmlns=muc#user><item jid/></x> (XEP-0313 §MUC archives). */
const realJids = (m: any) => forwarded(m).getChildren("x", MUC_USER).map((x: any) => x.getChild("item")?.attrs.jid);
const realJidsOf = (r: { results: any[] }) => r.results.map(realJids);

test("real JIDs in a room's archive: every reader's in a non-anonymous room; a moderator's in a semi-anonymous one, judged at query time", { timeout: 60_000 }, async () => {
  const room = `whois@${SERVICE}`;
  const [al, bo, ca] = await usersOn([pair.portA, pair.portB], "alice", "bob", "carol");
  try {
    await openRoom(al, room, "Alice");
    await join(bo, room, "Bob");
    await groupchat(al, room, "from alice");
    await bo.waitFor(bodyFrom(`${room}/Alice`, "from alice"), 8000);
    // A client's own muc#user <x/> claiming a real JID is not the room's word: dropped (XEP-0313, "MUC message spoofing").
    await bo.c.send(xml("message", { to: room, type: "groupchat" }, xml("body", {}, "from bob"), xml("x", { xmlns: MUC_USER }, xml("item", { jid: "dave@localhost/spoof" }))));
    const live = await al.waitFor(bodyFrom(`${room}/Bob`, "from bob"), 8000);
    // XEP-0045 §7.4 gives a groupchat message no real JID, moderators' copies neither: they learn it from presence.
    assert.equal(live.getChild("x", MUC_USER), undefined, `${live}`);
    await bo.waitFor(bodyFrom(`${room}/Bob`, "from bob"), 8000);

    // Semi-anonymous (whois moderators, the default): the owner, a moderator, sees both senders' full JIDs, once each.
    const byOwner = await query(al, room);
    assert.deepEqual(bodies(byOwner), ["from alice", "from bob"]);
    assert.deepEqual(realJidsOf(byOwner), [[al.jid], [bo.jid]]);
    // A participant: only its own messages' (which tell it nothing new).
    assert.deepEqual(realJidsOf(await query(bo, room)), [[], [bo.jid]]);
    // An outsider of this open room reads it, without real JIDs.
    const outsider = await query(ca, room);
    assert.deepEqual(bodies(outsider), ["from alice", "from bob"]);
    assert.deepEqual(realJidsOf(outsider), [[], []]);
    // The asker's role now, not when the message was sent: Bob made a moderator sees Alice's; made a participant again, not.
    assert.equal((await admin(al, room, { nick: "Bob", role: "moderator" })).attrs.type, "result");
    assert.deepEqual(realJidsOf(await query(bo, room)), [[al.jid], [bo.jid]]);
    assert.equal((await admin(al, room, { nick: "Bob", role: "participant" })).attrs.type, "result");
    assert.deepEqual(realJidsOf(await query(bo, room)), [[], [bo.jid]]);

    // Made non-anonymous: every reader sees every kept real JID, the outsider too, also of what was said before.
    assert.equal((await configure(al, room, { "muc#roomconfig_whois": "anyone" })).attrs.type, "result");
    assert.deepEqual(realJidsOf(await query(ca, room)), [[al.jid], [bo.jid]]);
    assert.deepEqual(realJidsOf(await query(bo, room)), [[al.jid], [bo.jid]]);
    // A row kept without a real JID (as before this was kept), with a muc#user <x/> in its text: it shows none.
    assert.equal(
      await pair.a.store.archive.append([{ user: room, id: "old-row", with: room, withResource: "Old", ts: Date.now(), outgoing: false, stanza: `<message xmlns='jabber:client' from='${room}/Old' type='groupchat'><body>old</body><x xmlns='${MUC_USER}'><item jid='dave@localhost/spoof'/></x></message>` }]),
      1,
    );
    const withOld = await query(ca, room);
    assert.deepEqual(bodies(withOld), ["from alice", "from bob", "old"]);
    assert.deepEqual(realJidsOf(withOld), [[al.jid], [bo.jid], []]);
    // Semi-anonymous again: hidden from the outsider at once.
    assert.equal((await configure(al, room, { "muc#roomconfig_whois": "moderators" })).attrs.type, "result");
    assert.deepEqual(realJidsOf(await query(ca, room)), [[], [], []]);
  } finally {
    await stop([al, bo, ca]);
  }
});
