import { test } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import { startXmppServer, type TestServer } from "../../helpers.js";
import { online } from "./util.js";

// RFC 6121 delivery rules that every other server keeps, each with a real client (@xmpp/client).

const USERS = { alice: "a-pass", bob: "b-pass" };

async function withServer(f: (ts: TestServer) => Promise<void>): Promise<void> {
  const ts = await startXmppServer({}, USERS);
  try {
    await f(ts);
  } finally {
    await ts.stop();
  }
}

const errorOf = (el: any) => el.getChild("error")?.getChildElements()[0]?.name;

test("groupchat to a bare JID reaches no resource and the sender gets <service-unavailable/> (RFC 6121 §8.5.2.1.1)", { timeout: 30_000 }, () =>
  withServer(async (ts) => {
    const port = ts.port("xmpp", "tcp");
    const a = await online(port, "alice", "a-pass", { resource: "a" });
    const b1 = await online(port, "bob", "b-pass", { resource: "b1" });
    const b2 = await online(port, "bob", "b-pass", { resource: "b2" });
    await a.c.send(xml("message", { to: "bob@localhost", type: "groupchat", id: "gc-bare" }, xml("body", {}, "not for you")));
    const err = await a.waitFor((el) => el.is("message") && el.attrs.id === "gc-bare");
    assert.equal(err.attrs.type, "error");
    assert.equal(err.attrs.from, "bob@localhost");
    assert.equal(errorOf(err), "service-unavailable");

    // To an online full JID it is delivered; to a resource that is not online, an error (§8.5.3.2.1).
    await a.c.send(xml("message", { to: b1.jid, type: "groupchat", id: "gc-full" }, xml("body", {}, "for b1")));
    await a.c.send(xml("message", { to: "bob@localhost/gone", type: "groupchat", id: "gc-gone" }, xml("body", {}, "for nobody")));
    const gone = await a.waitFor((el) => el.is("message") && el.attrs.id === "gc-gone");
    assert.equal(errorOf(gone), "service-unavailable");
    // Then a chat to the bare JID: the first message each resource got shows what the groupchat did.
    await a.c.send(xml("message", { to: "bob@localhost", type: "chat", id: "chat" }, xml("body", {}, "hello")));
    const first1 = await b1.waitFor((el) => el.is("message"));
    assert.equal(first1.attrs.id, "gc-full");
    assert.equal((await b1.waitFor((el) => el.is("message"))).attrs.id, "chat");
    assert.equal((await b2.waitFor((el) => el.is("message"))).attrs.id, "chat", "b2 got no groupchat");
    assert.equal(ts.server.proxy.stats.bounced, 1, "the one to the offline resource went back through the core");
    await Promise.all([a.stop(), b1.stop(), b2.stop()]);
  }));

const isPush = (el: any) => el.is("iq") && el.attrs.type === "set" && el.getChild("query", "jabber:iq:roster") !== undefined;

test("a roster set by one resource pushes to every resource that fetched the roster, available or not (RFC 6121 §2.1.6)", { timeout: 30_000 }, () =>
  withServer(async (ts) => {
    const port = ts.port("xmpp", "tcp");
    const b1 = await online(port, "bob", "b-pass", { resource: "b1" });
    // b2 fetched the roster but sent no presence; b3 sent presence but never fetched the roster.
    const b2 = await online(port, "bob", "b-pass", { resource: "b2", presence: false });
    const b3 = await online(port, "bob", "b-pass", { resource: "b3" });
    for (const b of [b1, b2]) await b.c.iqCaller.get(xml("query", { xmlns: "jabber:iq:roster" }));
    await b1.c.iqCaller.set(xml("query", { xmlns: "jabber:iq:roster" }, xml("item", { jid: "alice@localhost", name: "Alice" })));
    for (const b of [b1, b2]) {
      const push = await b.waitFor(isPush);
      const item = push.getChild("query").getChild("item");
      assert.deepEqual([item.attrs.jid, item.attrs.name, item.attrs.subscription], ["alice@localhost", "Alice", "none"]);
      assert.equal(push.attrs.to, b.jid);
      assert.ok(push.attrs.from === undefined || push.attrs.from === "bob@localhost", push.toString());
    }
    // b3 is not interested: the next thing it gets is this message, not a push.
    const a = await online(port, "alice", "a-pass", { resource: "a" });
    await a.c.send(xml("message", { to: b3.jid, type: "chat", id: "after" }, xml("body", {}, "x")));
    const next = await b3.waitFor((el) => el.is("message") || isPush(el));
    assert.equal(next.attrs.id, "after");
    // A removal pushes too, from another resource.
    await b2.c.iqCaller.set(xml("query", { xmlns: "jabber:iq:roster" }, xml("item", { jid: "alice@localhost", subscription: "remove" })));
    for (const b of [b1, b2]) assert.equal((await b.waitFor(isPush)).getChild("query").getChild("item").attrs.subscription, "remove");
    await Promise.all([a.stop(), b1.stop(), b2.stop(), b3.stop()]);
  }));
