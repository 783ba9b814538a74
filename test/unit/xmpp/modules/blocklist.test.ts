import { test } from "node:test";
import assert from "node:assert/strict";
import { Element } from "ltx";
import { Envelope, Flag, Kind } from "../../../../src/envelope/envelope.js";
import { blockedByNotice, blocks, blocklistPushed, loadBlocklist, refused } from "../../../../src/xmpp/modules/blocklist.js";
import { toWire } from "../../../../src/xmpp/outbound.js";
import { fakeContext, fakeSession, settle } from "./fake-session.js";

const OWN = "alice@localhost";

test("XEP-0191 JID matching: full, bare, domain/resource and domain items; the user and the server never", () => {
  const list = new Set(["bob@localhost", "carol@localhost/phone", "spam.example", "bots.example/x"]);
  const cases: [string, boolean][] = [
    ["bob@localhost", true],
    ["bob@localhost/any", true],
    ["carol@localhost/phone", true],
    ["carol@localhost/desk", false],
    ["carol@localhost", false],
    ["eve@spam.example/r", true],
    ["spam.example", true],
    ["joe@bots.example/x", true],
    ["joe@bots.example/y", false],
    ["dave@localhost/r", false],
    ["", false],
  ];
  for (const [jid, want] of cases) assert.equal(blocks(list, jid, OWN), want, jid);
  // The user's own domain blocked: everyone there, but not the user's own resources.
  const domain = new Set(["localhost", OWN]);
  assert.equal(blocks(domain, "bob@localhost/r", OWN), true);
  assert.equal(blocks(domain, `${OWN}/other`, OWN), false);
  assert.equal(blocks(domain, OWN, OWN), false);
  assert.equal(blocks(new Set(), "bob@localhost", OWN), false);
});

test("read at bind with input held; pushes that arrive during the read go on top; a failed read ends the stream", { timeout: 5000 }, async () => {
  const x = await fakeContext(["alice"]);
  await x.profile.block("alice", ["bob@localhost", "carol@localhost"], 10);
  const s = fakeSession("alice");
  loadBlocklist(x, s);
  assert.equal(s.holds, 1);
  const push = (name: string, ...jids: string[]) => {
    const iq = new Element("iq", { type: "set" });
    const c = iq.c(name, { xmlns: "urn:xmpp:blocking" });
    for (const j of jids) c.c("item", { jid: j });
    return iq;
  };
  blocklistPushed(x, s, push("unblock", "carol@localhost"));
  blocklistPushed(x, s, push("block", "dave@localhost"));
  await settle();
  assert.equal(s.holds, 0);
  assert.deepEqual([...s.blocked!].sort(), ["bob@localhost", "dave@localhost"]);

  const broken = fakeSession("alice", "b");
  const y = { ...x, profile: Object.assign(Object.create(x.profile), { blockingAtLogin: () => Promise.reject(new Error("down")) }) } as typeof x;
  loadBlocklist(y, broken);
  await settle();
  assert.match(String((broken.failed as Error)?.message), /block list unavailable/);
  assert.equal(broken.holds, 0);
});

test("a block push: contacts who saw the user's presence get unavailable from this resource (§3.3); unblock: presence again and a probe", { timeout: 5000 }, async () => {
  const x = await fakeContext(["alice"]);
  const s = fakeSession("alice");
  s.blocked = new Set();
  s.presence = new Element("presence");
  s.roster = new Map([
    ["bob@localhost", { jid: "bob@localhost", name: "", subscription: "both", ask: false, groups: [] }],
    ["carol@localhost", { jid: "carol@localhost", name: "", subscription: "to", ask: false, groups: [] }],
  ]);
  s.directed.add("dave@localhost/r");
  const iq = (name: string, ...jids: string[]) => {
    const el = new Element("iq", { type: "set" });
    const c = el.c(name, { xmlns: "urn:xmpp:blocking" });
    for (const j of jids) c.c("item", { jid: j });
    return el;
  };
  blocklistPushed(x, s, iq("block", "bob@localhost", "carol@localhost", "dave@localhost", "spam.example"));
  await settle();
  const said = () => s.submitted.splice(0).map((e) => `${e.flags & Flag.Probe ? "probe" : ((e.payload as Element | null)?.attrs.type ?? "available")} ${e.from}→${e.to}`);
  assert.deepEqual(said(), ["unavailable alice@localhost/r→bob@localhost", "unavailable alice@localhost/r→dave@localhost/r"], "bob is subscribed, dave was sent directed presence; carol sees nothing of alice");
  assert.equal(s.directed.size, 0, "directed presence to a blocked JID is forgotten");

  blocklistPushed(x, s, iq("unblock", "bob@localhost", "carol@localhost"));
  await settle();
  assert.deepEqual(said(), ["available alice@localhost/r→bob@localhost", "probe alice@localhost/r→bob@localhost", "probe alice@localhost/r→carol@localhost"]);
  assert.deepEqual([...s.blocked!].sort(), ["dave@localhost", "spam.example"]);
  // A domain item reaches the subscribers there; a full-JID item of a subscriber, that resource.
  s.roster.set("eve@bad.example", { jid: "eve@bad.example", name: "", subscription: "from", ask: false, groups: [] });
  blocklistPushed(x, s, iq("block", "bad.example", "bob@localhost/phone"));
  await settle();
  assert.deepEqual(said(), ["unavailable alice@localhost/r→eve@bad.example", "unavailable alice@localhost/r→bob@localhost/phone"]);
  s.available = false;
  blocklistPushed(x, s, iq("block", "bob@localhost"));
  await settle();
  assert.deepEqual(said(), [], "an unavailable resource has nothing to take back");
  blocklistPushed(x, s, iq("unblock"));
  assert.equal(s.blocked!.size, 0, "an empty unblock clears the list");
});

test("refused: what a blocked JID sends is not delivered; a message to this resource is answered <service-unavailable/>", { timeout: 5000 }, async () => {
  const s = fakeSession("alice");
  s.blocked = new Set(["bob@localhost", "localhost"]);
  const msg = (to: string, flags = 0, type = "chat") =>
    Envelope.message({ from: "bob@localhost/r", to, protocol: "xmpp", payload: new Element("message", { type, id: "m1" }).c("body").t("hi").up(), flags, id: "m1" });
  assert.equal(refused(s, msg(s.address)), true);
  assert.equal(refused(s, msg(s.bare)), true);
  assert.equal(refused(s, msg(s.address, Flag.Copy)), true, "a carbon of it too");
  assert.equal(refused(s, msg(s.address, 0, "error")), true);
  assert.equal(refused(s, Envelope.presence({ from: "bob@localhost/r", to: s.bare, protocol: "xmpp", payload: new Element("presence") })), true);
  assert.equal(refused(s, Envelope.request({ from: "bob@localhost/r", to: s.address, protocol: "xmpp", id: "q", payload: new Element("iq", { type: "get" }) })), true);
  assert.equal(refused(s, Envelope.response({ from: "bob@localhost/r", to: s.address, protocol: "xmpp", responseFor: "q", payload: null })), false, "answers to the user's own requests pass");
  assert.equal(refused(s, msg(s.address, Flag.SentCopy)), false, "a copy of what the user sent");
  assert.equal(refused(s, Envelope.message({ from: `${s.bare}/other`, to: s.address, protocol: "xmpp", payload: new Element("message") })), false, "the user's own resources");
  assert.equal(refused(s, Envelope.message({ from: "", to: s.bare, protocol: "xmpp", payload: new Element("iq") })), false, "the server's pushes");
  await settle();
  // Only the chat to this full JID is answered: to the bare JID every resource would answer.
  assert.equal(s.submitted.length, 1);
  const e = s.submitted[0];
  assert.equal(e.kind, Kind.Message);
  assert.equal(e.to, "bob@localhost/r");
  assert.match(String(e.payload), /type="error".*service-unavailable/);
});

test("block list pushes are written only to sessions that asked for the list; roster pushes only to those that asked for the roster", () => {
  const push = (ns: string, name: string) => Envelope.message({ from: "", to: "alice@localhost", protocol: "xmpp", payload: new Element("iq", { type: "set", id: "p" }).c(name, { xmlns: ns }).up(), flags: Flag.EveryResource });
  const block = push("urn:xmpp:blocking", "block");
  const roster = push("jabber:iq:roster", "query");
  const r = (rosterRequested: boolean, blocklistRequested: boolean) => ({ address: "alice@localhost/r", bare: "alice@localhost", rosterRequested, blocklistRequested, wantsCopies: false });
  assert.equal(toWire(r(true, false), block), null);
  assert.match(toWire(r(false, true), block)!, /<block xmlns="urn:xmpp:blocking"/);
  assert.equal(toWire(r(false, true), roster), null);
  assert.match(toWire(r(true, false), roster)!, /jabber:iq:roster/);
});

test("blocked by another user: the presence the core answers to this user's probes is dropped, unavailable passes; unblocked, a probe asks again", { timeout: 5000 }, async () => {
  const x = await fakeContext(["alice", "bob", "carol"]);
  await x.profile.block("bob", ["alice@localhost"], 10);
  await x.profile.block("carol", ["alice@localhost/other"], 10);
  const s = fakeSession("alice");
  loadBlocklist(x, s);
  await settle();
  assert.deepEqual([...s.blockedBy!.keys()].sort(), ["bob@localhost", "carol@localhost"]);
  const presence = (from: string, type?: string) => Envelope.presence({ from, to: s.address, protocol: "xmpp", payload: new Element("presence", type === undefined ? {} : { type }) });
  assert.equal(refused(s, presence("bob@localhost/r")), true, "bob blocked alice's bare JID");
  assert.equal(refused(s, presence("bob@localhost/r", "unavailable")), false, "§3.3's unavailable gets through");
  assert.equal(refused(s, presence("carol@localhost/r")), false, "carol blocked another resource of alice");
  assert.equal(refused(s, presence("dave@localhost/r")), false);

  s.available = true;
  s.roster = new Map([["bob@localhost", { jid: "bob@localhost", name: "", subscription: "both", ask: false, groups: [] }]]);
  blocklistPushed(x, s, blockedByNotice("bob@localhost", "alice@localhost", false));
  await settle();
  assert.equal(refused(s, presence("bob@localhost/r")), false);
  assert.deepEqual(s.submitted.map((e) => `${e.flags & Flag.Probe ? "probe" : "presence"} ${e.from}→${e.to}`), ["probe alice@localhost/r→bob@localhost"]);
  blocklistPushed(x, s, blockedByNotice("bob@localhost", "alice@localhost/r", true));
  assert.equal(refused(s, presence("bob@localhost/r")), true, "a full-JID item naming this resource");
  // A notice is never written to the client.
  const notice = Envelope.message({ from: "", to: s.bare, protocol: "xmpp", payload: blockedByNotice("bob@localhost", "alice@localhost", true), flags: Flag.EveryResource });
  assert.equal(toWire({ address: s.address, bare: s.bare, rosterRequested: true, blocklistRequested: true, wantsCopies: false }, notice), null);
});
