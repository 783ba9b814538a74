import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "ltx";
import { parseStanza as p } from "../../../../src/xmpp/stream/xml.js";
import { Room, nickOf, type RoomOut } from "../../../../src/xmpp/muc/room.js";
import { roomIq } from "../../../../src/xmpp/muc/room-admin.js";
import { historyAsk, historyFor, type Kept } from "../../../../src/xmpp/muc/history.js";
import { applyForm, defaultConfig, FormError } from "../../../../src/xmpp/muc/room-config.js";
import type { FanoutTarget } from "../../../../src/session/service.js";

// The room's logic alone (src/xmpp/muc/): what it sends, to whom, for each stanza; no server.

interface Sent {
  kind: string;
  from: string;
  el: Element;
  to: string[];
}

function room(opts: Partial<{ maxOccupants: number; historyMessages: number; maxNickLength: number; maxPresencePerSecond: number }> = {}) {
  const sent: Sent[] = [];
  let gone = 0;
  let changed = 0;
  const out: RoomOut = {
    send: (kind, from, el, to: readonly FanoutTarget[]) => void sent.push({ kind, from, el, to: to.map((t) => `${t.address}@@${t.at}`) }),
    changed: () => void changed++,
    gone: () => void gone++,
  };
  const r = new Room("r@conf.x", out, { maxOccupants: 10, historyMessages: 3, maxNickLength: 16, maxPresencePerSecond: 2, ...opts }, "secret");
  r.affiliations.set("owner@x", "owner");
  return { r, sent, take: () => sent.splice(0), gone: () => gone, changed: () => changed };
}

const codes = (el: Element) => (el.getChild("x", "http://jabber.org/protocol/muc#user")?.getChildren("status") ?? []).map((s) => Number(s.attrs.code));
const cond = (el: Element) => el.getChild("error")?.getChildElements()[0]?.name;
const JOIN = "<presence><x xmlns='http://jabber.org/protocol/muc'/></presence>";

test("join: the occupants to the newcomer first, then its presence to all (its own with 110 and its JID), then the subject; one fan-out per viewer class", { timeout: 5000 }, () => {
  const { r, take } = room();
  r.presence(p(JOIN), "owner@x/1", "w0", "O", 1000);
  take();
  r.presence(p(JOIN), "bob@x/1", "w1", "Bob", 1000);
  const s = take();
  assert.deepEqual(s.map((x) => [x.kind, x.from, x.to.join(",")]), [
    ["presence", "r@conf.x/O", "bob@x/1@@w1"],
    ["presence", "r@conf.x/Bob", "owner@x/1@@w0"],
    ["presence", "r@conf.x/Bob", "bob@x/1@@w1"],
    ["message", "r@conf.x", "bob@x/1@@w1"],
  ]);
  assert.deepEqual(codes(s[2].el), [110]);
  assert.equal(s[1].el.getChild("x")!.getChild("item")!.attrs.jid, "bob@x/1", "the moderator sees the real JID");
  assert.equal(s[0].el.getChild("x")!.getChild("item")!.attrs.jid, undefined, "the participant does not (semi-anonymous)");
  assert.equal(s[3].el.getChildText("subject"), "", "an empty subject, always");
  // A third occupant: Bob and the moderator are told apart (one payload without the JID, one with).
  r.presence(p(JOIN), "carol@x/1", "w1", "Carol", 1000);
  const t = take().filter((x) => x.from === "r@conf.x/Carol");
  assert.equal(t.length, 3);
});

test("refusals in order: locked, banned, members-only, conflict, full, password; a refused join changes nothing", { timeout: 5000 }, () => {
  const { r, take } = room({ maxOccupants: 2 });
  r.locked = true;
  r.presence(p(JOIN), "bob@x/1", "w1", "Bob", 0);
  assert.equal(cond(take()[0].el), "item-not-found");
  r.locked = false;
  r.affiliations.set("eve@x", "outcast");
  r.presence(p(JOIN), "eve@x/1", "w1", "Eve", 0);
  assert.equal(cond(take()[0].el), "forbidden");
  r.config.membersOnly = true;
  r.presence(p(JOIN), "bob@x/1", "w1", "Bob", 0);
  assert.equal(cond(take()[0].el), "registration-required");
  r.config.membersOnly = false;
  r.presence(p(JOIN), "owner@x/1", "w0", "O", 0);
  r.presence(p(JOIN), "bob@x/1", "w1", "O", 0);
  const conflict = take().pop()!;
  assert.equal(cond(conflict.el), "conflict");
  assert.ok(conflict.el.getChild("x", "http://jabber.org/protocol/muc"), "the error echoes <x/>");
  r.presence(p(JOIN), "bob@x/1", "w1", "Bob", 0);
  r.presence(p(JOIN), "carol@x/1", "w1", "Carol", 0);
  assert.equal(cond(take().pop()!.el), "service-unavailable", "full (2)");
  r.config.password = "pw";
  r.presence(p(JOIN), "owner@x/2", "w0", "O2", 0);
  assert.deepEqual(codes(take().pop()!.el).length, 0, "the subject message came last: the owner entered a full, locked-by-password room");
  assert.equal(r.occupants.size, 3);
});

test("history: maxstanzas, maxchars, seconds, since; the room keeps muc.historyMessages", { timeout: 5000 }, () => {
  const kept: Kept[] = [1, 2, 3, 4].map((i) => ({ el: p(`<message><body>${i}</body></message>`), chars: 100, at: i * 1000 }));
  const bodies = (k: Kept[]) => k.map((x) => x.el.getChildText("body"));
  assert.deepEqual(bodies(historyFor(kept, historyAsk(undefined)!, 5000)), ["1", "2", "3", "4"]);
  assert.deepEqual(bodies(historyFor(kept, historyAsk(p("<history maxstanzas='2'/>"))!, 5000)), ["3", "4"]);
  assert.deepEqual(bodies(historyFor(kept, historyAsk(p("<history maxchars='250'/>"))!, 5000)), ["3", "4"]);
  assert.deepEqual(bodies(historyFor(kept, historyAsk(p("<history seconds='2'/>"))!, 5000)), ["3", "4"]);
  assert.deepEqual(bodies(historyFor(kept, historyAsk(p(`<history since='${new Date(2500).toISOString()}'/>`))!, 5000)), ["3", "4"]);
  assert.deepEqual(bodies(historyFor(kept, historyAsk(p("<history maxstanzas='0'/>"))!, 5000)), []);
  for (const bad of ["<history maxstanzas='x'/>", "<history maxchars='-1'/>", "<history since='soon'/>"]) assert.equal(historyAsk(p(bad)), null, bad);

  const { r, take } = room();
  r.presence(p(JOIN), "owner@x/1", "w0", "O", 0);
  for (let i = 0; i < 5; i++) r.message(p(`<message type='groupchat'><body>m${i}</body></message>`), "owner@x/1", "w0", "", 10_000 + i);
  assert.deepEqual(r.history.map((k) => k.el.getChildText("body")), ["m2", "m3", "m4"]);
  assert.equal(r.history[0].el.getChild("delay", "urn:xmpp:delay")!.attrs.from, "r@conf.x");
  take();
  r.presence(p("<presence><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='1'/></x></presence>"), "bob@x/1", "w1", "Bob", 20_000);
  assert.deepEqual(take().filter((s) => s.el.getChild("body")).map((s) => s.el.getChildText("body")), ["m4"]);
});

test("nicks: NFC and trimmed (210); control characters refused; a nick change is 303 then the new presence", { timeout: 5000 }, () => {
  assert.equal(nickOf(" Zoe\u0301 "), "Zo\u00e9");
  assert.equal(nickOf("\u0007bell"), null);
  assert.equal(nickOf("   "), null);
  const { r, take } = room();
  r.presence(p(JOIN), "owner@x/1", "w0", " O ", 0);
  assert.deepEqual(codes(take().find((s) => s.kind === "presence")!.el).sort(), [110, 210]);
  r.presence(p("<presence/>"), "owner@x/1", "w0", "P", 0);
  const s = take();
  assert.equal(s[0].el.attrs.type, "unavailable");
  assert.deepEqual(codes(s[0].el), [110, 303]);
  assert.equal(s[0].el.getChild("x")!.getChild("item")!.attrs.nick, "P");
  assert.equal(s[1].from, "r@conf.x/P");
  assert.deepEqual([...r.occupants.keys()], ["P"]);
});

test("presence flood: past maxPresencePerSecond in one second, refused with policy-violation and not broadcast", { timeout: 5000 }, () => {
  const { r, take } = room({ maxPresencePerSecond: 2 });
  r.presence(p(JOIN), "owner@x/1", "w0", "O", 0);
  take();
  r.presence(p("<presence><status>a</status></presence>"), "owner@x/1", "w0", "O", 100);
  assert.equal(take().length, 1, "the second in the second: broadcast");
  r.presence(p("<presence><status>b</status></presence>"), "owner@x/1", "w0", "O", 200);
  assert.equal(cond(take()[0].el), "policy-violation");
  r.presence(p("<presence><status>c</status></presence>"), "owner@x/1", "w0", "O", 1200);
  assert.equal(take()[0].el.getChildText("status"), "c", "a new second");
});

test("admin items are checked together: one bad item and none applies; a temporary room ends with its last occupant", { timeout: 5000 }, () => {
  const { r, take, gone } = room();
  r.presence(p(JOIN), "owner@x/1", "w0", "O", 0);
  r.presence(p(JOIN), "bob@x/1", "w1", "Bob", 0);
  take();
  const set = p("<iq type='set'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='Bob' role='none'/><item jid='carol@x' affiliation='king'/></query></iq>");
  const reply = roomIq(r, set, "owner@x/1", "");
  assert.ok("error" in reply);
  assert.equal(r.occupants.size, 2, "Bob was not kicked");
  assert.equal(take().length, 0);
  assert.deepEqual(roomIq(r, p("<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>"), "bob@x/1", "Bob"), { ok: null }, "self-ping");
  r.presence(p("<presence type='unavailable'/>"), "bob@x/1", "w1", "Bob", 0);
  r.presence(p("<presence type='unavailable'/>"), "owner@x/1", "w0", "O", 0);
  assert.equal(gone(), 1);
});

test("the configuration form: fields laid over the current values; a bad value names its field and changes nothing", { timeout: 5000 }, () => {
  const form = (fields: string) => p(`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>${fields}</x>`);
  const c = applyForm(defaultConfig(), form("<field var='muc#roomconfig_roomname'><value>N</value></field><field var='muc#roomconfig_maxusers'><value>5</value></field>"), 10);
  assert.equal(c.name, "N");
  assert.equal(c.maxUsers, 5);
  assert.equal(c.moderated, false, "not given: kept");
  assert.throws(() => applyForm(c, form("<field var='muc#roomconfig_maxusers'><value>11</value></field>"), 10), (e: Error) => e instanceof FormError && /maxusers/.test(e.message));
  assert.throws(() => applyForm(c, form("<field var='muc#roomconfig_roomname'><value>a</value><value>b</value></field>"), 10), /one value/);
  assert.throws(() => applyForm(c, form("<field><value>x</value></field>"), 10), /without var/);
  assert.throws(() => applyForm(c, p("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:other</value></field></x>"), 10), /FORM_TYPE/);
  assert.equal(c.name, "N");
});
