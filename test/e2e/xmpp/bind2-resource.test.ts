import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { client, xml } from "@xmpp/client";
import { startXmppServer, waitUntil, within, type TestServer } from "../../helpers.js";
import { HEADER, Raw, online, pingOk } from "./util.js";

// XEP-0386 §3.2.1: the resource Bind2 makes is the client's tag and a part of the server's, stable for a
// client that gives a XEP-0388 user-agent id (the same account, id and tag: the same full JID on every login),
// random without one. §3.2: a client's new binding ends its own earlier session (here: the same full JID,
// RFC 6120 §7.7.2.2 <conflict/>), and no one else's. SASL2 with its default setting (on).

const SASL2 = "urn:xmpp:sasl:2";
let ts: TestServer;
let tcp: number;

before(async () => {
  ts = await startXmppServer({ xmpp: { allowPlainWithoutTls: true } }, { alice: "a-pass", bob: "b-pass" });
  tcp = ts.port("xmpp", "tcp");
}, { timeout: 15_000 });
after(() => ts.stop());

const plainIr = (u: string, p: string) => Buffer.from(`\u0000${u}\u0000${p}`).toString("base64");

/** A raw stream logged in with SASL2 PLAIN and bound by Bind2 with `tag`; `agent` "": no <user-agent/>. */
async function bind2(user: string, agent: string, tag: string, inBind = ""): Promise<{ r: Raw; jid: string; text: string }> {
  const r = new Raw(tcp);
  await r.ready();
  r.send(HEADER);
  await r.until(/<\/stream:features>/);
  r.text = "";
  const ua = agent === "" ? "" : `<user-agent id='${agent}'><software>raw</software></user-agent>`;
  r.send(`<authenticate xmlns='${SASL2}' mechanism='PLAIN'><initial-response>${plainIr(user, `${user[0]}-pass`)}</initial-response>${ua}<bind xmlns='urn:xmpp:bind:0'><tag>${tag}</tag>${inBind}</bind></authenticate>`);
  // Bound: the features that follow are empty (XEP-0388 §2.6.1, nothing left to negotiate).
  const text = await r.until(/<\/success><stream:features\/>/);
  assert.match(text, /<bound xmlns=["']urn:xmpp:bind:0["']/);
  const jid = text.match(/<authorization-identifier>([^<]+)<\/authorization-identifier>/)![1];
  // What came after the features (in the same read) is the bound session's: kept.
  const end = text.indexOf("<stream:features/>") + "<stream:features/>".length;
  r.text = text.slice(end);
  return { r, jid, text: text.slice(0, end) };
}

/** Logs in, notes the JID, leaves (and waits until the server has let the session go). */
async function jidOf(user: string, agent: string, tag: string): Promise<string> {
  const { r, jid } = await bind2(user, agent, tag);
  r.send("</stream:stream>");
  await r.whenClosed();
  return jid;
}

const serverPart = (jid: string) => jid.slice(jid.indexOf("/", jid.indexOf("/") + 1) + 1);

test("with a user-agent id the full JID is the same on every login; another id, another account, another tag: another; without an id: a new one each time", { timeout: 20_000 }, async () => {
  const a = randomUUID();
  const b = randomUUID();
  const first = await jidOf("alice", a, "phone");
  assert.match(first, /^alice@localhost\/phone\/[A-Za-z0-9_-]{8}$/);
  assert.ok(!first.includes(a), "the user-agent id itself is not in the resource (§3.2.1)");
  assert.equal(await jidOf("alice", a, "phone"), first, "the same client: the same full JID");
  assert.equal(await jidOf("alice", a, "phone"), first, "and again");
  const other = await jidOf("alice", b, "phone");
  assert.match(other, /^alice@localhost\/phone\//);
  assert.notEqual(other, first, "another installation of the same software: another resource");
  const bobs = await jidOf("bob", a, "phone");
  assert.notEqual(serverPart(bobs), serverPart(first), "the server's part differs between accounts for the same id");
  const desk = await jidOf("alice", a, "desk");
  assert.match(desk, /^alice@localhost\/desk\//);
  assert.equal(await jidOf("alice", a, "desk"), desk, "stable for each tag");
  const n1 = await jidOf("alice", "", "phone");
  const n2 = await jidOf("alice", "", "phone");
  assert.match(n1, /^alice@localhost\/phone\/[A-Za-z0-9_-]{8}$/);
  assert.notEqual(n1, n2, "no user-agent id: random");
  assert.ok(![n1, n2].includes(first));
});

test("the same client binding again while its earlier session is still there: that one ends with <conflict/>, another client's session stays", { timeout: 20_000 }, async () => {
  const a = randomUUID();
  const old = await bind2("alice", a, "phone");
  const neighbour = await bind2("alice", randomUUID(), "phone");
  const bob = await online(tcp, "bob", "b-pass", { presence: false });
  try {
    const fresh = await bind2("alice", a, "phone");
    assert.equal(fresh.jid, old.jid);
    await old.r.until(/<stream:error><conflict xmlns=["']urn:ietf:params:xml:ns:xmpp-streams["']/);
    await old.r.whenClosed();
    // The full JID now leads to the new session; the other installation's is untouched.
    await bob.c.send(xml("message", { to: fresh.jid, type: "chat", id: "to-fresh" }, xml("body", {}, "here")));
    await fresh.r.until(/id=["']to-fresh["'][^]*<body>here<\/body>/);
    await pingOk(neighbour.r);
    assert.equal(neighbour.r.closed, false);
    for (const s of [fresh, neighbour]) s.r.destroy();
  } finally {
    old.r.destroy();
    await bob.stop();
  }
});

test("@xmpp/client reconnecting (a new connection, no stream management) is bound to the same full JID", { timeout: 20_000 }, async () => {
  // Its user-agent id is made once per client object (a random UUID) and sent on every login.
  const c = client({ service: `xmpp://127.0.0.1:${tcp}`, domain: "localhost", username: "alice", password: "a-pass", resource: "laptop" });
  c.on("error", () => {});
  c.reconnect.stop();
  try {
    const first = String(await within(c.start(), 10_000, "online"));
    assert.match(first, /^alice@localhost\/laptop\/[A-Za-z0-9_-]{8}$/);
    await c.stop();
    const again = String(await within(c.start(), 10_000, "online again"));
    assert.equal(again, first);
    // And it is reachable there.
    const bob = await online(tcp, "bob", "b-pass", { presence: false });
    try {
      const got = new Promise<any>((r) => c.on("stanza", (el: any) => el.is("message") && r(el)));
      await bob.c.send(xml("message", { to: again, type: "chat" }, xml("body", {}, "back")));
      assert.equal((await within(got, 5000, "message")).getChildText("body"), "back");
    } finally {
      await bob.stop();
    }
  } finally {
    await c.stop().catch(() => {});
  }
});

test("a client that binds again instead of resuming: its suspended session ends, and what that one held unacknowledged comes to the new one once, with <delay/>", { timeout: 20_000 }, async () => {
  const a = randomUUID();
  const SM = "urn:xmpp:sm:3";
  const old = await bind2("alice", a, "phone", `<enable xmlns='${SM}' resume='true'/>`);
  assert.match(old.text, /<enabled xmlns=["']urn:xmpp:sm:3["'] id=["'][^"']+["'] resume=["']true["']/);
  old.r.send("<presence/>");
  const bob = await online(tcp, "bob", "b-pass", { presence: false });
  let fresh: { r: Raw; jid: string } | null = null;
  try {
    await bob.c.send(xml("message", { to: old.jid, type: "chat", id: "held" }, xml("body", {}, "held")));
    await old.r.until(/<body>held<\/body>/);
    // Read, never acknowledged; then the connection is gone: the session waits for a resumption.
    old.r.destroy();
    await waitUntil(() => (ts.server.proxy.sessions.get(old.jid) as { suspended?: boolean } | undefined)?.suspended === true, 5000, "suspended");
    // The app was restarted: no resumption state, the same user-agent id: the same full JID, a new session.
    fresh = await bind2("alice", a, "phone");
    assert.equal(fresh.jid, old.jid);
    await waitUntil(() => (ts.server.proxy.sessions.get(old.jid) as { suspended?: boolean } | undefined)?.suspended !== true, 5000, "the suspended session ended");
    fresh.r.send("<presence/>");
    await fresh.r.until(/<body>held<\/body>/);
    await bob.c.send(xml("message", { to: fresh.jid, type: "chat", id: "after" }, xml("body", {}, "after")));
    const text = await fresh.r.until(/<body>after<\/body>/);
    assert.equal(text.match(/<body>held<\/body>/g)?.length, 1, "once");
    assert.match(text, /id=["']held["'][^]*<delay xmlns=["']urn:xmpp:delay["']/, "sent again, stamped");
  } finally {
    fresh?.r.destroy();
    old.r.destroy();
    await bob.stop();
  }
});
