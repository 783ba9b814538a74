import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import { startXmppServer, type TestServer } from "../../helpers.js";
import { online, type Online } from "./util.js";

// XEP-0280 Message Carbons on a real server with @xmpp/client: alice on three
// resources (phone and desk enable carbons, legacy does not), bob her contact.
// "Not copied" is checked against a later stanza on the same path that must
// arrive: everything written before it is in `stanzas` by then.

const CARBONS = "urn:xmpp:carbons:2";
const FORWARD = "urn:xmpp:forward:0";

let ts: TestServer;
let phone: Online, desk: Online, legacy: Online, bob: Online;

before(async () => {
  ts = await startXmppServer({}, { alice: "a-pass", bob: "b-pass", carol: "c-pass" });
  const port = ts.port("xmpp", "tcp");
  phone = await online(port, "alice", "a-pass", { resource: "phone" });
  desk = await online(port, "alice", "a-pass", { resource: "desk" });
  legacy = await online(port, "alice", "a-pass", { resource: "legacy" });
  bob = await online(port, "bob", "b-pass", { resource: "b" });
}, { timeout: 15_000 });
after(async () => {
  await Promise.all([phone, desk, legacy, bob].map((c) => c?.stop()));
  await ts.stop();
});

/** The forwarded message of a carbon in direction `dir`, or null. */
function carbon(el: any, dir: "sent" | "received"): any {
  return el.is("message") ? (el.getChild(dir, CARBONS)?.getChild("forwarded", FORWARD)?.getChild("message") ?? null) : null;
}
const isCarbonOf = (dir: "sent" | "received", id: string) => (el: any) => carbon(el, dir)?.attrs.id === id;
const isMsg = (id: string) => (el: any) => el.is("message") && el.attrs.id === id;
const chat = (to: string, id: string, ...extra: any[]) => xml("message", { to, id, type: "chat" }, xml("body", {}, `text of ${id}`), ...extra);
const anyCarbon = (c: Online) => c.stanzas.filter((el) => carbon(el, "sent") || carbon(el, "received")).map(String);

test("the server advertises carbons; enable to the server and to the own bare JID", { timeout: 10_000 }, async () => {
  const info = await phone.c.iqCaller.get(xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }), "localhost");
  assert.ok(info.getChildren("feature").some((f: any) => f.attrs.var === CARBONS));
  await phone.c.iqCaller.set(xml("enable", { xmlns: CARBONS }), "localhost");
  await desk.c.iqCaller.set(xml("enable", { xmlns: CARBONS }), "alice@localhost");
  await assert.rejects(desk.c.iqCaller.set(xml("other", { xmlns: CARBONS }), "localhost"), /bad-request/);
});

test("received carbon: bob to alice/phone reaches desk wrapped, from alice's bare JID", { timeout: 10_000 }, async () => {
  await bob.c.send(chat(phone.jid, "r1"));
  const direct = await phone.waitFor(isMsg("r1"));
  assert.equal(direct.attrs.from, bob.jid);
  const copy = await desk.waitFor(isCarbonOf("received", "r1"));
  assert.equal(copy.attrs.from, "alice@localhost");
  assert.equal(copy.attrs.to, desk.jid);
  const inner = carbon(copy, "received");
  assert.equal(inner.attrs.from, bob.jid);
  assert.equal(inner.attrs.to, phone.jid);
  assert.equal(inner.attrs.xmlns, "jabber:client");
  assert.equal(inner.getChildText("body"), "text of r1");
});

test("sent carbon: alice/phone to bob reaches desk, not phone itself", { timeout: 10_000 }, async () => {
  await phone.c.send(chat("bob@localhost", "s1"));
  await bob.waitFor(isMsg("s1"));
  const copy = await desk.waitFor(isCarbonOf("sent", "s1"));
  assert.equal(copy.attrs.from, "alice@localhost");
  const inner = carbon(copy, "sent");
  assert.equal(inner.attrs.from, phone.jid);
  assert.equal(inner.attrs.to, "bob@localhost");
  // A chat state without a body is a chat message: copied too (§6).
  await phone.c.send(xml("message", { to: "bob@localhost", id: "s2", type: "chat" }, xml("composing", { xmlns: "http://jabber.org/protocol/chatstates" })));
  await desk.waitFor(isCarbonOf("sent", "s2"));
  // Phone's own stream is caught up once bob's answer arrives after both.
  await bob.c.send(chat(phone.jid, "s-barrier"));
  await phone.waitFor(isMsg("s-barrier"));
  await desk.waitFor(isCarbonOf("received", "s-barrier"));
  assert.deepEqual(anyCarbon(phone), []);
});

test("<private/>, <no-copy/>, headline, normal without body: not copied; <private/> is stripped", { timeout: 10_000 }, async () => {
  await bob.c.send(chat(phone.jid, "p1", xml("private", { xmlns: CARBONS })));
  const got = await phone.waitFor(isMsg("p1"));
  assert.equal(got.getChild("private", CARBONS), undefined, got.toString());
  assert.equal(got.getChildText("body"), "text of p1");
  await bob.c.send(chat(phone.jid, "n1", xml("no-copy", { xmlns: "urn:xmpp:hints" })));
  await phone.waitFor(isMsg("n1"));
  await bob.c.send(xml("message", { to: phone.jid, id: "h1", type: "headline" }, xml("body", {}, "news")));
  await bob.c.send(xml("message", { to: phone.jid, id: "e1" }, xml("x", { xmlns: "urn:example" })));
  await phone.c.send(chat("bob@localhost", "p2", xml("private", { xmlns: CARBONS })));
  const atBob = await bob.waitFor(isMsg("p2"));
  assert.equal(atBob.getChild("private", CARBONS), undefined, atBob.toString());
  await phone.c.send(chat("bob@localhost", "n2", xml("no-copy", { xmlns: "urn:xmpp:hints" })));
  await bob.waitFor(isMsg("n2"));
  // Barriers: copies of later messages on the same paths arrive.
  await bob.c.send(chat(phone.jid, "r2"));
  await desk.waitFor(isCarbonOf("received", "r2"));
  await phone.c.send(chat("bob@localhost", "s3"));
  await desk.waitFor(isCarbonOf("sent", "s3"));
  assert.deepEqual(anyCarbon(desk), []);
});

test("a resource that did not enable gets no carbons; a message to the bare JID reaches each resource once", { timeout: 10_000 }, async () => {
  await bob.c.send(chat("alice@localhost", "b1"));
  for (const c of [phone, desk, legacy]) await c.waitFor(isMsg("b1"));
  await bob.c.send(chat(legacy.jid, "l1"));
  await legacy.waitFor(isMsg("l1"));
  // The legacy resource's received message is copied to the others, though it did not enable carbons itself.
  await desk.waitFor(isCarbonOf("received", "l1"));
  await phone.waitFor(isCarbonOf("received", "l1"));
  // And what it sends (§8: whether or not the sender enabled carbons).
  await legacy.c.send(chat("bob@localhost", "l2"));
  await bob.waitFor(isMsg("l2"));
  await desk.waitFor(isCarbonOf("sent", "l2"));
  await phone.waitFor(isCarbonOf("sent", "l2"));
  assert.deepEqual(anyCarbon(legacy), []);
  for (const c of [phone, desk, legacy]) assert.equal(c.stanzas.filter((el) => isMsg("b1")(el) || isCarbonOf("received", "b1")(el)).length, 0);
});

test("to the bare JID: resources outside RFC 6121's targets that enabled carbons get one <received/> copy, the targets none", { timeout: 10_000 }, async () => {
  const port = ts.port("xmpp", "tcp");
  // Bound without initial presence (not available), and available with a negative priority: neither takes bare-JID chat (§8.5.2.1.1).
  const shy = await online(port, "alice", "a-pass", { resource: "shy", presence: false });
  const low = await online(port, "alice", "a-pass", { resource: "low", presence: false });
  try {
    await low.c.send(xml("presence", {}, xml("priority", {}, "-1")));
    for (const c of [shy, low]) await c.c.iqCaller.set(xml("enable", { xmlns: CARBONS }));
    await bob.c.send(chat("alice@localhost", "b2"));
    for (const c of [phone, desk, legacy]) await c.waitFor(isMsg("b2"));
    for (const c of [shy, low]) {
      const copy = await c.waitFor(isCarbonOf("received", "b2"));
      assert.equal(copy.attrs.from, "alice@localhost");
      assert.equal(copy.attrs.to, c.jid);
      assert.equal(copy.attrs.type, "chat");
      const inner = carbon(copy, "received");
      assert.equal(inner.attrs.to, "alice@localhost", "the original was addressed to the bare JID");
      assert.equal(inner.attrs.from, bob.jid);
    }
    // A message to an offline resource goes as to the bare JID (RFC 6121 §8.5.3.2.1): copied the same way.
    await bob.c.send(chat("alice@localhost/gone", "b3"));
    for (const c of [phone, desk, legacy]) await c.waitFor(isMsg("b3"));
    for (const c of [shy, low]) assert.equal(carbon(await c.waitFor(isCarbonOf("received", "b3")), "received").attrs.to, "alice@localhost/gone");
    // Barrier: a later copy on the same path has arrived at each; nothing else of b2 or b3 came before it.
    await bob.c.send(chat(legacy.jid, "b-barrier"));
    for (const c of [phone, desk, shy, low]) await c.waitFor(isCarbonOf("received", "b-barrier"));
    const extra = (c: Online) => c.stanzas.filter((el) => /^b[23]$/.test(el.attrs.id ?? "") || /^b[23]$/.test(carbon(el, "received")?.attrs.id ?? ""));
    for (const c of [phone, desk, legacy, shy, low]) assert.deepEqual(extra(c).map(String), [], c.jid);
  } finally {
    await Promise.all([shy.stop(), low.stop()]);
  }
});

test("no copy is made while no other resource of the user wants one", { timeout: 10_000 }, async () => {
  const port = ts.port("xmpp", "tcp");
  const x = await online(port, "carol", "c-pass", { resource: "x" });
  const y = await online(port, "carol", "c-pass", { resource: "y" });
  try {
    const stats = ts.server.proxy.stats;
    const made = stats.copies;
    // x's own carbons are not "another resource" for what x sends or receives.
    await x.c.iqCaller.set(xml("enable", { xmlns: CARBONS }));
    await bob.c.send(chat(x.jid, "c1"));
    await x.waitFor(isMsg("c1"));
    await x.c.send(chat("bob@localhost", "c2"));
    await bob.waitFor(isMsg("c2"));
    await bob.c.send(chat("carol@localhost", "c3"));
    await x.waitFor(isMsg("c3"));
    await y.waitFor(isMsg("c3"));
    assert.equal(stats.copies, made, "no copy envelope was made");
    // What y receives or sends, x wants: one copy each.
    await bob.c.send(chat(y.jid, "c4"));
    await x.waitFor(isCarbonOf("received", "c4"));
    await y.c.send(chat("bob@localhost", "c5"));
    await x.waitFor(isCarbonOf("sent", "c5"));
    assert.equal(stats.copies, made + 2);
    assert.deepEqual(anyCarbon(y), []);
  } finally {
    await Promise.all([x.stop(), y.stop()]);
  }
});

test("disable stops them", { timeout: 10_000 }, async () => {
  await desk.c.iqCaller.set(xml("disable", { xmlns: CARBONS }));
  // Whatever was written to desk before the result is behind us.
  desk.stanzas.length = 0;
  await bob.c.send(chat(phone.jid, "r3"));
  await phone.c.send(chat("bob@localhost", "s4"));
  await bob.waitFor(isMsg("s4"));
  await bob.c.send(chat(desk.jid, "d1"));
  await desk.waitFor(isMsg("d1"));
  // Phone still takes carbons: the copy of desk's message.
  await phone.waitFor(isCarbonOf("received", "d1"));
  assert.deepEqual(anyCarbon(desk), []);
});
