import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { parse } from "ltx";
import { xml } from "@xmpp/client";
import { startXmppServer, waitUntil, type TestServer } from "../../helpers.js";
import { HEADER, Raw, online, plainAuth, rawLogin } from "./util.js";

// XEP-0198 acknowledgements on a real server: raw sockets for the exact
// elements and counters, @xmpp/client for a client that enables it by itself.
// Server policy here: an <r/> after every 3 stanzas, the time trigger off, and
// a client with more than 8 unacked stanzas is cut as a slow consumer.

let ts: TestServer;
let port: number;
const SM = "urn:xmpp:sm:3";

before(async () => {
  ts = await startXmppServer(
    { xmpp: { allowPlainWithoutTls: true, sm: { ackEveryStanzas: 3, ackEveryMs: 0, maxUnacked: 8, resumeTimeoutMs: 2000 } } },
    { alice: "a-pass", bob: "b-pass" },
  );
  port = ts.port("xmpp", "tcp");
}, { timeout: 15_000 });
after(() => ts.stop());

let serial = 0;
/** A server ping: one stanza in (the iq), one out (its result). */
function ping(r: Raw): string {
  const id = `p${++serial}`;
  r.send(`<iq type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  return id;
}
const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;

test("sm is offered with bind after SASL, not before; enable or resume before bind fail without ending the stream", { timeout: 15_000 }, async () => {
  const r = new Raw(port);
  await r.ready();
  r.send(HEADER);
  const first = await r.until(/<\/stream:features>/);
  const top = parse(first.slice(first.indexOf("<stream:features")));
  // Not a stream feature before authentication (XEP-0198 §3); SASL2's <inline> offers <sm/> for a <resume/> inside <authenticate/> only.
  assert.equal(top.getChild("sm", SM), undefined, first);
  assert.ok(top.getChild("authentication", "urn:xmpp:sasl:2")?.getChild("inline")?.getChild("sm", SM), first);
  r.send(plainAuth("alice", "a-pass"));
  await r.until(/<success/);
  r.text = "";
  r.send(HEADER);
  const features = await r.until(/<\/stream:features>/);
  assert.match(features, /<bind xmlns=["']urn:ietf:params:xml:ns:xmpp-bind["']/);
  assert.match(features, /<sm xmlns=["']urn:xmpp:sm:3["']\/>/);
  r.text = "";
  r.send(`<enable xmlns='${SM}' resume='true'/>`);
  assert.match(await r.until(/<\/failed>/), /<failed xmlns=["']urn:xmpp:sm:3["']><unexpected-request xmlns=["']urn:ietf:params:xml:ns:xmpp-stanzas["']\/><\/failed>/);
  r.text = "";
  // Resumption is not offered yet: every previd is unknown (§5 item-not-found).
  r.send(`<resume xmlns='${SM}' previd='nope' h='0'/>`);
  assert.match(await r.until(/<\/failed>/), /<item-not-found /);
  r.text = "";
  r.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>x</resource></bind></iq>");
  assert.match(await r.until(/<\/iq>/), /alice@localhost\/x/);
  r.destroy();
});

test("enable resume='true' → enabled with an id, resume and max in seconds; twice → failed; <r/> answered with h counting the client's stanzas since enable", { timeout: 15_000 }, async () => {
  const r = await rawLogin(port, "alice", "a-pass", "acks");
  try {
    // A stanza before enable is not counted.
    await r.until(new RegExp(`id=["']${ping(r)}["']`));
    r.text = "";
    r.send(`<enable xmlns='${SM}' resume='true'/>`);
    const enabled = (await r.until(/<enabled [^>]*\/>/)).match(/<enabled [^>]*\/>/)![0];
    assert.match(enabled, /xmlns=["']urn:xmpp:sm:3["']/);
    assert.match(enabled, / id=["'][A-Za-z0-9_-]{16,}["']/);
    assert.match(enabled, /resume=["']true["']/);
    assert.match(enabled, /max=["']2["']/);
    r.text = "";
    r.send(`<enable xmlns='${SM}'/>`);
    assert.match(await r.until(/<\/failed>/), /<unexpected-request /);
    r.text = "";
    r.send(`<r xmlns='${SM}'/>`);
    assert.match(await r.until(/<a [^>]*\/>/), /<a xmlns=["']urn:xmpp:sm:3["'] h=["']0["']\/>/);
    r.text = "";
    const id1 = ping(r);
    const id2 = ping(r);
    r.send(`<r xmlns='${SM}'/>`);
    const text = await r.until(/<a [^>]*\/>/);
    assert.match(text, /h=["']2["']/);
    // The server wrote both results before the answer to <r/>.
    assert.ok(text.indexOf(id1) >= 0 && text.indexOf(id2) >= 0 && text.indexOf(id2) < text.indexOf("<a "));
  } finally {
    r.destroy();
  }
});

test("an <a/> is held up to xmpp.sm.answerDelayMs (default 1 s) for other output: it leaves with the next stanza to the client, else alone once the delay passed", { timeout: 15_000 }, async () => {
  const r = await rawLogin(port, "alice", "a-pass", "held");
  const bob = await rawLogin(port, "bob", "b-pass", "held");
  try {
    r.send(`<enable xmlns='${SM}'/>`);
    await r.until(/<enabled /);
    await r.until(new RegExp(`id=["']${ping(r)}["']`));
    r.text = "";
    // Nothing else for alice: the answer comes alone, not before the delay (less a timer's slack).
    let t0 = performance.now();
    r.send(`<r xmlns='${SM}'/>`);
    assert.match(await r.until(/<a [^>]*\/>/), /^<a xmlns=["']urn:xmpp:sm:3["'] h=["']1["']\/>$/);
    assert.ok(performance.now() - t0 >= 900, `alone after ${performance.now() - t0} ms`);
    r.text = "";
    // A request, then a message to alice: the answer comes with it, well before the delay.
    t0 = performance.now();
    r.send(`<r xmlns='${SM}'/>`);
    // A headline: left unacknowledged, it is not sent again to alice's next session (a chat message would be).
    bob.send(`<message to='alice@localhost/held' type='headline' id='with-a'><body>x</body></message>`);
    let text = await r.until(/(id=["']with-a["'][\s\S]*<a [^>]*\/>)|(<a [^>]*\/>[\s\S]*id=["']with-a["'])/);
    assert.ok(performance.now() - t0 < 900, `with the message, after ${performance.now() - t0} ms`);
    assert.match(text, /<a xmlns=["']urn:xmpp:sm:3["'] h=["']1["']\/>/);
    r.text = "";
    // One answer per request, each with the count at its request, in order.
    r.send(`<r xmlns='${SM}'/>`);
    ping(r);
    r.send(`<r xmlns='${SM}'/>`);
    text = await r.until(/<a [^>]*\/>[\s\S]*<a [^>]*\/>/);
    assert.deepEqual([...text.matchAll(/<a [^>]*h=["'](\d+)["']\/>/g)].map((m) => m[1]), ["1", "2"]);
  } finally {
    r.destroy();
    bob.destroy();
  }
});

test("the server asks for an ack every 3 stanzas; acks trim the unacked queue; past 8 unacked the client is cut as a slow consumer", { timeout: 15_000 }, async () => {
  const counts = ts.server.metrics.listener("xmpp", "tcp");
  const slowBefore = counts.slowConsumers;
  const r = await rawLogin(port, "alice", "a-pass", "policy");
  try {
    r.send(`<enable xmlns='${SM}'/>`);
    // Not asked for: not resumable.
    assert.doesNotMatch((await r.until(/<enabled [^>]*\/>/)).match(/<enabled [^>]*\/>/)![0], /resume=|max=/);
    r.text = "";
    // Three results, then one <r/> after the third.
    const ids = [ping(r), ping(r), ping(r)];
    let text = await r.until(/<r xmlns=["']urn:xmpp:sm:3["']\/>/);
    for (const id of ids) assert.ok(text.indexOf(id) >= 0 && text.indexOf(id) < text.indexOf("<r "), `${id} before <r/>`);
    assert.equal(count(text, /<r /g), 1);
    r.send(`<a xmlns='${SM}' h='3'/>`);
    // 3 acknowledged: eight more fit in the queue (the limit is 8), two more requests come.
    r.text = "";
    const more = Array.from({ length: 8 }, () => ping(r));
    text = await r.until(new RegExp(`id=["']${more[7]}["']`));
    assert.equal(counts.slowConsumers, slowBefore);
    assert.equal(count(text, /<r /g), 2);
    assert.equal(r.closed, false);
    // Unanswered: the ninth unacked stanza cuts the connection, counted as a slow consumer.
    ping(r);
    await r.whenClosed();
    await waitUntil(() => counts.slowConsumers === slowBefore + 1, 5000, "slow consumer counted");
  } finally {
    r.destroy();
  }
});

test("an <a/> acknowledging more than was sent ends the stream with undefined-condition and handled-count-too-high", { timeout: 15_000 }, async () => {
  const r = await rawLogin(port, "alice", "a-pass", "toohigh");
  r.send(`<enable xmlns='${SM}'/>`);
  await r.until(/<enabled /);
  await r.until(new RegExp(`id=["']${ping(r)}["']`));
  r.send(`<a xmlns='${SM}' h='1'/>`);
  r.text = "";
  r.send(`<a xmlns='${SM}' h='3'/>`);
  const text = await r.until(/<\/stream:error>/);
  assert.match(text, /<undefined-condition xmlns=["']urn:ietf:params:xml:ns:xmpp-streams["']\/>/);
  assert.match(text, /<handled-count-too-high xmlns=["']urn:xmpp:sm:3["'] h=["']3["'] send-count=["']1["']\/>/);
  await r.whenClosed();
});

test("@xmpp/client enables stream management by itself, answers the server's <r/>, and has its own stanzas acknowledged", { timeout: 20_000 }, async () => {
  const alice = await online(port, "alice", "a-pass", { resource: "xc" });
  const bob = await rawLogin(port, "bob", "b-pass", "raw");
  try {
    const sm = alice.c.streamManagement;
    await waitUntil(() => sm.enabled === true, 5000, "sm enabled");
    // 30 messages to alice in rounds of 3, each round closed by a ping of alice's: with acks asked every 3 and
    // 8 unacked allowed, a client that did not answer <r/> would be cut within three rounds. (A burst of 30
    // at once would be cut too: the policy bounds output that is not yet acknowledged, whatever the reason.)
    const got: string[] = [];
    for (let round = 0; round < 10; round++) {
      for (let i = round * 3; i < round * 3 + 3; i++) bob.send(`<message to='${alice.jid}' type='chat' id='m${i}'><body>${i}</body></message>`);
      for (let i = 0; i < 3; i++) got.push((await alice.waitFor((el) => el.is("message"))).getChildText("body"));
      // Alice's answer to <r/> went out before this message: once bob has it, the server has her <a/>.
      // (Not an iq: @xmpp/client 0.14 does not count the iq results its iqCaller takes, so its h lags by one each.)
      await alice.c.send(xml("message", { to: "bob@localhost/raw", type: "chat", id: `sync${round}` }));
      await bob.until(new RegExp(`id=["']sync${round}["']`));
    }
    assert.deepEqual(got, Array.from({ length: 30 }, (_, i) => String(i)));
    // Alice's own stanza is acknowledged by the server (her <r/> gets an <a/> with h covering it).
    const acked = new Promise<any>((resolve) => sm.on("ack", (el: any) => el.attrs.id === "back" && resolve(el)));
    await alice.c.send(xml("message", { to: "bob@localhost/raw", type: "chat", id: "back" }, xml("body", {}, "hi")));
    const el = await Promise.race([acked, new Promise((_, rej) => setTimeout(() => rej(new Error("no ack within 5 s")), 5000))]);
    assert.equal((el as any).attrs.id, "back");
    await bob.until(/id=["']back["']/);
    assert.equal(alice.c.status, "online");
  } finally {
    await alice.stop();
    bob.destroy();
  }
});
