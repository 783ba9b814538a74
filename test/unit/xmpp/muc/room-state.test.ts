import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "ltx";
import { parseStanza as p } from "../../../../src/xmpp/stream/xml.js";
import { Room, type RoomOut } from "../../../../src/xmpp/muc/room.js";
import { roomFrom, roomText } from "../../../../src/xmpp/muc/room-state.js";
import type { FanoutTarget } from "../../../../src/session/service.js";

// A room's whole state as it moves to its new owner (src/xmpp/muc/room-state.ts): the room made from the text
// behaves as the one that wrote it, and text that is not such a state is refused whole.

const LIMITS = { maxOccupants: 10, historyMessages: 3, maxNickLength: 16, maxPresencePerSecond: 2 };
const JOIN = "<presence><x xmlns='http://jabber.org/protocol/muc'/><show>away</show><status>out</status></presence>";

function outbox() {
  const sent: { from: string; el: Element; to: string[] }[] = [];
  const out: RoomOut = {
    send: (_k, from, el, to: readonly FanoutTarget[]) => void sent.push({ from, el, to: to.map((t) => `${t.address}@@${t.at}`) }),
    changed: () => {},
    gone: () => {},
  };
  return { out, sent };
}

test("a room made from its moved state keeps occupants, roles, places, presence, occupant ids, history, subject, config, affiliations", { timeout: 5000 }, () => {
  const a = outbox();
  const r = new Room("r@conf.x", a.out, LIMITS, "secret-of-w0");
  r.affiliations.set("owner@x", "owner");
  r.affiliations.set("bob@x", "member");
  r.affiliations.set("troll@x", "outcast");
  r.presence(p(JOIN), "owner@x/1", "w0", "O", 1000);
  r.presence(p(JOIN), "bob@x/1", "w1", "Bob", 1000);
  r.config = { ...r.config, name: "Moving", whois: "anyone", moderated: true };
  r.locked = false;
  for (let i = 0; i < 5; i++) r.message(p(`<message type='groupchat'><body>m${i} &amp; é</body></message>`), "owner@x/1", "w0", "", 2000 + i);
  r.message(p("<message type='groupchat'><subject>topic</subject></message>"), "owner@x/1", "w0", "", 3000);
  const ids = [...r.occupants.values()].map((o) => o.id);
  a.sent.length = 0;

  const b = outbox();
  const m = roomFrom(roomText(r), "r@conf.x", b.out, LIMITS)!;
  assert.ok(m);
  assert.deepEqual([...m.occupants.values()].map((o) => [o.nick, o.jid, o.bare, o.at, o.role, o.id, o.shown.toString()]), [...r.occupants.values()].map((o) => [o.nick, o.jid, o.bare, o.at, o.role, o.id, o.shown.toString()]));
  assert.deepEqual([...m.nickOf], [...r.nickOf]);
  assert.deepEqual([...m.affiliations], [...r.affiliations]);
  assert.deepEqual(m.config, r.config);
  assert.deepEqual([m.subject, m.subjectBy, m.locked, m.fresh, m.stored], [r.subject, r.subjectBy, r.locked, r.fresh, r.stored]);
  assert.deepEqual(m.history.map((k) => [k.el.toString(), k.chars, k.at]), r.history.map((k) => [k.el.toString(), k.chars, k.at]));
  // Occupant ids come from the room's key, which moved with it: a newcomer gets the id it would have had there.
  assert.equal(m.occupantId("carol@x"), r.occupantId("carol@x"));
  assert.deepEqual([...m.occupants.values()].map((o) => o.id), ids);
  // It goes on where it was: a message fans out to both occupants at their places, from the sender's nick.
  m.message(p("<message type='groupchat'><body>after</body></message>"), "bob@x/1", "w1", "", 4000);
  assert.deepEqual(b.sent.map((s) => [s.from, s.to.join(",")]), [["r@conf.x/Bob", "owner@x/1@@w0,bob@x/1@@w1"]]);
  // A newcomer gets the history the old room kept (the limit is 3) and the subject.
  b.sent.length = 0;
  m.presence(p(JOIN), "carol@x/1", "w2", "Carol", 5000);
  const toCarol = b.sent.filter((s) => s.to.includes("carol@x/1@@w2") && s.el.name === "message");
  assert.deepEqual(toCarol.map((s) => s.el.getChildText("body") ?? `subject:${s.el.getChildText("subject")}`), ["m3 & é", "m4 & é", "after", "subject:topic"]);
  assert.ok(toCarol.slice(0, 3).every((s) => s.el.getChild("delay")?.attrs.from === "r@conf.x"), "replayed with the room's delay");
  // The banned stay out.
  b.sent.length = 0;
  m.presence(p(JOIN), "troll@x/1", "w2", "T", 5000);
  assert.equal(b.sent[0].el.attrs.type, "error");
});

test("a lower history limit on the new owner keeps the newest; text that is not a moved room is refused whole", { timeout: 5000 }, () => {
  const a = outbox();
  const r = new Room("r@conf.x", a.out, { ...LIMITS, historyMessages: 10 }, "s");
  r.affiliations.set("owner@x", "owner");
  r.presence(p(JOIN), "owner@x/1", "w0", "O", 1000);
  for (let i = 0; i < 6; i++) r.message(p(`<message type='groupchat'><body>m${i}</body></message>`), "owner@x/1", "w0", "", 2000 + i);
  const text = roomText(r);
  const m = roomFrom(text, "r@conf.x", a.out, LIMITS)!;
  assert.deepEqual(m.history.map((k) => k.el.getChildText("body")), ["m3", "m4", "m5"]);
  const bad = (f: (o: any) => void) => {
    const o = JSON.parse(text);
    f(o);
    return roomFrom(JSON.stringify(o), "r@conf.x", a.out, LIMITS);
  };
  assert.equal(roomFrom("not json", "r@conf.x", a.out, LIMITS), null);
  assert.equal(roomFrom("null", "r@conf.x", a.out, LIMITS), null);
  assert.equal(bad((o) => (o.v = 99)), null, "another format version");
  assert.equal(bad((o) => (o.occupants[0][3] = "king")), null, "a role that is not one");
  assert.equal(bad((o) => (o.occupants[0][4] = "<presence")), null, "a presence that does not parse");
  assert.equal(bad((o) => (o.occupants[0][4] = "<message/>")), null, "a presence that is not one");
  assert.equal(bad((o) => o.occupants.push(o.occupants[0])), null, "a nick twice");
  assert.equal(bad((o) => (o.affiliations[0][1] = "god")), null, "an affiliation that is not one");
  assert.equal(bad((o) => (o.history[0][1] = "many")), null, "a history row without its size");
  assert.equal(bad((o) => delete o.idKey), null, "no occupant-id key");
  assert.ok(bad(() => {}), "the same text is fine");
});
