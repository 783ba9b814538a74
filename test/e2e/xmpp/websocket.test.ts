import { test } from "node:test";
import assert from "node:assert/strict";
import { get } from "node:http";
import { xml } from "@xmpp/client";
import { startXmppServer, TLS_FILES, xmppListeners, type TestServer } from "../../helpers.js";
import { online, plainAuth } from "./util.js";
import { OPEN, RawWs } from "./ws-util.js";

const USERS = { alice: "a-pass", bob: "b-pass" };
const PATH = "/xmpp-websocket";
const STREAM_ERROR = (cond: string) => new RegExp(`^<stream:error xmlns:stream='http://etherx.jabber.org/streams'><${cond} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>`);
const CLOSE = /^<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'\/>$/;

/** A server with the usual TCP/TLS listeners plus xmpp over ws and wss (RFC 7395). */
async function withServer(overrides: Record<string, unknown>, f: (ts: TestServer, ws: string, wss: string) => Promise<void>): Promise<void> {
  const ts = await startXmppServer(
    {
      listeners: [
        ...xmppListeners(),
        { protocol: "xmpp", transport: "websocket", host: "127.0.0.1", port: 0, path: PATH },
        { protocol: "xmpp", transport: "websocket", host: "127.0.0.1", port: 0, path: PATH, tls: TLS_FILES },
      ],
      ...overrides,
    },
    USERS,
  );
  const ports = ts.server.listeners.filter((l) => l.config.transport === "websocket");
  try {
    await f(ts, `ws://127.0.0.1:${ports[0].port}${PATH}`, `wss://localhost:${ports[1].port}${PATH}`);
  } finally {
    await ts.stop();
  }
}

test("@xmpp/client over ws:// logs in with SCRAM, binds, exchanges messages and IQs with a TCP client", { timeout: 20_000 }, () =>
  withServer({}, async (ts, ws) => {
    const a = await online(ws, "alice", "a-pass", { resource: "web" });
    const b = await online(ts.port("xmpp", "tcp"), "bob", "b-pass", { resource: "desk" });
    // SASL2 and Bind2 over RFC 7395 (on by default): the resource is the client's tag and the server's part.
    assert.deepEqual([a.auth, b.auth], ["sasl2", "sasl2"]);
    assert.match(a.jid, /^alice@localhost\/web\/[A-Za-z0-9_-]{8}$/);

    await a.c.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "from the web \u2713")));
    const m1 = await b.waitFor((el) => el.is("message"));
    assert.equal(m1.getChildText("body"), "from the web \u2713");
    assert.equal(m1.attrs.from, a.jid);
    await b.c.send(xml("message", { to: a.jid, type: "chat" }, xml("body", {}, "back over TCP <&>")));
    const m2 = await a.waitFor((el) => el.is("message"));
    assert.equal(m2.getChildText("body"), "back over TCP <&>");
    assert.equal(m2.attrs.from, b.jid);

    // IQ both ways: the web client answers one, and asks one.
    a.c.iqCallee.get("urn:example:echo", "echo", (ctx: any) => xml("echo", { xmlns: "urn:example:echo" }, `web got ${ctx.element.getText()}`));
    b.c.iqCallee.get("urn:example:echo", "echo", (ctx: any) => xml("echo", { xmlns: "urn:example:echo" }, `tcp got ${ctx.element.getText()}`));
    const r1 = await b.c.iqCaller.get(xml("echo", { xmlns: "urn:example:echo" }, "ping"), a.jid);
    assert.equal(r1.getText(), "web got ping");
    const r2 = await a.c.iqCaller.get(xml("echo", { xmlns: "urn:example:echo" }, "pong"), b.jid);
    assert.equal(r2.getText(), "tcp got pong");
    await Promise.all([a.stop(), b.stop()]);
  }));

// RFC 6120 SASL over RFC 7395 (SASL2 off: SASL2 succeeds without a restart, sasl2.test.ts).
test("RFC 6120 SASL (xmpp.sasl2 off): SCRAM is what the web client used, and the stream restarts with a new <open/>", { timeout: 15_000 }, () =>
  withServer({ xmpp: { sasl2: { enabled: false } } }, async (_ts, ws) => {
    const sent: string[] = [];
    const { client } = await import("@xmpp/client");
    const c = client({ service: ws, domain: "localhost", username: "alice", password: "a-pass", resource: "r" });
    c.reconnect.stop();
    c.on("error", () => {});
    c.on("send", (el: any) => sent.push(String(el)));
    let opened = 0;
    c.on("open", () => opened++);
    const got: string[] = [];
    c.on("element", (el: any) => got.push(String(el)));
    await c.start();
    const auth = sent.find((s) => s.startsWith("<auth "))!;
    assert.match(auth, /xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/);
    assert.match(auth, /mechanism="SCRAM-SHA-1"/);
    assert.equal(opened, 2, "the server's <open/> again after <success/>");
    assert.equal(got.filter((s) => s.startsWith("<stream:features")).length, 2);
    await c.stop();
  }));

test("wss:// with the test certificate: a web client and a TCP client talk", { timeout: 15_000 }, () =>
  withServer({}, async (ts, _ws, wss) => {
    const a = await online(wss, "alice", "a-pass", { resource: "secure" });
    const b = await online(ts.port("xmpp", "tcp"), "bob", "b-pass", { resource: "desk" });
    await b.c.send(xml("message", { to: a.jid, type: "chat" }, xml("body", {}, "over wss")));
    assert.equal((await a.waitFor((el) => el.is("message"))).getChildText("body"), "over wss");
    await Promise.all([a.stop(), b.stop()]);
  }));

test("raw: the upgrade is refused without subprotocol xmpp; with it, <open/> gets <open/> and namespaced features", { timeout: 15_000 }, () =>
  withServer({ xmpp: { allowPlainWithoutTls: true } }, async (_ts, ws) => {
    for (const protocols of [[], ["chat"]]) {
      const r = new RawWs(ws, protocols);
      await assert.rejects(r.ready(), (e: any) => e.status === 400);
    }
    const r = new RawWs(ws);
    await r.ready();
    assert.equal(r.ws.protocol, "xmpp");
    r.send(OPEN);
    assert.match(await r.until(/^<open /), /^<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='[^']+' from='localhost' version='1.0' xml:lang='en'\/>$/);
    assert.match(await r.until(/^<stream:features/), /^<stream:features xmlns:stream=["']http:\/\/etherx.jabber.org\/streams["']><mechanisms xmlns=["']urn:ietf:params:xml:ns:xmpp-sasl["']>/);
    r.send(plainAuth("alice", "a-pass"));
    await r.until(/^<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/);
    r.messages.length = 0;
    // RFC 7395 §3.5: the restart is a new <open/>.
    r.send(OPEN);
    await r.until(/^<stream:features xmlns:stream=.*<bind /);
    r.send("<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>raw</resource></bind></iq>");
    // Stanzas we write declare jabber:client: each message stands alone.
    assert.match(await r.until(/^<iq /), /^<iq xmlns='jabber:client' .*<jid>alice@localhost\/raw<\/jid>/);
    r.send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
    await r.until(CLOSE);
    await r.whenClosed();
  }));

const BAD_FRAMES: [string, string | Buffer, string][] = [
  ["a binary frame", Buffer.from("<presence xmlns='jabber:client'/>"), "bad-format"],
  ["two elements in one message", "<presence xmlns='jabber:client'/><presence xmlns='jabber:client'/>", "not-well-formed"],
  ["half an element", "<message xmlns='jabber:client'><body>", "not-well-formed"],
  ["an oversized message", `<message xmlns='jabber:client'><body>${"x".repeat(300_000)}</body></message>`, "policy-violation"],
  ["a comment", "<!-- hello -->", "restricted-xml"],
  ["a comment inside an element", "<message xmlns='jabber:client'><!-- hi --></message>", "restricted-xml"],
  ["a processing instruction", "<?xml version='1.0'?>", "restricted-xml"],
  ["a stanza before <open/>", "<presence xmlns='jabber:client'/>", "bad-format"],
  ["the TCP stream header", "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>", "not-well-formed"],
];

for (const [what, frame, condition] of BAD_FRAMES) {
  test(`raw: ${what} → <stream:error><${condition}/>, <close/>, connection closed`, { timeout: 10_000 }, () =>
    withServer({}, async (_ts, ws) => {
      const r = new RawWs(ws);
      await r.ready();
      const beforeOpen = condition === "bad-format" && typeof frame === "string";
      if (!beforeOpen && !what.includes("stream header")) {
        r.send(OPEN);
        await r.until(/^<stream:features/);
      }
      r.send(frame);
      await r.until(STREAM_ERROR(condition));
      const i = r.messages.findIndex((m) => STREAM_ERROR(condition).test(m));
      await r.whenClosed();
      // RFC 7395 §3.6: the error, then <close/>, then the WebSocket closes.
      assert.match(r.messages[i + 1] ?? "", CLOSE);
      assert.equal(r.messages.length, i + 2);
    }));
}

function fetch(url: string, host?: string): Promise<{ status: number; type: string; cors: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { headers: host ? { host } : {} }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode!, type: String(res.headers["content-type"]), cors: String(res.headers["access-control-allow-origin"]), body }));
    });
    req.on("error", reject);
    req.setTimeout(5000, () => req.destroy(new Error("no answer in time")));
  });
}

test("XEP-0156: host-meta and host-meta.json name the WebSocket URL", { timeout: 10_000 }, () =>
  withServer({}, async (_ts, ws) => {
    const base = ws.replace(/^ws:/, "http:").replace(PATH, "");
    const xrd = await fetch(`${base}/.well-known/host-meta`);
    assert.equal(xrd.status, 200);
    assert.equal(xrd.type, "application/xrd+xml");
    assert.equal(xrd.cors, "*");
    assert.match(xrd.body, /<XRD xmlns='http:\/\/docs.oasis-open.org\/ns\/xri\/xrd-1.0'>/);
    assert.ok(xrd.body.includes(`<Link rel='urn:xmpp:alt-connections:websocket' href='${ws}'/>`), xrd.body);
    const json = await fetch(`${base}/.well-known/host-meta.json`, "chat.example.org:5443");
    assert.equal(json.status, 200);
    assert.equal(json.type, "application/json");
    assert.deepEqual(JSON.parse(json.body), { links: [{ rel: "urn:xmpp:alt-connections:websocket", href: `ws://chat.example.org:5443${PATH}` }] });
    // A Host that cannot go into a URL as is: the configured domain and the bound port instead.
    const odd = await fetch(`${base}/.well-known/host-meta.json`, "evil'><x");
    assert.equal(JSON.parse(odd.body).links[0].href, `ws://localhost:${new URL(ws).port}${PATH}`);
    assert.equal((await fetch(`${base}/other`)).status, 404);
  }));
