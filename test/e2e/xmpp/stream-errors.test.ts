import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { parse } from "ltx";
import { startXmppServer, type TestServer } from "../../helpers.js";
import { HEADER, Raw, plainAuth, rawLogin } from "./util.js";

let ts: TestServer;
let port: number;

before(async () => {
  ts = await startXmppServer(
    { xmpp: { allowPlainWithoutTls: true, maxAuthFailuresPerIp: 1000, pingAfterMs: 0 }, limits: { maxStanzaBytes: 4096 } },
    { alice: "a-pass", bob: "b-pass" },
  );
  port = ts.port("xmpp", "tcp");
}, { timeout: 15_000 });
after(() => ts.stop());

/** Opens a stream, sends `input`, expects the stream error `condition` and the connection closed. */
async function expectStreamError(input: string | string[], condition: string, raw?: Raw): Promise<string> {
  const r = raw ?? new Raw(port);
  if (raw === undefined) await r.ready();
  for (const s of Array.isArray(input) ? input : [input]) r.send(s);
  const text = await r.until(new RegExp(`<stream:error><${condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>`));
  await r.until(/<\/stream:stream>/);
  await r.whenClosed();
  return text;
}

test("features before auth: SCRAM offered strongest first, PLAIN only where allowed, no <sm/>; SASL2 offers the same", { timeout: 15_000 }, async () => {
  const r = new Raw(port);
  await r.ready();
  r.send(HEADER);
  const text = await r.until(/<\/stream:features>/);
  const features = parse(text.slice(text.indexOf("<stream:features")));
  const mechs = (el: any) => el.getChildren("mechanism").map((m: any) => m.getText());
  assert.deepEqual(mechs(features.getChild("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")), ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]);
  // No XEP-0198 feature and no STARTTLS (no certificate) among the stream's features before authentication.
  assert.deepEqual(features.getChildElements().map((el: any) => `${el.name} ${el.attrs.xmlns}`), ["mechanisms urn:ietf:params:xml:ns:xmpp-sasl", "authentication urn:xmpp:sasl:2"]);
  // XEP-0388 §2.1 (on by default): the same mechanisms in the same order; <sm/> only inline, for a <resume/> inside <authenticate/>.
  const sasl2: any = features.getChild("authentication", "urn:xmpp:sasl:2");
  assert.deepEqual(mechs(sasl2), ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]);
  assert.deepEqual(sasl2.getChild("inline").getChildElements().map((el: any) => `${el.name} ${el.attrs.xmlns}`), ["bind urn:xmpp:bind:0", "sm urn:xmpp:sm:3"]);
  r.destroy();
});

test("not-well-formed", { timeout: 15_000 }, async () => void (await expectStreamError(HEADER + "<message></iq>", "not-well-formed")));
test("restricted-xml: comment", { timeout: 15_000 }, async () => void (await expectStreamError(HEADER + "<!-- hello -->", "restricted-xml")));
test("restricted-xml: DOCTYPE before the stream", { timeout: 15_000 }, async () => void (await expectStreamError("<!DOCTYPE stream>" + HEADER, "restricted-xml")));
test("restricted-xml: processing instruction", { timeout: 15_000 }, async () => void (await expectStreamError(HEADER + "<?foo bar?>", "restricted-xml")));
test("policy-violation: stanza over maxStanzaBytes", { timeout: 15_000 }, async () => void (await expectStreamError(HEADER + `<message><body>${"x".repeat(20000)}</body></message>`, "policy-violation")));
test("not-authorized: a stanza before authentication", { timeout: 15_000 }, async () => void (await expectStreamError(HEADER + "<message to='bob@localhost'><body>hi</body></message>", "not-authorized")));
test("host-unknown", { timeout: 15_000 }, async () => void (await expectStreamError(HEADER.replace("to='localhost'", "to='example.org'"), "host-unknown")));
test("invalid-namespace", { timeout: 15_000 }, async () => void (await expectStreamError(HEADER.replace("jabber:client", "jabber:server"), "invalid-namespace")));
test("unsupported-version", { timeout: 15_000 }, async () => void (await expectStreamError(HEADER.replace(" version='1.0'>", ">"), "unsupported-version")));

test("unsupported-stanza-type after login", { timeout: 15_000 }, async () => {
  const r = await rawLogin(port, "alice", "a-pass");
  await expectStreamError("<foo/>", "unsupported-stanza-type", r);
});

test("not-authorized: a stanza after SASL but before bind", { timeout: 15_000 }, async () => {
  const r = new Raw(port);
  await r.ready();
  r.send(HEADER);
  await r.until(/<\/stream:features>/);
  r.send(plainAuth("alice", "a-pass"));
  await r.until(/<success/);
  r.send(HEADER);
  await r.until(/<bind/);
  await expectStreamError("<message to='bob@localhost'><body>hi</body></message>", "not-authorized", r);
});

test("bad password: <not-authorized/> each time, then policy-violation after limits.maxAuthAttempts", { timeout: 15_000 }, async () => {
  const r = new Raw(port);
  await r.ready();
  r.send(HEADER);
  await r.until(/<\/stream:features>/);
  for (let i = 1; i <= 2; i++) {
    r.send(plainAuth("alice", "wrong"));
    await r.until(new RegExp(`(<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><not-authorized/></failure>[^]*){${i}}`));
  }
  await expectStreamError(plainAuth("alice", "wrong"), "policy-violation", r);
});

test("conflict: binding the same resource again replaces the old session", { timeout: 15_000 }, async () => {
  const first = await rawLogin(port, "bob", "b-pass", "same");
  const second = await rawLogin(port, "bob", "b-pass", "same");
  await first.until(/<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
  await first.whenClosed();
  second.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>");
  await second.until(/id="p1"/);
  second.destroy();
});

test("a whole session sent one byte at a time", { timeout: 15_000 }, async () => {
  const r = new Raw(port);
  await r.ready();
  const drip = async (s: string) => {
    for (const b of Buffer.from(s)) {
      r.send(Buffer.from([b]));
      await new Promise((res) => setImmediate(res));
    }
  };
  await drip(HEADER);
  await r.until(/<\/stream:features>/);
  await drip(plainAuth("alice", "a-pass"));
  await r.until(/<success/);
  r.text = "";
  await drip(HEADER);
  await r.until(/<\/stream:features>/);
  await drip("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>drip</resource></bind></iq>");
  await r.until(/alice@localhost\/drip/);
  await drip("<iq type='get' id='p\u00e9'><ping xmlns='urn:xmpp:ping'/></iq><message to='alice@localhost/drip'><body>\u00e9\u2713\ud83d\ude00</body></message>");
  await r.until(/id="p\u00e9"/);
  await r.until(/<body>\u00e9\u2713\ud83d\ude00<\/body>/);
  r.send("</stream:stream>");
  await r.until(/<\/stream:stream>/);
  await r.whenClosed();
});

test("after all those errors the server still serves", { timeout: 15_000 }, async () => {
  const r = await rawLogin(port, "alice", "a-pass", "last");
  r.send("<iq type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  await r.until(/id="alive"/);
  r.destroy();
});

test("connection-timeout for an idle connection, and per-IP auth failure limit", { timeout: 15_000 }, async () => {
  const t2 = await startXmppServer({ xmpp: { allowPlainWithoutTls: true, maxAuthFailuresPerIp: 1, pingAfterMs: 300, pingTimeoutMs: 300 } }, { alice: "a-pass" });
  try {
    const p2 = t2.port("xmpp", "tcp");
    const idle = await rawLogin(p2, "alice", "a-pass");
    // Silence brings a ping we do not answer; then the stream ends (test/e2e/xmpp/dead-peer.test.ts has the details).
    await idle.until(/<stream:error><connection-timeout /);
    await idle.whenClosed();

    const bad = new Raw(p2);
    await bad.ready();
    bad.send(HEADER);
    await bad.until(/<\/stream:features>/);
    bad.send(plainAuth("alice", "wrong"));
    await bad.until(/<not-authorized\/>/);
    bad.destroy();
    const next = new Raw(p2);
    await next.ready();
    next.send(HEADER);
    await next.until(/<\/stream:features>/);
    next.send(plainAuth("alice", "a-pass"));
    await next.until(/<temporary-auth-failure\/>/);
    await next.whenClosed();
  } finally {
    await t2.stop();
  }
});

test("encryption required with no TLS on the listener: policy-violation instead of an unusable stream", { timeout: 15_000 }, async () => {
  const t3 = await startXmppServer({ xmpp: { exemptLoopback: false } }, {});
  try {
    const r = new Raw(t3.port("xmpp", "tcp"));
    await r.ready();
    r.send(HEADER);
    await r.until(/<policy-violation /);
    await r.whenClosed();
  } finally {
    await t3.stop();
  }
});
