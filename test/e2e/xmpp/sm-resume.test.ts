import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { client, xml } from "@xmpp/client";
import { startXmppServer, waitUntil, within, type TestServer } from "../../helpers.js";
import { Raw, online, rawAuth as rawAuthAt, rawLogin, rawResumable, chatTo as msg, bodiesIn as bodies, pingOk } from "./util.js";

// XEP-0198 resumption on one worker, real server: raw sockets for the exact
// elements and the failures, @xmpp/client for a client that resumes by itself.
// The window is 2 s here so its passing can be awaited (by its effect, the
// offline store growing, never by a sleep).

let ts: TestServer;
let port: number;
const SM = "urn:xmpp:sm:3";

before(async () => {
  ts = await startXmppServer(
    { xmpp: { allowPlainWithoutTls: true, sm: { ackEveryStanzas: 0, ackEveryMs: 0, maxUnacked: 100, resumeTimeoutMs: 2000 } } },
    { alice: "a-pass", bob: "b-pass", carol: "c-pass", dave: "d-pass", erin: "e-pass", frank: "f-pass" },
  );
  port = ts.port("xmpp", "tcp");
}, { timeout: 15_000 });
after(() => ts.stop());

/** Bound, stream management enabled with resumption: the raw client and its id. */
const resumable = (user: string, password: string, resource: string) => rawResumable(port, user, password, resource);

/** Authenticated, stream restarted, features read: where a client binds or resumes. */
const rawAuth = (user: string, password: string): Promise<Raw> => rawAuthAt(port, user, password);

/** The server has seen the connection drop and the session waits for its client (a resume earlier is refused as a second one). */
const suspended = (address: string) =>
  waitUntil(() => (ts.server.proxy.sessions.get(address) as { suspended?: boolean } | undefined)?.suspended === true, 5000, `${address} suspended`);


test("a dropped connection is resumed: <resumed h previd/>, the unacknowledged stanzas again in order, the same full JID", { timeout: 15_000 }, async () => {
  const { r: a1, id } = await resumable("alice", "a-pass", "phone");
  const bob = await rawLogin(port, "bob", "b-pass", "desk");
  try {
    // Alice handles one stanza (her ping) and receives three messages, acknowledging the first only.
    await pingOk(a1);
    for (let i = 0; i < 3; i++) bob.send(msg("alice@localhost/phone", i));
    await a1.until(/<body>2<\/body>/);
    a1.send(`<a xmlns='${SM}' h='2'/>`); // the ping's result and message 0
    // Her stream is in order: once this answer is back, the server has the <a/> (and counts a second handled stanza).
    await pingOk(a1);
    a1.destroy();
    await suspended("alice@localhost/phone");
    // While she is away bob keeps sending; the core still has her full JID, so these are queued, not stored.
    for (let i = 3; i < 5; i++) bob.send(msg("alice@localhost/phone", i));
    await pingOk(bob);
    const a2 = await rawAuth("alice", "a-pass");
    try {
      // Sent before the drop: result, m0, m1, m2, result; she says she handled result, m0 and m1.
      a2.send(`<resume xmlns='${SM}' previd='${id}' h='3'/>`);
      const text = await a2.until(/<body>4<\/body>/);
      // The server handled her two pings.
      assert.match(text, new RegExp(`<resumed xmlns=["']urn:xmpp:sm:3["'] h=["']2["'] previd=["']${id}["']\\/>`));
      assert.ok(text.indexOf("<resumed") < text.indexOf("<body>"), "resumed comes first");
      assert.deepEqual(bodies(text), ["2", "3", "4"], "exactly the unacknowledged ones, once, in order");
      // The same session: the same full JID, counters going on (two handled before, one more now).
      assert.match(await pingOk(a2), /to=["']alice@localhost\/phone["']/);
      a2.send(`<r xmlns='${SM}'/>`);
      assert.match(await a2.until(/<a [^>]*\/>/), /h=["']3["']/);
      bob.send(msg("alice@localhost/phone", 5));
      await a2.until(/<body>5<\/body>/);
      // Everything acknowledged before the clean close (5 before the drop, 2 while away, the result, m5):
      // nothing is left for offline storage. Acknowledging one more than that would be an error (§6).
      const stored = ts.server.metrics.offlineStored;
      a2.send(`<a xmlns='${SM}' h='9'/>`);
      await pingOk(a2);
      a2.send("</stream:stream>");
      await a2.whenClosed();
      assert.equal(ts.server.metrics.offlineStored, stored);
    } finally {
      a2.destroy();
    }
  } finally {
    bob.destroy();
  }
});

test("resume failures: unknown id, another account's id, h too high; none leaks the session; a resume of a live stream takes it over", { timeout: 20_000 }, async () => {
  const { r: a1, id } = await resumable("alice", "a-pass", "tablet");
  a1.destroy();
  await suspended("alice@localhost/tablet");
  const tries: [string, string, string, RegExp][] = [
    ["alice", "a-pass", `previd='nope' h='0'`, /<failed xmlns=["']urn:xmpp:sm:3["']><item-not-found /],
    ["bob", "b-pass", `previd='${id}' h='0'`, /<failed xmlns=["']urn:xmpp:sm:3["']><item-not-found /],
    ["alice", "a-pass", `previd='${id}' h='5'`, /<failed xmlns=["']urn:xmpp:sm:3["'] h=["']0["']><unexpected-request [^>]*\/><handled-count-too-high [^>]*h=["']5["'] send-count=["']0["']\/>/],
  ];
  for (const [user, pass, attrs, expect] of tries) {
    const r = await rawAuth(user, pass);
    r.send(`<resume xmlns='${SM}' ${attrs}/>`);
    assert.match(await r.until(/<\/failed>/), expect);
    // The stream goes on: the client may bind instead (§5).
    r.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
    assert.match(await r.until(/<\/iq>/), new RegExp(`<jid>${user}@localhost/`));
    r.destroy();
  }
  // After all that, alice's own resume still works, once.
  const a2 = await rawAuth("alice", "a-pass");
  a2.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
  await a2.until(/<resumed /);
  // A resume of a session whose stream is still up takes it over (a phone back from another network before the
  // server noticed): the older connection is closed, and the session is never on two streams.
  const a3 = await rawAuth("alice", "a-pass");
  a3.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
  await a3.until(/<resumed /);
  await a2.whenClosed();
  assert.match(await pingOk(a3), /to=["']alice@localhost\/tablet["']/, "the same session on the newest stream");
  a3.send("</stream:stream>");
  await a3.whenClosed();
});

test("the window passes: contacts get unavailable, requests to it fail, unacknowledged chat messages go to offline storage with <delay/>", { timeout: 20_000 }, async () => {
  const { r: c1 } = await resumable("carol", "c-pass", "old");
  const bob = await rawLogin(port, "bob", "b-pass", "w");
  try {
    // Directed presence: bob is told when carol's session goes (RFC 6121 §4.6.3).
    c1.send("<presence/><presence to='bob@localhost/w'/>");
    await bob.until(/<presence [^>]*from=["']carol@localhost\/old["']/);
    bob.text = "";
    bob.send(msg("carol@localhost/old", "seen"));
    await c1.until(/<body>seen<\/body>/);
    c1.destroy();
    bob.send(msg("carol@localhost/old", "away"));
    bob.send("<message to='carol@localhost/old' type='headline' id='h1'><body>headline</body></message>");
    // A request to the suspended session waits with it, and fails when the window passes.
    bob.send("<iq type='get' id='q1' to='carol@localhost/old'><query xmlns='urn:example:q'/></iq>");
    const stored = ts.server.metrics.offlineStored;
    await pingOk(bob);
    assert.doesNotMatch(bob.text, /unavailable|id=["']q1["']/, "still there while the window is open");
    // Both chat messages, not the headline (RFC 6121 §8.5.2.1.1).
    await waitUntil(() => ts.server.metrics.offlineStored >= stored + 2, 6000, "the window passed and the messages were stored");
    assert.match(await bob.until(/<presence [^>]*unavailable[^>]*>/), /<presence [^>]*from=["']carol@localhost\/old["']/);
    assert.match(await bob.until(/<iq [^>]*id=["']q1["'][^>]*>/), /<iq [^>]*type=["']error["'][^>]*id=["']q1["']|<iq [^>]*id=["']q1["'][^>]*type=["']error["']/);
    const c2 = await rawLogin(port, "carol", "c-pass", "new");
    c2.send("<presence/>");
    const text = await c2.until(/<body>away<\/body>[\s\S]*<\/message>/);
    assert.deepEqual(bodies(text), ["seen", "away"]);
    assert.equal((text.match(/<delay xmlns=["']urn:xmpp:delay["']/g) ?? []).length, 2);
    c2.destroy();
  } finally {
    bob.destroy();
  }
});

test("a resume after the window passed is refused with the count the server handled (<failed h/>, §5), to that account only", { timeout: 20_000 }, async () => {
  const { r: a1, id } = await resumable("alice", "a-pass", "late");
  try {
    // Three stanzas handled: a presence and two pings.
    a1.send("<presence/>");
    await pingOk(a1);
    await pingOk(a1);
    a1.destroy();
    await suspended("alice@localhost/late");
    await waitUntil(() => ts.server.proxy.sessions.get("alice@localhost/late") === undefined, 6000, "the window to pass");
    const a2 = await rawAuth("alice", "a-pass");
    try {
      a2.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
      const f = await a2.until(/<failed [\s\S]*?<\/failed>/);
      assert.match(f, /<failed [^>]*h=["']3["']/, "its client sends again only what the server did not handle");
      assert.match(f, /item-not-found/);
    } finally {
      a2.destroy();
    }
    // Another account's resumption with that id learns nothing.
    const b = await rawAuth("bob", "b-pass");
    try {
      b.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
      const f = await b.until(/<failed [\s\S]*?<\/failed>|<failed[^>]*\/>/);
      assert.doesNotMatch(f, /\bh=/);
      assert.match(f, /item-not-found/);
    } finally {
      b.destroy();
    }
  } finally {
    a1.destroy();
  }
});

test("a resumed session takes what was stored for its user while it was away (its owner could not reach it)", { timeout: 15_000 }, async () => {
  const { r: a1, id } = await resumable("dave", "d-pass", "tablet");
  try {
    a1.send("<presence/>");
    await pingOk(a1);
    a1.send(`<a xmlns='${SM}' h='1'/>`);
    await pingOk(a1);
    a1.destroy();
    await suspended("dave@localhost/tablet");
    // Stored by an owner that had no binding of hers then (a stalled worker, a ring change and back: the
    // three-host fault suite's case), here written to the store directly: one process has no second owner.
    const stanza = "<message from='bob@localhost/desk' to='dave@localhost' type='chat' id='st1'><body>stored</body><delay xmlns='urn:xmpp:delay' from='localhost' stamp='2026-12-02T00:00:00Z'/></message>";
    assert.deepEqual(await ts.server.store.xmpp.pushOffline([{ user: "dave", stanza }], 100), ["stored"]);
    const a2 = await rawAuth("dave", "d-pass");
    try {
      a2.send(`<resume xmlns='${SM}' previd='${id}' h='2'/>`);
      const text = await a2.until(/<body>stored<\/body>/);
      assert.ok(text.indexOf("<resumed") < text.indexOf("<body>stored"), "after <resumed/>");
      assert.equal(await ts.server.store.xmpp.offlineCount("dave"), 0, "taken from the store");
    } finally {
      a2.destroy();
    }
  } finally {
    a1.destroy();
  }
});

test("a message its client sends again right after resuming, which its recipient was given already (same id), is dropped there; the same id sent twice without a resumption is delivered twice", { timeout: 15_000 }, async () => {
  const { r: c1, id } = await resumable("carol", "c-pass", "laptop");
  const bob = await rawLogin(port, "bob", "b-pass", "desk");
  try {
    c1.send(msg("bob@localhost/desk", "x1"));
    await bob.until(/<body>x1<\/body>/);
    // Ids are the client's to choose: without a resumption nothing is second-guessed.
    c1.send(msg("bob@localhost/desk", "x1"));
    await bob.until(/<body>x1<\/body>[\s\S]*<body>x1<\/body>/);
    await pingOk(c1);
    c1.destroy();
    await suspended("carol@localhost/laptop");
    const dropped = ts.server.proxy.stats.resentDropped;
    const c2 = await rawAuth("carol", "c-pass");
    try {
      c2.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
      await c2.until(/<resumed /);
      // What a client resumed from a count that stayed behind a death sends again (docs/architecture.md, "Resent"),
      // here by hand: x1 was delivered; x2 is new.
      c2.send(msg("bob@localhost/desk", "x1"));
      c2.send(msg("bob@localhost/desk", "x2"));
      await bob.until(/<body>x2<\/body>/);
      await pingOk(c2);
      await pingOk(bob);
      assert.deepEqual(bodies(bob.text), ["x1", "x1", "x2"], "the resent x1 not delivered a third time");
      assert.equal(ts.server.proxy.stats.resentDropped, dropped + 1);
    } finally {
      c2.destroy();
    }
  } finally {
    c1.destroy();
    bob.destroy();
  }
});

test("what a resumed session takes from offline storage skips a message it was given already (sent again by its sender and stored while it was away)", { timeout: 15_000 }, async () => {
  const { r: b1, id } = await resumable("bob", "b-pass", "tablet");
  const carol = await rawLogin(port, "carol", "c-pass", "desk");
  try {
    b1.send("<presence/>");
    carol.send(msg("bob@localhost/tablet", "y1"));
    await b1.until(/<body>y1<\/body>/);
    b1.destroy();
    await suspended("bob@localhost/tablet");
    // Stored by an owner that had no binding of his then (the three-host suite's case), here written directly: y1
    // again, as its sender's resumed client sent it, and y2, new.
    const stored = (i: string) => `<message from='carol@localhost/desk' to='bob@localhost' type='chat' id='m${i}'><body>${i}</body><delay xmlns='urn:xmpp:delay' from='localhost' stamp='2026-12-02T00:00:00Z'/></message>`;
    assert.deepEqual(await ts.server.store.xmpp.pushOffline([{ user: "bob", stanza: stored("y1") }, { user: "bob", stanza: stored("y2") }], 100), ["stored", "stored"]);
    const b2 = await rawAuth("bob", "b-pass");
    try {
      b2.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
      await b2.until(/<body>y2<\/body>/);
      await pingOk(b2);
      assert.deepEqual(bodies(b2.text), ["y1", "y2"], "y1 once (sent again as unacknowledged), y2 from the store");
      assert.equal(await ts.server.store.xmpp.offlineCount("bob"), 0);
    } finally {
      b2.destroy();
    }
  } finally {
    b1.destroy();
    carol.destroy();
  }
});

test("a message its recipient took from offline storage, sent again by its sender's resumed client, is dropped at the recipient's session", { timeout: 15_000 }, async () => {
  const { r: c1, id } = await resumable("carol", "c-pass", "phone");
  try {
    // Erin is offline: z1 is stored.
    const stored = await ts.server.store.xmpp.offlineCount("erin");
    c1.send(msg("erin@localhost", "z1"));
    await waitUntil(async () => (await ts.server.store.xmpp.offlineCount("erin")) === stored + 1, 5000, "z1 stored");
    const erin = await rawLogin(port, "erin", "e-pass", "desk");
    try {
      erin.send("<presence/>");
      await erin.until(/<body>z1<\/body>/);
      await pingOk(c1);
      c1.destroy();
      await suspended("carol@localhost/phone");
      const dropped = ts.server.proxy.stats.resentDropped;
      const c2 = await rawAuth("carol", "c-pass");
      try {
        // Resumed from a count that stayed below z1 (a death between the store and the count: docs/architecture.md, "Resent"), sent again by hand.
        c2.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
        await c2.until(/<resumed /);
        c2.send(msg("erin@localhost", "z1"));
        c2.send(msg("erin@localhost", "z2"));
        await erin.until(/<body>z2<\/body>/);
        await pingOk(c2);
        await pingOk(erin);
        assert.deepEqual(bodies(erin.text), ["z1", "z2"], "z1 once: from the store, not again from the resend");
        assert.equal(ts.server.proxy.stats.resentDropped, dropped + 1);
      } finally {
        c2.destroy();
      }
    } finally {
      erin.destroy();
    }
  } finally {
    c1.destroy();
  }
});

test("a message stored for a user with no session, sent again by its sender's resumed client, is not stored a second time", { timeout: 15_000 }, async () => {
  const { r: c1, id } = await resumable("carol", "c-pass", "tablet");
  try {
    c1.send(msg("frank@localhost", "w1"));
    await waitUntil(async () => (await ts.server.store.xmpp.offlineCount("frank")) === 1, 5000, "w1 stored");
    await pingOk(c1);
    c1.destroy();
    await suspended("carol@localhost/tablet");
    const c2 = await rawAuth("carol", "c-pass");
    try {
      // Resumed from a count that stayed below w1 (a death between the store and the count), sent again by hand, and w2, new.
      c2.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
      await c2.until(/<resumed /);
      c2.send(msg("frank@localhost", "w1"));
      c2.send(msg("frank@localhost", "w2"));
      await waitUntil(async () => (await ts.server.store.xmpp.offlineCount("frank")) === 2, 5000, "w2 stored");
      await pingOk(c2);
      // Written in the order queued: with w2 stored, the resent w1's fate is settled.
      assert.equal(await ts.server.store.xmpp.offlineCount("frank"), 2, "w1 stored once");
      const frank = await rawLogin(port, "frank", "f-pass", "desk");
      try {
        frank.send("<presence/>");
        await frank.until(/<body>w2<\/body>/);
        await pingOk(frank);
        assert.deepEqual(bodies(frank.text), ["w1", "w2"]);
      } finally {
        frank.destroy();
      }
    } finally {
      c2.destroy();
    }
  } finally {
    c1.destroy();
  }
});

test("a new bind of the same resource ends a suspended session; its unacknowledged messages go to the new session at that full JID, once", { timeout: 15_000 }, async () => {
  const { r: c1 } = await resumable("carol", "c-pass", "same");
  const bob = await rawLogin(port, "bob", "b-pass", "b");
  const stored = ts.server.metrics.offlineStored;
  try {
    bob.send(msg("carol@localhost/same", "pending"));
    await c1.until(/<body>pending<\/body>/);
    c1.destroy();
    await pingOk(bob);
    // RFC 6121 §8.5.3.2.1: the full JID is gone, so the message goes to whoever has it now (here the new session), not to storage.
    const c2 = await rawAuth("carol", "c-pass");
    c2.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>same</resource></bind></iq>");
    const text = await c2.until(/<body>pending<\/body>[\s\S]*<\/message>/);
    assert.match(text, /<delay xmlns=["']urn:xmpp:delay["'] from=["']localhost["'] stamp=/, "with the time it was first written");
    assert.equal(ts.server.metrics.offlineStored, stored, "not stored: someone was there to take it");
    c2.send("<presence/>");
    await pingOk(c2);
    assert.deepEqual(bodies(c2.text), ["pending"], "once");
    c2.destroy();
  } finally {
    bob.destroy();
  }
});

test("@xmpp/client: its TCP connection is destroyed mid-conversation, it resumes, and gets every message exactly once, in order", { timeout: 30_000 }, async () => {
  // SASL PLAIN (allowed here without TLS): @xmpp/client's SCRAM took over 2 s of this process on the loaded 2
  // cores (1 run in 10 at load 9), past this file's 2 s window, and the resumption failed for want of time.
  // The login's mechanism is not what this test is about.
  const credentials = (authenticate: any) => authenticate({ username: "alice", password: "a-pass" }, "PLAIN", xml("user-agent", { id: "sm-resume-xc" }));
  const c = client({ service: `xmpp://127.0.0.1:${port}`, domain: "localhost", credentials, resource: "xc" });
  c.on("error", () => {});
  const got: string[] = [];
  c.on("stanza", (el: any) => {
    if (el.is("message") && el.getChildText("body") !== null) got.push(el.getChildText("body"));
  });
  let resumed = 0;
  c.streamManagement.on("resumed", () => resumed++);
  // Its default 1 s before reconnecting plus SCRAM on a loaded machine can outlast this file's 2 s window.
  c.reconnect.delay = 50;
  await c.start();
  await c.send(xml("presence"));
  await waitUntil(() => c.streamManagement.enabled === true && c.streamManagement.id !== "", 5000, "sm enabled with an id");
  const bob = await online(port, "bob", "b-pass", { resource: "sender", presence: false });
  const N = 60;
  try {
    for (let i = 0; i < N; i++) {
      await bob.c.send(xml("message", { to: String(c.jid), type: "chat" }, xml("body", {}, String(i))));
      // Mid-conversation, with messages in flight: the socket is destroyed (no </stream:stream>).
      if (i === 20) c.socket.destroy();
    }
    await within(
      waitUntil(() => got.length >= N, 20_000, () => `got ${got.length} of ${N}`),
      25_000,
      "all messages",
    );
    const seen = new Map<string, number>();
    for (const b of got) seen.set(b, (seen.get(b) ?? 0) + 1);
    const duplicates = [...seen.values()].filter((n) => n > 1).length;
    const lost = Array.from({ length: N }, (_, i) => String(i)).filter((b) => !seen.has(b)).length;
    assert.equal(duplicates, 0, `duplicates in ${got.join(",")}`);
    assert.equal(lost, 0);
    assert.deepEqual(got, Array.from({ length: N }, (_, i) => String(i)), "in order");
    assert.equal(resumed, 1, "resumed, not a new session");
  } finally {
    c.reconnect.stop();
    await c.stop().catch(() => {});
    await bob.stop();
  }
});

test("the window passes: carbon copies it never acknowledged are not stored offline (their originals went elsewhere)", { timeout: 20_000 }, async () => {
  // Earlier tests' suspended sessions end when their windows pass, and may store what they held: counted below
  // as this test's. They are all gone first.
  const idle = () => {
    const l = ts.server.metrics.listener("xmpp", "tcp");
    return l.sessionsStarted === l.sessionsEnded;
  };
  await waitUntil(idle, 8000, "the earlier tests' sessions ended");
  const { r: phone } = await resumable("alice", "a-pass", "carbons");
  const desk = await online(port, "alice", "a-pass", { resource: "desk2" });
  const bob = await online(port, "bob", "b-pass", { resource: "cc", presence: false });
  try {
    phone.send("<iq type='set' id='cc1'><enable xmlns='urn:xmpp:carbons:2'/></iq>");
    await phone.until(/id=["']cc1["']/);
    phone.text = "";
    await bob.c.send(xml("message", { to: desk.jid, type: "chat", id: "to-desk" }, xml("body", {}, "for the desk")));
    await desk.waitFor((el) => el.is("message") && el.attrs.id === "to-desk");
    await phone.until(/<received xmlns=["']urn:xmpp:carbons:2["']>/);
    const stored = ts.server.metrics.offlineStored;
    const ended = ts.server.metrics.listener("xmpp", "tcp").sessionsEnded;
    phone.destroy();
    await waitUntil(() => ts.server.metrics.listener("xmpp", "tcp").sessionsEnded > ended, 6000, "the window passed and the session ended");
    assert.equal(ts.server.metrics.offlineStored, stored, "the copy was not stored");
    // The next login (carbons not enabled) gets no copy: a client that did not ask for carbons gets none (XEP-0280 §2).
    const next = await rawLogin(port, "alice", "a-pass", "next");
    next.send("<presence/><iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert.doesNotMatch(await next.until(/id=["']after["']/), /urn:xmpp:carbons:2/);
    next.destroy();
  } finally {
    await Promise.all([desk.stop(), bob.stop()]);
  }
});

test("XEP-0352: what an inactive client's gate held is not lost when it resumes; the resumed stream starts active", { timeout: 15_000 }, async () => {
  const { r: a1, id } = await resumable("alice", "a-pass", "csi");
  const bob = await rawLogin(port, "bob", "b-pass", "csi-peer");
  try {
    a1.send("<inactive xmlns='urn:xmpp:csi:0'/>");
    await pingOk(a1);
    bob.send("<presence to='alice@localhost/csi'><status>held</status></presence>");
    await pingOk(bob);
    await pingOk(a1);
    assert.doesNotMatch(a1.text, /<status>held<\/status>/, "held while inactive");
    a1.destroy();
    await suspended("alice@localhost/csi");
    const a2 = await rawAuth("alice", "a-pass");
    // Two pings answered before the drop.
    a2.send(`<resume xmlns='${SM}' previd='${id}' h='2'/>`);
    await a2.until(/<status>held<\/status>/);
    // Active now: a new update comes at once.
    bob.send("<presence to='alice@localhost/csi'><status>live</status></presence>");
    await a2.until(/<status>live<\/status>/);
    a2.destroy();
  } finally {
    bob.destroy();
  }
});
