import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { client, xml } from "@xmpp/client";
import { startXmppServer, waitUntil, within, xmppListeners, type TestServer } from "../../helpers.js";
import { HEADER, Raw, online } from "./util.js";

// XEP-0388 SASL2 with XEP-0386 Bind2, XEP-0198 inline (and XEP-0484 FAST), on a real server with
// @xmpp/client 0.14 (which speaks all three) over direct TLS, and raw sockets
// for the exact elements and the bad input. Run with NODE_EXTRA_CA_CERTS=test/fixtures/localhost.crt.

const SASL2 = "urn:xmpp:sasl:2";
const SM = "urn:xmpp:sm:3";
let ts: TestServer;
let tls: number;
let tcp: number;

before(async () => {
  ts = await startXmppServer(
    {
      listeners: [...xmppListeners(), { protocol: "xmpp", transport: "websocket", host: "127.0.0.1", port: 0, path: "/xmpp-websocket" }],
      xmpp: { allowPlainWithoutTls: true, sasl2: { enabled: true }, sm: { ackEveryStanzas: 0, ackEveryMs: 0, maxUnacked: 100, resumeTimeoutMs: 5000 } },
    },
    { alice: "a-pass", bob: "b-pass" },
  );
  tls = ts.port("xmpp", "tls");
  tcp = ts.port("xmpp", "tcp");
}, { timeout: 15_000 });
after(() => ts.stop());

/** An @xmpp/client on direct TLS with what it sent and received on the wire. */
function xc(username: string, password: string, resource?: string): { c: any; out: string[]; got: any[] } {
  const c = client({ service: `xmpps://127.0.0.1:${tls}`, domain: "localhost", username, password, resource });
  c.on("error", () => {});
  const out: string[] = [];
  const got: any[] = [];
  c.on("send", (el: any) => out.push(String(el)));
  c.on("nonza", (el: any) => got.push(el));
  c.on("element", (el: any) => got.push(el));
  return { c, out, got };
}

test("@xmpp/client logs in with SASL2 and Bind2: one <authenticate/>, a <bound/> resource made of its tag, SM enabled inline", { timeout: 15_000 }, async () => {
  const { c, out } = xc("alice", "a-pass", "phone");
  c.reconnect.stop();
  try {
    const address = String(await within(c.start(), 10_000, "online"));
    assert.match(address, /^alice@localhost\/phone\/[A-Za-z0-9_-]{8}$/);
    assert.ok(out.some((s) => s.startsWith("<authenticate") && s.includes(SASL2)), "authenticated with SASL2");
    assert.ok(!out.some((s) => s.startsWith("<auth ")), "not with RFC 6120 SASL");
    assert.ok(!out.some((s) => s.includes("urn:ietf:params:xml:ns:xmpp-bind")), "no RFC 6120 bind");
    await waitUntil(() => c.streamManagement.enabled === true && c.streamManagement.id !== "", 5000, "sm enabled inline");
    // The session works: bob reaches the bound resource.
    const got = new Promise<any>((r) => c.on("stanza", (el: any) => el.is("message") && r(el)));
    await c.send(xml("presence"));
    const bob = await online(tcp, "bob", "b-pass", { presence: false });
    await bob.c.send(xml("message", { to: address, type: "chat" }, xml("body", {}, "hi")));
    assert.equal((await within(got, 5000, "message")).getChildText("body"), "hi");
    await bob.stop();
  } finally {
    await c.stop().catch(() => {});
  }
});

test("@xmpp/client: its TCP connection is destroyed, it resumes inline in the <authenticate/>, nothing lost or doubled", { timeout: 30_000 }, async () => {
  const { c, out } = xc("alice", "a-pass", "mob");
  const got: string[] = [];
  c.on("stanza", (el: any) => {
    if (el.is("message") && el.getChildText("body") !== null) got.push(el.getChildText("body"));
  });
  let resumed = 0;
  c.streamManagement.on("resumed", () => resumed++);
  const outcomes: string[] = [];
  c.on("element", (el: any) => (el.is("success", SASL2) || el.is("failure", SASL2)) && outcomes.push(String(el)));
  c.reconnect.delay = 50;
  const address = String(await c.start());
  await c.send(xml("presence"));
  await waitUntil(() => c.streamManagement.enabled === true && c.streamManagement.id !== "", 5000, "sm enabled");
  const bob = await online(tcp, "bob", "b-pass", { presence: false });
  const N = 40;
  try {
    for (let i = 0; i < N; i++) {
      await bob.c.send(xml("message", { to: address, type: "chat" }, xml("body", {}, String(i))));
      if (i === 15) c.socket.socket.destroy();
    }
    await within(waitUntil(() => got.length >= N, 20_000, () => `got ${got.length} of ${N}`), 25_000, "all messages");
    assert.deepEqual(got, Array.from({ length: N }, (_, i) => String(i)), "each once, in order");
    // @xmpp/client tells "resumed" after re-sending its own unacknowledged stanzas, which may be after the messages came.
    await waitUntil(() => resumed > 0, 5000, () => `resumed, not a new session: ${outcomes.join("\n")}`);
    assert.equal(resumed, 1);
    const auths = out.filter((s) => s.startsWith("<authenticate"));
    assert.equal(auths.length, 2);
    assert.match(auths[1], /<resume xmlns="urn:xmpp:sm:3"/, "the resumption rode in the <authenticate/>");
    // XEP-0484: the first login got a token; the reconnection used it instead of the password, all in one round trip.
    assert.match(auths[0], /<request-token xmlns="urn:xmpp:fast:0"/);
    assert.match(auths[1], /mechanism="HT-SHA-256-NONE"/);
    assert.equal(out.filter((s) => s.startsWith("<response")).length, 1, "one SCRAM response at the first login, none at the second");
    assert.ok(!out.some((s) => s.startsWith("<resume")), "no separate <resume/>");
    assert.equal(String(c.jid), address, "the same full JID");
  } finally {
    c.reconnect.stop();
    await c.stop().catch(() => {});
    await bob.stop();
  }
});

test("@xmpp/client over RFC 7395 WebSocket: SASL2 and Bind2 (features after <success/> in a framing message of their own)", { timeout: 15_000 }, async () => {
  const wsl = ts.server.listeners.find((l) => l.config.transport === "websocket")!;
  const c = client({ service: `ws://127.0.0.1:${wsl.port}/xmpp-websocket`, domain: "localhost", username: "bob", password: "b-pass", resource: "web" });
  c.on("error", () => {});
  c.reconnect.stop();
  const out: string[] = [];
  c.on("send", (el: any) => out.push(String(el)));
  try {
    const address = String(await within(c.start(), 10_000, "online over WebSocket"));
    assert.match(address, /^bob@localhost\/web\/[A-Za-z0-9_-]{8}$/);
    assert.ok(out.some((s) => s.startsWith("<authenticate") && s.includes(SASL2)));
    assert.ok(!out.some((s) => s.includes("urn:xmpp:fast:0") && s.includes("request-token")), "no FAST over plain ws");
    const res = await c.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    assert.equal(res.attrs.type, "result");
  } finally {
    await c.stop().catch(() => {});
  }
});

/** A raw stream on the plain TCP listener, features read. */
async function rawOpen(): Promise<Raw> {
  const r = new Raw(tcp);
  await r.ready();
  r.send(HEADER);
  await r.until(/<\/stream:features>/);
  return r;
}
const plainIr = (u: string, p: string) => Buffer.from(`\u0000${u}\u0000${p}`).toString("base64");

test("the feature lists the password mechanisms, Bind2 with carbons and SM inline, and SM resumption; RFC 6120 SASL stays", { timeout: 10_000 }, async () => {
  const r = await rawOpen();
  try {
    const f = r.text;
    assert.match(f, /<authentication xmlns=["']urn:xmpp:sasl:2["']>.*<mechanism>SCRAM-SHA-256<\/mechanism>.*<mechanism>PLAIN<\/mechanism>/);
    assert.match(f, /<bind xmlns=["']urn:xmpp:bind:0["']><inline><feature var=["']urn:xmpp:carbons:2["']\/><feature var=["']urn:xmpp:sm:3["']\/><\/inline><\/bind>/);
    assert.match(f, /<sm xmlns=["']urn:xmpp:sm:3["']\/>/);
    assert.match(f, /<mechanisms xmlns=["']urn:ietf:params:xml:ns:xmpp-sasl["']>/);
    assert.doesNotMatch(f, /urn:xmpp:fast:0/, "no FAST without TLS");
  } finally {
    r.destroy();
  }
});

test("raw SASL2 PLAIN with Bind2 and carbons inline: <success> with the full JID and <bound/>, then features, no restart", { timeout: 10_000 }, async () => {
  const r = await rawOpen();
  try {
    r.text = "";
    r.send(`<authenticate xmlns='${SASL2}' mechanism='PLAIN'><initial-response>${plainIr("alice", "a-pass")}</initial-response><user-agent id='d4565fa7-4d72-4749-b3d3-740edbf87770'><software>raw</software></user-agent><bind xmlns='urn:xmpp:bind:0'><tag>Raw Client/1</tag><enable xmlns='urn:xmpp:carbons:2'/></bind></authenticate>`);
    const text = await r.until(/<\/success>[\s\S]*features/);
    const jid = text.match(/<authorization-identifier>([^<]+)<\/authorization-identifier>/)![1];
    assert.match(jid, /^alice@localhost\/RawClient1\/[A-Za-z0-9_-]{8}$/, "the tag without spaces and slashes, a slash, the server's part");
    assert.match(text, /<bound xmlns=["']urn:xmpp:bind:0["']\/?>/);
    const session = ts.server.proxy.sessions.get(jid) as { wantsCopies?: boolean } | undefined;
    assert.equal(session?.wantsCopies, true, "carbons on");
    // Bound: stanzas flow on the same stream.
    r.send(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await r.until(/id=["']p1["']/);
    // Carbons work: a chat from bob to another resource of alice reaches this one as a <received/> copy.
    r.send("<presence/>");
    const other = await online(tcp, "alice", "a-pass", { resource: "desk" });
    const bob = await online(tcp, "bob", "b-pass", { presence: false });
    try {
      await bob.c.send(xml("message", { to: other.jid, type: "chat", id: "c1" }, xml("body", {}, "copy me")));
      await other.waitFor((el: any) => el.is("message") && el.attrs.id === "c1");
      await r.until(/<received xmlns=["']urn:xmpp:carbons:2["']>[\s\S]*copy me/);
    } finally {
      await other.stop();
      await bob.stop();
    }
  } finally {
    r.destroy();
  }
});

test("raw SASL2 SCRAM-SHA-1 challenge/response: the server-final message comes as <additional-data>", { timeout: 10_000 }, async () => {
  const { createHash, createHmac, pbkdf2Sync } = await import("node:crypto");
  const r = await rawOpen();
  try {
    r.text = "";
    const cnonce = "fyko+d2lbbFgONRv9qkxdawL";
    const first = `n=alice,r=${cnonce}`;
    r.send(`<authenticate xmlns='${SASL2}' mechanism='SCRAM-SHA-1'><initial-response>${Buffer.from(`n,,${first}`).toString("base64")}</initial-response></authenticate>`);
    const ch = (await r.until(/<\/challenge>/)).match(/<challenge xmlns=["']urn:xmpp:sasl:2["']>([^<]+)<\/challenge>/)![1];
    const serverFirst = Buffer.from(ch, "base64").toString();
    const [, nonce, salt, iters] = serverFirst.match(/^r=([^,]+),s=([^,]+),i=(\d+)$/)!;
    const salted = pbkdf2Sync("a-pass", Buffer.from(salt, "base64"), Number(iters), 20, "sha1");
    const clientKey = createHmac("sha1", salted).update("Client Key").digest();
    const stored = createHash("sha1").update(clientKey).digest();
    const withoutProof = `c=biws,r=${nonce}`;
    const authMsg = `${first},${serverFirst},${withoutProof}`;
    const sig = createHmac("sha1", stored).update(authMsg).digest();
    const proof = Buffer.from(clientKey.map((b, i) => b ^ sig[i]));
    r.text = "";
    r.send(`<response xmlns='${SASL2}'>${Buffer.from(`${withoutProof},p=${proof.toString("base64")}`).toString("base64")}</response>`);
    const text = await r.until(/<\/success>/);
    const serverKey = createHmac("sha1", salted).update("Server Key").digest();
    const v = createHmac("sha1", serverKey).update(authMsg).digest("base64");
    const add = text.match(/<additional-data>([^<]+)<\/additional-data>/)![1];
    assert.equal(Buffer.from(add, "base64").toString(), `v=${v}`);
    assert.match(text, /<authorization-identifier>alice@localhost<\/authorization-identifier>/, "bare: nothing bound");
    // Not bound: the features offer RFC 6120 bind and SM.
    await r.until(/urn:ietf:params:xml:ns:xmpp-bind/);
  } finally {
    r.destroy();
  }
});

test("bad input: unknown mechanism, wrong password, bad base64, a <response/> with nothing in progress, an oversized user-agent id: each a <failure/>, the stream goes on", { timeout: 20_000 }, async () => {
  const other = await online(tcp, "bob", "b-pass", { presence: false });
  const fail = async (send: string, cond: string) => {
    // A connection each: RFC 6120 §6.4.5's retry limit (limits.maxAuthAttempts) is not what is tested here.
    const r = await rawOpen();
    try {
      r.text = "";
      r.send(send);
      const t = await r.until(/<\/failure>/);
      assert.match(t, new RegExp(`<failure xmlns=["']urn:xmpp:sasl:2["']><${cond} xmlns=["']urn:ietf:params:xml:ns:xmpp-sasl["']\\/>`), t);
      // Still negotiating on the same stream: a good login now works.
      r.text = "";
      r.send(`<authenticate xmlns='${SASL2}' mechanism='PLAIN'><initial-response>${plainIr("alice", "a-pass")}</initial-response></authenticate>`);
      await r.until(/<\/success>/);
    } finally {
      r.destroy();
    }
  };
  try {
    await fail(`<authenticate xmlns='${SASL2}' mechanism='X-NOPE'><initial-response>AA==</initial-response></authenticate>`, "invalid-mechanism");
    await fail(`<authenticate xmlns='${SASL2}' mechanism='PLAIN'><initial-response>${plainIr("alice", "wrong")}</initial-response></authenticate>`, "not-authorized");
    await fail(`<authenticate xmlns='${SASL2}' mechanism='PLAIN'><initial-response>!!!</initial-response></authenticate>`, "incorrect-encoding");
    await fail(`<response xmlns='${SASL2}'>AA==</response>`, "malformed-request");
    await fail(`<authenticate xmlns='${SASL2}' mechanism='PLAIN'><user-agent id='${"x".repeat(300)}'/></authenticate>`, "malformed-request");
    await fail(`<authenticate xmlns='${SASL2}'/>`, "invalid-mechanism");
    // Nobody else noticed.
    await pingServer(other);
  } finally {
    await other.stop();
  }
});

/** An XEP-0199 ping answered with a result. */
async function pingServer(o: { c: any }): Promise<void> {
  const res = await o.c.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
  assert.equal(res.attrs.type, "result");
}

test("bad input: a huge initial response ends that stream only; <authenticate/> after authentication is a policy violation", { timeout: 15_000 }, async () => {
  const other = await online(tcp, "bob", "b-pass", { presence: false });
  const r = await rawOpen();
  const r2 = await rawOpen();
  try {
    r.send(`<authenticate xmlns='${SASL2}' mechanism='PLAIN'><initial-response>${"A".repeat(ts.config.limits.maxStanzaBytes + 16)}</initial-response></authenticate>`);
    await r.whenClosed(10_000);
    assert.match(r.text, /<stream:error>/);
    r2.send(`<authenticate xmlns='${SASL2}' mechanism='PLAIN'><initial-response>${plainIr("alice", "a-pass")}</initial-response></authenticate>`);
    await r2.until(/<\/success>/);
    r2.send(`<authenticate xmlns='${SASL2}' mechanism='PLAIN'><initial-response>${plainIr("alice", "a-pass")}</initial-response></authenticate>`);
    await r2.whenClosed(5000);
    assert.match(r2.text, /<policy-violation/);
    await pingServer(other);
  } finally {
    r.destroy();
    r2.destroy();
    await other.stop();
  }
});

test("raw inline resumption: <resume/> in <authenticate/> answers <resumed/> inside <success/> with the full JID, an unknown one <failed/> then <bound/>", { timeout: 15_000 }, async () => {
  const r = await rawOpen();
  r.text = "";
  r.send(`<authenticate xmlns='${SASL2}' mechanism='PLAIN'><initial-response>${plainIr("alice", "a-pass")}</initial-response><bind xmlns='urn:xmpp:bind:0'><tag>t</tag><enable xmlns='${SM}' resume='true'/></bind></authenticate>`);
  const t1 = await r.until(/<\/success>/);
  const jid = t1.match(/<authorization-identifier>([^<]+)</)![1];
  const id = t1.match(/<enabled xmlns=["']urn:xmpp:sm:3["'] id=["']([^"']+)["'] resume=["']true["']/)![1];
  r.destroy();
  await waitUntil(() => (ts.server.proxy.sessions.get(jid) as { suspended?: boolean } | undefined)?.suspended === true, 5000, "suspended");
  const r2 = await rawOpen();
  try {
    r2.text = "";
    r2.send(`<authenticate xmlns='${SASL2}' mechanism='PLAIN'><initial-response>${plainIr("alice", "a-pass")}</initial-response><resume xmlns='${SM}' previd='${id}' h='0'/><bind xmlns='urn:xmpp:bind:0'><tag>t</tag></bind></authenticate>`);
    const t2 = await r2.until(/<\/success>/);
    const esc = jid.split(".").join("\\.");
    assert.match(t2, new RegExp(`<authorization-identifier>${esc}</authorization-identifier><resumed xmlns=["']urn:xmpp:sm:3["'] h=["']0["'] previd=["']${id}["']`));
    assert.doesNotMatch(t2, /<bound/, "resumed, so not bound anew");
    r2.text = "";
    r2.send(`<iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await r2.until(/id=["']p2["']/);
  } finally {
    r2.destroy();
  }
  const r3 = await rawOpen();
  try {
    r3.text = "";
    r3.send(`<authenticate xmlns='${SASL2}' mechanism='PLAIN'><initial-response>${plainIr("alice", "a-pass")}</initial-response><resume xmlns='${SM}' previd='nope' h='0'/><bind xmlns='urn:xmpp:bind:0'/></authenticate>`);
    const t3 = await r3.until(/<\/success>/);
    assert.match(t3, /<failed xmlns=["']urn:xmpp:sm:3["']><item-not-found[^>]*\/><\/failed><bound xmlns=["']urn:xmpp:bind:0["']/);
  } finally {
    r3.destroy();
  }
});
