import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import type { Online } from "./util.js";
import { MUC_ADMIN, MUC_OWNER, MUC_USER, SERVICE, admin, bodyFrom, codes, configure, errorOf, groupchat, iq, itemOf, join, openRoom, presenceFrom, startPair, usersOn } from "./muc-util.js";

// XEP-0045 roles, affiliations, configuration and their refusals, with @xmpp/client; occupants on two
// workers of one process (LocalHub).

const USERS = ["alice", "bob", "carol", "dave"];
let pair: Awaited<ReturnType<typeof startPair>>;
let ports: [number, number];

before(async () => {
  pair = await startPair(USERS, { maxPresencePerSecond: 3 });
  ports = [pair.portA, pair.portB];
}, { timeout: 15_000 });

after(() => pair.stop());

const stop = (os: Online[]) => Promise.all(os.map((o) => o.stop()));
const unavailableFrom = (from: string, ...c: number[]) => (el: any) => presenceFrom(from, ...c)(el) && el.attrs.type === "unavailable";
const bare = (o: Online) => o.jid.split("/")[0];

test("kick (307) and ban (301): the banned is refused (403), outcasts listed; a participant may not kick; the last owner stays", { timeout: 30_000 }, async () => {
  const room = `court@${SERVICE}`;
  const [al, bo, ca] = await usersOn(ports, "alice", "bob", "carol");
  try {
    await openRoom(al, room, "Alice");
    await join(bo, room, "Bob");
    await join(ca, room, "Carol");
    const forbidden = await admin(ca, room, { nick: "Alice", role: "none" });
    assert.equal(errorOf(forbidden), "forbidden", "a participant kicks nobody");

    assert.equal((await admin(al, room, { nick: "Bob", role: "none" }, "spam")).attrs.type, "result");
    const kicked = await bo.waitFor(unavailableFrom(`${room}/Bob`, 110, 307));
    assert.equal(itemOf(kicked).getChildText("reason"), "spam");
    assert.equal(itemOf(kicked).getChild("actor")?.attrs.nick, "Alice");
    await ca.waitFor(unavailableFrom(`${room}/Bob`, 307));

    await join(bo, room, "Bob");
    assert.equal((await admin(al, room, { jid: bare(bo), affiliation: "outcast" }, "enough")).attrs.type, "result");
    await bo.waitFor(unavailableFrom(`${room}/Bob`, 110, 301));
    await ca.waitFor(unavailableFrom(`${room}/Bob`, 301));
    assert.equal(errorOf(await join(bo, room, "Bob")), "forbidden");
    const list = await iq(al, room, "get", xml("query", { xmlns: MUC_ADMIN }, xml("item", { affiliation: "outcast" })));
    assert.deepEqual(list.getChild("query").getChildren("item").map((i: any) => i.attrs.jid), [bare(bo)]);
    assert.equal(errorOf(await iq(ca, room, "get", xml("query", { xmlns: MUC_ADMIN }, xml("item", { affiliation: "outcast" })))), "forbidden");

    // §10.9: the room keeps an owner.
    assert.equal(errorOf(await admin(al, room, { jid: bare(al), affiliation: "member" })), "conflict");
    // Making Carol an admin shows her new affiliation and role to the room.
    assert.equal((await admin(al, room, { jid: bare(ca), affiliation: "admin" })).attrs.type, "result");
    const promoted = await ca.waitFor((el) => presenceFrom(`${room}/Carol`, 110)(el) && itemOf(el)?.attrs.affiliation === "admin");
    assert.equal(itemOf(promoted).attrs.role, "moderator");
    // An admin does not touch an owner (§9).
    assert.equal(errorOf(await admin(ca, room, { jid: bare(al), affiliation: "outcast" })), "not-allowed");
    assert.equal(errorOf(await admin(ca, room, { nick: "Alice", role: "none" })), "not-allowed");
  } finally {
    await stop([al, bo, ca]);
  }
});

test("moderated room: a visitor has no voice (403) until a moderator grants it, and loses it again", { timeout: 30_000 }, async () => {
  const room = `stage@${SERVICE}`;
  const [al, bo] = await usersOn(ports, "alice", "bob");
  try {
    await openRoom(al, room, "Alice");
    assert.equal((await configure(al, room, { "muc#roomconfig_moderatedroom": "1" })).attrs.type, "result");
    const self = await join(bo, room, "Bob");
    assert.equal(itemOf(self).attrs.role, "visitor");
    await bo.c.send(xml("message", { to: room, type: "groupchat", id: "v1" }, xml("body", {}, "may I?")));
    assert.equal(errorOf(await bo.waitFor((el) => el.is("message") && el.attrs.id === "v1")), "forbidden");

    assert.equal((await admin(al, room, { nick: "Bob", role: "participant" })).attrs.type, "result");
    await bo.waitFor((el) => presenceFrom(`${room}/Bob`, 110)(el) && itemOf(el)?.attrs.role === "participant");
    await groupchat(bo, room, "thank you");
    await al.waitFor(bodyFrom(`${room}/Bob`, "thank you"));

    const voiced = await iq(al, room, "get", xml("query", { xmlns: MUC_ADMIN }, xml("item", { role: "participant" })));
    assert.deepEqual(voiced.getChild("query").getChildren("item").map((i: any) => i.attrs.nick), ["Bob"]);
    assert.equal((await admin(al, room, { nick: "Bob", role: "visitor" })).attrs.type, "result");
    await bo.waitFor((el) => presenceFrom(`${room}/Bob`, 110)(el) && itemOf(el)?.attrs.role === "visitor");
  } finally {
    await stop([al, bo]);
  }
});

test("members-only rooms (407 until made a member, 321 when no longer) and password rooms (401 without it)", { timeout: 30_000 }, async () => {
  const club = `club@${SERVICE}`;
  const vault = `vault@${SERVICE}`;
  const [al, bo, ca] = await usersOn(ports, "alice", "bob", "carol");
  try {
    await openRoom(al, club, "Alice");
    assert.equal((await configure(al, club, { "muc#roomconfig_membersonly": "1" })).attrs.type, "result");
    assert.equal(errorOf(await join(bo, club, "Bob")), "registration-required");
    assert.equal((await admin(al, club, { jid: bare(bo), affiliation: "member" })).attrs.type, "result");
    const member = await join(bo, club, "Bob");
    assert.equal(itemOf(member).attrs.affiliation, "member");
    assert.equal((await admin(al, club, { jid: bare(bo), affiliation: "none" })).attrs.type, "result");
    await bo.waitFor(unavailableFrom(`${club}/Bob`, 110, 321));

    await openRoom(al, vault, "Alice");
    const set = await configure(al, vault, { "muc#roomconfig_passwordprotectedroom": "1", "muc#roomconfig_roomsecret": "s3cret" });
    assert.equal(set.attrs.type, "result");
    assert.equal(errorOf(await join(ca, vault, "Carol")), "not-authorized");
    assert.equal(errorOf(await join(ca, vault, "Carol", xml("password", {}, "wrong"))), "not-authorized");
    assert.deepEqual(codes(await join(ca, vault, "Carol", xml("password", {}, "s3cret"))), [110]);
    const info = await iq(ca, vault, "get", xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }));
    const features = info.getChild("query").getChildren("feature").map((f: any) => f.attrs.var);
    assert.ok(features.includes("muc_passwordprotected") && features.includes("muc_open"), features.join(" "));
  } finally {
    await stop([al, bo, ca]);
  }
});

test("configuration: the form to owners only; a malformed form is refused and changes nothing; a configured room's <cancel/>; destroy", { timeout: 30_000 }, async () => {
  const room = `forms@${SERVICE}`;
  const [al, bo] = await usersOn(ports, "alice", "bob");
  try {
    await join(al, room, "Alice");
    const form = await iq(al, room, "get", xml("query", { xmlns: MUC_OWNER }));
    const vars = form.getChild("query").getChild("x", "jabber:x:data").getChildren("field").map((f: any) => f.attrs.var);
    for (const v of ["FORM_TYPE", "muc#roomconfig_roomname", "muc#roomconfig_persistentroom", "muc#roomconfig_membersonly", "muc#roomconfig_moderatedroom", "muc#roomconfig_roomsecret", "muc#roomconfig_whois"]) assert.ok(vars.includes(v), v);
    // Configured (not instant): the room opens with its name.
    assert.equal((await configure(al, room, { "muc#roomconfig_roomname": "Forms", "muc#roomconfig_whois": "anyone" })).attrs.type, "result");
    assert.equal(errorOf(await iq(bo, room, "get", xml("query", { xmlns: MUC_OWNER }))), "forbidden");
    const self = await join(bo, room, "Bob");
    assert.deepEqual(codes(self).sort(), [100, 110], "non-anonymous: 100");

    const bads: Record<string, string>[] = [{ "muc#roomconfig_maxusers": "lots" }, { "muc#roomconfig_whois": "everyone" }, { "muc#roomconfig_moderatedroom": "maybe" }, { "muc#roomconfig_passwordprotectedroom": "1" }];
    for (const bad of bads) {
      const r = await configure(al, room, bad);
      assert.equal(errorOf(r), "not-acceptable", JSON.stringify(bad));
      assert.ok(r.getChild("error").getChildText("text", "urn:ietf:params:xml:ns:xmpp-stanzas"), "the refusal says why");
    }
    const wrongType = await iq(al, room, "set", xml("query", { xmlns: MUC_OWNER }, xml("x", { xmlns: "jabber:x:data", type: "submit" }, xml("field", { var: "FORM_TYPE" }, xml("value", {}, "urn:other")))));
    assert.equal(errorOf(wrongType), "not-acceptable");
    assert.equal(errorOf(await iq(al, room, "set", xml("query", { xmlns: MUC_OWNER }, xml("x", { xmlns: "jabber:x:data", type: "result" })))), "bad-request");
    const info = await iq(bo, room, "get", xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }));
    assert.equal(info.getChild("query").getChild("identity").attrs.name, "Forms");
    assert.ok(info.getChild("query").getChildren("feature").some((f: any) => f.attrs.var === "muc_unmoderated"), "nothing of the refused forms applied");
    // A configured room's <cancel/> changes nothing.
    assert.equal((await iq(al, room, "set", xml("query", { xmlns: MUC_OWNER }, xml("x", { xmlns: "jabber:x:data", type: "cancel" })))).attrs.type, "result");
    await groupchat(bo, room, "still here");
    await al.waitFor(bodyFrom(`${room}/Bob`, "still here"));

    const d = await iq(al, room, "set", xml("query", { xmlns: MUC_OWNER }, xml("destroy", { jid: `elsewhere@${SERVICE}` }, xml("reason", {}, "moving"))));
    assert.equal(d.attrs.type, "result");
    const gone = await bo.waitFor((el) => el.is("presence") && el.attrs.from === `${room}/Bob` && el.attrs.type === "unavailable" && el.getChild("x", MUC_USER)?.getChild("destroy") !== undefined);
    assert.equal(gone.getChild("x", MUC_USER).getChild("destroy").attrs.jid, `elsewhere@${SERVICE}`);
    assert.equal(errorOf(await iq(bo, room, "get", xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }))), "item-not-found", "the room is gone");
  } finally {
    await stop([al, bo]);
  }
});

test("a new room's first form cancelled destroys it (§10.1.3)", { timeout: 20_000 }, async () => {
  const room = `never@${SERVICE}`;
  const [al] = await usersOn(ports, "alice");
  try {
    await join(al, room, "Alice");
    assert.equal((await iq(al, room, "set", xml("query", { xmlns: MUC_OWNER }, xml("x", { xmlns: "jabber:x:data", type: "cancel" })))).attrs.type, "result");
    await al.waitFor((el) => el.is("presence") && el.attrs.from === `${room}/Alice` && el.attrs.type === "unavailable");
    assert.equal(errorOf(await iq(al, room, "get", xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }))), "item-not-found");
  } finally {
    await stop([al]);
  }
});

test("bad input: a presence flood, bad history limits, a long nick, bad admin items: a clear error each, and the room goes on", { timeout: 30_000 }, async () => {
  const room = `noisy@${SERVICE}`;
  const [al, bo, ca] = await usersOn(ports, "alice", "bob", "carol");
  try {
    await openRoom(al, room, "Alice");
    await join(bo, room, "Bob");
    await al.waitFor(presenceFrom(`${room}/Bob`));
    al.stanzas.length = 0;
    for (let i = 0; i < 20; i++) await bo.c.send(xml("presence", { to: `${room}/Bob`, id: `f${i}` }, xml("status", {}, `s${i}`)));
    // Bob's own groupchat behind the flood: once it is back, the room has handled all twenty.
    await groupchat(bo, room, "after the flood");
    await al.waitFor(bodyFrom(`${room}/Bob`, "after the flood"));
    await bo.waitFor(bodyFrom(`${room}/Bob`, "after the flood"));
    const refused = bo.stanzas.filter((el) => el.is("presence") && el.attrs.type === "error");
    assert.ok(refused.length >= 1 && refused.every((el) => errorOf(el) === "policy-violation"), `refused: ${refused.length}`);
    const shown = al.stanzas.filter((el) => el.is("presence") && el.attrs.from === `${room}/Bob`).length;
    assert.equal(shown + refused.length, 20, "each presence either shown to the room or refused to its sender");
    assert.ok(shown <= 3 * 4, `at most 3 a second went through (${shown})`);
    // The room and the others go on.
    await groupchat(al, room, "all ears");
    await bo.waitFor(bodyFrom(`${room}/Alice`, "all ears"));
    assert.equal(errorOf(await join(ca, room, "Carol", xml("history", { maxstanzas: "-1" }))), "bad-request");
    assert.equal(errorOf(await join(ca, room, "Carol", xml("history", { since: "yesterday" }))), "bad-request");
    assert.equal(errorOf(await join(ca, room, "C".repeat(65))), "jid-malformed");
    assert.equal(errorOf(await admin(al, room, { nick: "Bob", role: "emperor" })), "bad-request");
    assert.equal(errorOf(await admin(al, room, { nick: "Bob", role: "none", affiliation: "member" })), "bad-request");
    assert.equal(errorOf(await admin(al, room, { jid: "not a jid@@", affiliation: "member" })), "bad-request");
    assert.equal(errorOf(await iq(al, room, "get", xml("query", { xmlns: "urn:example:unknown" }))), "service-unavailable");
    assert.equal(errorOf(await iq(al, room, "set", xml("query", { xmlns: MUC_ADMIN }))), "bad-request");
    await bo.c.send(xml("message", { to: room, type: "chat", id: "c1" }, xml("body", {}, "not groupchat")));
    assert.equal(errorOf(await bo.waitFor((el) => el.is("message") && el.attrs.id === "c1")), "bad-request");
    await groupchat(bo, room, "all well");
    await al.waitFor(bodyFrom(`${room}/Bob`, "all well"));
  } finally {
    await stop([al, bo, ca]);
  }
});

test("XEP-0410 self-ping, XEP-0421 occupant ids, mediated invitations (XEP-0045 §7.8.2) and direct ones (XEP-0249)", { timeout: 30_000 }, async () => {
  const room = `party@${SERVICE}`;
  const [al, bo, ca] = await usersOn(ports, "alice", "bob", "carol");
  try {
    await openRoom(al, room, "Alice");
    const ping = (o: Online, nick: string) => iq(o, `${room}/${nick}`, "get", xml("ping", { xmlns: "urn:xmpp:ping" }));
    assert.equal((await ping(al, "Alice")).attrs.type, "result", "in the room: answered");
    assert.equal(errorOf(await ping(bo, "Alice")), "not-acceptable", "not an occupant: not-acceptable (XEP-0410 §4)");

    const joined = await join(bo, room, "Bob");
    const id1 = joined.getChild("occupant-id", "urn:xmpp:occupant-id:0")?.attrs.id;
    assert.ok(id1);
    await groupchat(bo, room, "with my id");
    const m = await al.waitFor(bodyFrom(`${room}/Bob`, "with my id"));
    assert.equal(m.getChild("occupant-id", "urn:xmpp:occupant-id:0")?.attrs.id, id1);
    await bo.c.send(xml("presence", { to: `${room}/Bob`, type: "unavailable" }));
    await bo.waitFor(unavailableFrom(`${room}/Bob`, 110));
    const again = await join(bo, room, "Robert");
    assert.equal(again.getChild("occupant-id", "urn:xmpp:occupant-id:0")?.attrs.id, id1, "the same user, the same id");

    await al.c.send(xml("message", { to: room }, xml("x", { xmlns: MUC_USER }, xml("invite", { to: bare(ca) }, xml("reason", {}, "come")))));
    const inv = await ca.waitFor((el) => el.is("message") && el.attrs.from === room);
    const invite = inv.getChild("x", MUC_USER).getChild("invite");
    assert.equal(invite.attrs.from, al.jid);
    assert.equal(invite.getChildText("reason"), "come");
    await ca.c.send(xml("message", { to: room }, xml("x", { xmlns: MUC_USER }, xml("decline", { to: al.jid }, xml("reason", {}, "busy")))));
    const dec = await al.waitFor((el) => el.is("message") && el.attrs.from === room && el.getChild("x", MUC_USER)?.getChild("decline") !== undefined);
    assert.equal(dec.getChild("x", MUC_USER).getChild("decline").getChildText("reason"), "busy");

    // XEP-0249: client to client; the server passes it on.
    await al.c.send(xml("message", { to: ca.jid }, xml("x", { xmlns: "jabber:x:conference", jid: room, reason: "direct" })));
    const direct = await ca.waitFor((el) => el.is("message") && el.getChild("x", "jabber:x:conference") !== undefined);
    assert.equal(direct.getChild("x", "jabber:x:conference").attrs.jid, room);
  } finally {
    await stop([al, bo, ca]);
  }
});
