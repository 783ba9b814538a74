import { test } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import { startXmppServer, type TestServer } from "../../helpers.js";
import { online, type Online } from "./util.js";

const USERS = { alice: "a-pass", bob: "b-pass", carol: "c-pass" };

async function withServer(overrides: Record<string, unknown>, f: (ts: TestServer) => Promise<void>, starttls = false): Promise<void> {
  const ts = await startXmppServer(overrides, USERS, starttls);
  try {
    await f(ts);
  } finally {
    await ts.stop();
  }
}

const isIq = (id: string) => (el: any) => el.is("iq") && el.attrs.id === id;

// Both ways of logging in, with a real client: RFC 6120 SASL and bind (the resource asked for), and XEP-0388
// SASL2 with XEP-0386 Bind2, which @xmpp/client uses when offered (the resource is its tag and a part the server
// makes: the peers address the JID the server bound).
for (const [profile, sasl2, resource] of [
  ["RFC 6120 SASL and bind (xmpp.sasl2 off)", false, /^alice@localhost\/phone$/], // RFC 6120 §7.6: the resource asked for
  ["SASL2 and Bind2", true, /^alice@localhost\/phone\/[A-Za-z0-9_-]{8}$/],
] as const) {
  test(`SCRAM-SHA-1 over plain TCP (loopback exempt), ${profile}: login, messages to bare and full JIDs, from stamped`, { timeout: 15_000 }, () =>
    withServer({ xmpp: { sasl2: { enabled: sasl2 } } }, async (ts) => {
      const port = ts.port("xmpp", "tcp");
      const a = await online(port, "alice", "a-pass", { resource: "phone" });
      const b = await online(port, "bob", "b-pass", { resource: "desk" });
      assert.match(a.jid, resource);
      assert.deepEqual([a.auth, b.auth], sasl2 ? ["sasl2", "sasl2"] : ["sasl", "sasl"]);
      await a.c.send(xml("message", { to: "bob@localhost", type: "chat", from: "mallory@localhost/x" }, xml("body", {}, "to bare")));
      const m1 = await b.waitFor((el) => el.is("message"));
      assert.equal(m1.getChildText("body"), "to bare");
      assert.equal(m1.attrs.from, a.jid);
      await a.c.send(xml("message", { to: b.jid, type: "chat" }, xml("body", {}, "to full \u2713")));
      const m2 = await b.waitFor((el) => el.is("message"));
      assert.equal(m2.getChildText("body"), "to full \u2713");
      assert.equal(m2.attrs.to, b.jid);
      await Promise.all([a.stop(), b.stop()]);
    }));
}

test("STARTTLS with the test certificate when encryption is required; direct TLS too", { timeout: 15_000 }, () =>
  withServer(
    { xmpp: { exemptLoopback: false } },
    async (ts) => {
      const a = await online(ts.port("xmpp", "tcp"), "alice", "a-pass", { resource: "starttls" });
      const b = await online(ts.port("xmpp", "tls"), "bob", "b-pass", { resource: "direct", tls: true });
      await a.c.send(xml("message", { to: b.jid, type: "chat" }, xml("body", {}, "over TLS")));
      assert.equal((await b.waitFor((el) => el.is("message"))).getChildText("body"), "over TLS");
      await Promise.all([a.stop(), b.stop()]);
    },
    true,
  ));

test("IQ ids pass through unchanged: the responder sees the id the requester wrote, two requesters may use the same one", { timeout: 15_000 }, () =>
  withServer({}, async (ts) => {
    const port = ts.port("xmpp", "tcp");
    const a = await online(port, "alice", "a-pass", { resource: "a" });
    const c = await online(port, "carol", "c-pass", { resource: "c" });
    const b = await online(port, "bob", "b-pass", { resource: "b" });
    const seen: string[] = [];
    b.c.iqCallee.get("urn:example:echo", "echo", (ctx: any) => {
      seen.push(`${ctx.stanza.attrs.from} ${ctx.stanza.attrs.id}`);
      return xml("echo", { xmlns: "urn:example:echo" }, `${ctx.element.getText()} for ${ctx.stanza.attrs.from}`);
    });
    const ask = (who: Online, text: string) => who.c.send(xml("iq", { type: "get", to: b.jid, id: "same-id" }, xml("echo", { xmlns: "urn:example:echo" }, text)));
    await Promise.all([ask(a, "from alice"), ask(c, "from carol")]);
    const [ra, rc] = await Promise.all([a.waitFor(isIq("same-id")), c.waitFor(isIq("same-id"))]);
    assert.deepEqual(seen.sort(), [`${a.jid} same-id`, `${c.jid} same-id`].sort());
    for (const [r, who] of [[ra, a.jid], [rc, c.jid]] as const) {
      assert.equal(r.attrs.type, "result");
      assert.equal(r.attrs.from, b.jid);
      assert.equal(r.attrs.to, who);
      assert.equal(r.getChild("echo").getText(), `${who === a.jid ? "from alice" : "from carol"} for ${who}`);
    }
    // The client library's own correlation (by id and from) works as with any server.
    const viaCaller = await a.c.iqCaller.request(xml("iq", { type: "get", to: b.jid }, xml("echo", { xmlns: "urn:example:echo" }, "caller")));
    assert.equal(viaCaller.getChild("echo").getText(), `caller for ${a.jid}`);
    // An error answer reaches the requester under its own id too.
    await assert.rejects(a.c.iqCaller.request(xml("iq", { type: "get", to: b.jid }, xml("nope", { xmlns: "urn:example:none" }))), (e: any) => e.condition === "service-unavailable");
    assert.equal(ts.server.proxy.pending.size, 0);
    await Promise.all([a.stop(), b.stop(), c.stop()]);
  }));

test("IQ with no answer in time gets <remote-server-timeout/>; to an offline resource <service-unavailable/> at once", { timeout: 15_000 }, () =>
  withServer({ timeouts: { sweepIntervalMs: 20, xmpp: { minMs: 100, defaultMs: 300, maxMs: 20000 } } }, async (ts) => {
    const port = ts.port("xmpp", "tcp");
    const a = await online(port, "alice", "a-pass", { resource: "a" });
    const b = await online(port, "bob", "b-pass", { resource: "b" });
    b.c.iqCallee.get("urn:example:slow", "slow", () => new Promise(() => {}));
    await a.c.send(xml("iq", { type: "get", to: b.jid, id: "slow-1" }, xml("slow", { xmlns: "urn:example:slow" })));
    const r = await a.waitFor(isIq("slow-1"));
    assert.equal(r.attrs.type, "error");
    assert.ok(r.getChild("error").getChild("remote-server-timeout"), r.toString());
    await a.c.send(xml("iq", { type: "get", to: "bob@localhost/nobody", id: "gone-1" }, xml("slow", { xmlns: "urn:example:slow" })));
    const g = await a.waitFor(isIq("gone-1"));
    assert.ok(g.getChild("error").getChild("service-unavailable"), g.toString());
    await Promise.all([a.stop(), b.stop()]);
  }));

test("server iqs: ping, disco#info, unknown namespace", { timeout: 15_000 }, () =>
  withServer({}, async (ts) => {
    const a = await online(ts.port("xmpp", "tcp"), "alice", "a-pass");
    const pong = await a.c.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    assert.equal(pong.attrs.type, "result");
    const info = await a.c.iqCaller.get(xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }), "localhost");
    const features = info.getChildren("feature").map((f: any) => f.attrs.var);
    assert.ok(features.includes("urn:xmpp:ping"));
    await assert.rejects(a.c.iqCaller.get(xml("query", { xmlns: "jabber:iq:nothing" }), "localhost"), /service-unavailable/);
    await a.stop();
  }));

async function roster(c: Online): Promise<Record<string, string>> {
  const q = await c.c.iqCaller.get(xml("query", { xmlns: "jabber:iq:roster" }));
  return Object.fromEntries(q.getChildren("item").map((i: any) => [i.attrs.jid, i.attrs.subscription + (i.attrs.ask ? "+ask" : "")]));
}

test("roster and subscription: add, subscribe, approve, presence flows, unavailable on disconnect, remove", { timeout: 15_000 }, () =>
  withServer({}, async (ts) => {
    const port = ts.port("xmpp", "tcp");
    const a = await online(port, "alice", "a-pass", { resource: "a" });
    const b = await online(port, "bob", "b-pass", { resource: "b" });
    assert.deepEqual(await roster(a), {});
    assert.deepEqual(await roster(b), {});

    await a.c.iqCaller.set(xml("query", { xmlns: "jabber:iq:roster" }, xml("item", { jid: "bob@localhost", name: "Bob" }, xml("group", {}, "Friends"))));
    const push = await a.waitFor((el) => el.is("iq") && el.attrs.type === "set" && el.getChild("query", "jabber:iq:roster"));
    assert.equal(push.getChild("query").getChild("item").attrs.name, "Bob");

    await a.c.send(xml("presence", { to: "bob@localhost", type: "subscribe" }));
    const req = await b.waitFor((el) => el.is("presence") && el.attrs.type === "subscribe");
    assert.equal(req.attrs.from, "alice@localhost");
    assert.deepEqual(await roster(a), { "bob@localhost": "none+ask" });

    await b.c.send(xml("presence", { to: "alice@localhost", type: "subscribed" }));
    await a.waitFor((el) => el.is("presence") && el.attrs.type === "subscribed" && el.attrs.from === "bob@localhost");
    // Bob's current presence follows the approval.
    await a.waitFor((el) => el.is("presence") && el.attrs.from === b.jid && el.attrs.type === undefined);
    assert.deepEqual(await roster(a), { "bob@localhost": "to" });
    assert.deepEqual(await roster(b), { "alice@localhost": "from" });

    // Bob's later presence reaches Alice; his disconnect makes him unavailable to her.
    await b.c.send(xml("presence", {}, xml("show", {}, "away")));
    const away = await a.waitFor((el) => el.is("presence") && el.getChildText("show") === "away");
    assert.equal(away.attrs.from, b.jid);
    await b.stop();
    await a.waitFor((el) => el.is("presence") && el.attrs.type === "unavailable" && el.attrs.from === b.jid);

    // Alice logs in again elsewhere: her probe brings nothing (Bob offline) but the roster persisted.
    const a2 = await online(port, "alice", "a-pass", { resource: "a2" });
    assert.deepEqual(await roster(a2), { "bob@localhost": "to" });
    await a2.c.iqCaller.set(xml("query", { xmlns: "jabber:iq:roster" }, xml("item", { jid: "bob@localhost", subscription: "remove" })));
    assert.deepEqual(await roster(a2), {});
    await Promise.all([a.stop(), a2.stop()]);
  }));

test("offline messages: stored while away, delivered at the next initial presence; a full queue answers the sender", { timeout: 15_000 }, () =>
  withServer({ xmpp: { offlineQueueMax: 2 } }, async (ts) => {
    const port = ts.port("xmpp", "tcp");
    const a = await online(port, "alice", "a-pass", { resource: "a" });
    for (let i = 1; i <= 3; i++) await a.c.send(xml("message", { to: "carol@localhost", type: "chat", id: `off-${i}` }, xml("body", {}, `note ${i}`)));
    const err = await a.waitFor((el) => el.is("message") && el.attrs.type === "error");
    assert.equal(err.attrs.id, "off-3");
    assert.ok(err.getChild("error").getChild("resource-constraint"), err.toString());
    // A user that does not exist: service-unavailable.
    await a.c.send(xml("message", { to: "nobody@localhost", type: "chat", id: "nx" }, xml("body", {}, "?")));
    const nx = await a.waitFor((el) => el.is("message") && el.attrs.id === "nx");
    assert.ok(nx.getChild("error").getChild("service-unavailable"));

    const c = await online(port, "carol", "c-pass", { resource: "c" });
    const first = await c.waitFor((el) => el.is("message") && el.getChildText("body") === "note 1");
    assert.equal(first.attrs.from, a.jid);
    assert.ok(first.getChild("delay", "urn:xmpp:delay"));
    await c.waitFor((el) => el.is("message") && el.getChildText("body") === "note 2");
    await Promise.all([a.stop(), c.stop()]);
  }));
