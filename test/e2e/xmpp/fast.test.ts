import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { createHash, createHmac, randomUUID } from "node:crypto";
import { client, xml } from "@xmpp/client";
import { CA, startXmppServer, within, type TestServer } from "../../helpers.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import type { SqliteStore } from "../../../src/store/sqlite-store.js";
import { HEADER, Raw } from "./util.js";

// XEP-0484 FAST over SASL2 on a real server: @xmpp/client 0.14 obtains a token
// with its password and comes back with the token alone; raw TLS sockets for
// the exact elements (invalidation, rotation, replay counts, channel binding).
// Run with NODE_EXTRA_CA_CERTS=test/fixtures/localhost.crt.

const SASL2 = "urn:xmpp:sasl:2";
const FAST = "urn:xmpp:fast:0";
let ts: TestServer;
let tls: number;

before(async () => {
  // Many refusals on purpose, all from 127.0.0.1: the per-address limit is not what is tested here.
  ts = await startXmppServer({ xmpp: { maxAuthFailuresPerIp: 1000, sasl2: { enabled: true }, sm: { resumeTimeoutMs: 5000 } } }, { alice: "a-pass", bob: "b-pass", carol: "c-pass" });
  tls = ts.port("xmpp", "tls");
}, { timeout: 15_000 });
after(() => ts.stop());

const db = () => (ts.server.store as SqliteStore).db;

interface Token {
  mechanism: string;
  token: string;
  expiry: string;
}

/** An @xmpp/client on direct TLS with a fixed user-agent id; `out`: every element it sent. */
function xc(credentials: Record<string, unknown>, agent: string): { c: any; out: string[]; saved: Token[] } {
  const c = client({ service: `xmpps://127.0.0.1:${tls}`, domain: "localhost", credentials, userAgent: xml("user-agent", { id: agent }, xml("software", {}, "fast-test")), resource: "fast" });
  c.on("error", () => {});
  c.reconnect.stop();
  const out: string[] = [];
  c.on("send", (el: any) => out.push(String(el)));
  const saved: Token[] = [];
  const save = c.fast.saveToken.bind(c.fast);
  c.fast.saveToken = async (t: Token) => {
    saved.push(t);
    await save(t);
  };
  return { c, out, saved };
}

/** A raw XMPP stream over direct TLS. */
class TlsRaw {
  text = "";
  closed = false;
  readonly sock: TLSSocket;
  private notify: (() => void) | null = null;
  constructor() {
    this.sock = tlsConnect({ port: tls, host: "127.0.0.1", servername: "localhost", ca: CA });
    this.sock.setEncoding("utf8");
    this.sock.on("data", (d: string) => {
      this.text += d;
      this.notify?.();
    });
    this.sock.on("close", () => {
      this.closed = true;
      this.notify?.();
    });
    this.sock.on("error", () => {});
  }
  async open(): Promise<void> {
    await new Promise<void>((r) => this.sock.once("secureConnect", () => r()));
    this.sock.write(HEADER);
    await this.until(/<\/stream:features>/);
  }
  async until(re: RegExp, ms = 5000): Promise<string> {
    const deadline = Date.now() + ms;
    while (!re.test(this.text)) {
      if (this.closed) throw new Error(`closed before ${re}; got: ${this.text}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${re}; got: ${this.text}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.notify = () => (clearTimeout(t), r());
      });
    }
    return this.text;
  }
  send(s: string): void {
    this.text = "";
    this.sock.write(s);
  }
  destroy(): void {
    this.sock.destroy();
  }
}

const plainIr = (u: string, p: string) => Buffer.from(`\u0000${u}\u0000${p}`).toString("base64");
/** HT's initial message keyed with the token itself (the server keys with its hash: RFC 2104 makes them equal). */
const htIr = (u: string, token: string, cb: Buffer = Buffer.alloc(0)) => Buffer.concat([Buffer.from(`${u}\u0000`), createHmac("sha256", Buffer.from(token)).update("Initiator").update(cb).digest()]).toString("base64");

/** Password login on a raw TLS stream asking for a token for `mech`; returns the token. */
async function rawToken(user: string, password: string, agent: string, mech = "HT-SHA-256-NONE"): Promise<string> {
  const r = new TlsRaw();
  try {
    await r.open();
    r.send(`<authenticate xmlns='${SASL2}' mechanism='PLAIN'><initial-response>${plainIr(user, password)}</initial-response><user-agent id='${agent}'/><request-token xmlns='${FAST}' mechanism='${mech}'/></authenticate>`);
    const t = await r.until(/<\/success>/);
    return t.match(/<token xmlns=["']urn:xmpp:fast:0["'] expiry=["'][^"']+["'] token=["']([^"']+)["']/)![1];
  } finally {
    r.destroy();
  }
}

/** One HT authentication on a raw TLS stream: the text up to <success/> or <failure/>. */
async function rawHt(user: string, token: string, agent: string, fast = `<fast xmlns='${FAST}'/>`, extra = "", mech = "HT-SHA-256-NONE", cb?: (s: TLSSocket) => Buffer): Promise<string> {
  const r = new TlsRaw();
  try {
    await r.open();
    r.send(`<authenticate xmlns='${SASL2}' mechanism='${mech}'><initial-response>${htIr(user, token, cb?.(r.sock))}</initial-response><user-agent id='${agent}'/>${fast}${extra}</authenticate>`);
    return await r.until(/<\/success>|<\/failure>/);
  } finally {
    r.destroy();
  }
}

test("@xmpp/client: a password login asks for and gets a token (stored hashed), then a new client logs in with the token alone", { timeout: 20_000 }, async () => {
  const agent = randomUUID();
  const a = xc({ username: "alice", password: "a-pass" }, agent);
  let token: Token;
  let first = "";
  try {
    first = String(await within(a.c.start(), 10_000, "password login"));
    assert.ok(a.out.some((s) => s.startsWith("<authenticate") && s.includes(`<request-token xmlns="${FAST}" mechanism="HT-SHA-256-NONE"/>`)), a.out.join("\n"));
    assert.equal(a.saved.length, 1, "a token in the <success/>");
    token = a.saved[0];
    assert.ok(new Date(token.expiry).getTime() > Date.now() + 13 * 86400_000, "valid for the configured 14 days");
    const rows = db().prepare("SELECT agent, slot, mechanism, hash FROM fast_tokens WHERE username = 'alice'").all() as { agent: string; slot: string; mechanism: string; hash: Buffer }[];
    assert.deepEqual(rows.map((r) => [r.agent, r.slot, r.mechanism]), [[agent, "new", "HT-SHA-256-NONE"]]);
    assert.deepEqual(rows[0].hash, createHash("sha256").update(token.token).digest(), "only the token's hash is kept");
  } finally {
    await a.c.stop().catch(() => {});
  }
  const b = xc({ username: "alice", token: token! }, agent);
  try {
    const address = String(await within(b.c.start(), 10_000, "token login"));
    assert.match(address, /^alice@localhost\/fast\/[A-Za-z0-9_-]{8}$/);
    assert.equal(address, first, "the same user-agent id and tag: the same full JID (XEP-0386 §3.2.1)");
    const auth = b.out.find((s) => s.startsWith("<authenticate"))!;
    assert.match(auth, /mechanism="HT-SHA-256-NONE"/);
    assert.match(auth, /<fast xmlns="urn:xmpp:fast:0"\/>/);
    const res = await b.c.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    assert.equal(res.attrs.type, "result");
    // Used: the token moved from the "new" slot to "current".
    assert.deepEqual(db().prepare("SELECT slot FROM fast_tokens WHERE username = 'alice' AND agent = ?").all(agent), [{ slot: "current" }]);
  } finally {
    await b.c.stop().catch(() => {});
  }
});

test("refused: a wrong token, the right token from another user-agent id or with another mechanism, an expired one; a <failure/>, the client falls back", { timeout: 20_000 }, async () => {
  const agent = randomUUID();
  const token = await rawToken("bob", "b-pass", agent);
  const notAuthorized = /<failure xmlns=["']urn:xmpp:sasl:2["']><not-authorized xmlns=["']urn:ietf:params:xml:ns:xmpp-sasl["']\/>/;
  assert.match(await rawHt("bob", token.slice(0, -2) + "xx", agent), notAuthorized, "wrong token");
  assert.match(await rawHt("bob", token, randomUUID()), notAuthorized, "another client's id");
  assert.match(await rawHt("bob", token, ""), notAuthorized, "no user-agent id");
  assert.match(await rawHt("carol", token, agent), notAuthorized, "another account");
  assert.match(await rawHt("bob", token, agent, undefined, "", "HT-SHA-256-ENDP", endpoint), notAuthorized, "bound to its mechanism");
  assert.match(await rawHt("bob", token, agent), /<\/success>/, "the right one still works");
  db().prepare("UPDATE fast_tokens SET expires_at = ? WHERE username = 'bob'").run(Date.now() - 1);
  assert.match(await rawHt("bob", token, agent), notAuthorized, "expired");
  // @xmpp/client with a refused token: the server's <failure/>, and no session.
  const c = xc({ username: "bob", token: { mechanism: "HT-SHA-256-NONE", token, expiry: new Date(Date.now() + 86400_000).toISOString() } }, agent);
  const failures: string[] = [];
  c.c.on("element", (el: any) => el.is("failure", SASL2) && failures.push(String(el)));
  await assert.rejects(within(c.c.start(), 10_000, "refused"));
  await c.c.stop().catch(() => {});
  assert.match(failures[0] ?? "", /not-authorized/);
});

test("<fast invalidate='true'/> succeeds once and revokes the client's tokens; a new password revokes every token of the account", { timeout: 20_000 }, async () => {
  const agent = randomUUID();
  const token = await rawToken("carol", "c-pass", agent);
  assert.match(await rawHt("carol", token, agent, `<fast xmlns='${FAST}' invalidate='true'/>`), /<\/success>/);
  assert.match(await rawHt("carol", token, agent), /not-authorized/, "invalidated");
  const t1 = await rawToken("carol", "c-pass", agent);
  const t2 = await rawToken("carol", "c-pass", randomUUID());
  const other = randomUUID();
  const t3 = await rawToken("carol", "c-pass", other);
  assert.match(await rawHt("carol", t3, other), /<\/success>/);
  await ts.server.store.putUser("carol", await deriveCredentials("c-new", ts.config.auth.scramIterations));
  assert.equal((db().prepare("SELECT COUNT(*) AS n FROM fast_tokens WHERE username = 'carol'").get() as { n: number }).n, 0);
  for (const t of [t1, t2, t3]) assert.match(await rawHt("carol", t, agent), /not-authorized/);
  await ts.server.store.putUser("carol", await deriveCredentials("c-pass", ts.config.auth.scramIterations));
});

test("rotation: a token near expiry gets a successor in <success/>; the old one works until the new one is used, then not", { timeout: 20_000 }, async () => {
  const agent = randomUUID();
  const old = await rawToken("alice", "a-pass", agent);
  assert.doesNotMatch(await rawHt("alice", old, agent), /<token/, "far from expiry: no new token");
  // Within xmpp.fast.rotateBeforeMs (3 days by default) of its expiry.
  db().prepare("UPDATE fast_tokens SET expires_at = ? WHERE username = 'alice' AND agent = ?").run(Date.now() + 3600_000, agent);
  const t = await rawHt("alice", old, agent);
  const fresh = t.match(/<token xmlns=["']urn:xmpp:fast:0["'] expiry=["'][^"']+["'] token=["']([^"']+)["']/)![1];
  assert.notEqual(fresh, old);
  // The client may not have received it: the old token still works (it is rotated again, replacing the unused one).
  const again = (await rawHt("alice", old, agent)).match(/token=["']([^"']+)["']/)![1];
  assert.match(await rawHt("alice", fresh, agent), /not-authorized/, "an unused successor is replaced by the next one");
  assert.match(await rawHt("alice", again, agent), /<\/success>/, "the newest is used");
  assert.match(await rawHt("alice", old, agent), /not-authorized/, "older than the one used: invalid");
  // A client asking for a token gets one even when its own is fresh.
  assert.match(await rawHt("alice", again, agent, `<fast xmlns='${FAST}'/>`, `<request-token xmlns='${FAST}' mechanism='HT-SHA-256-NONE'/>`), /<token /);
});

test("replay protection: a count must exceed the last one accepted for the token", { timeout: 20_000 }, async () => {
  const agent = randomUUID();
  const token = await rawToken("bob", "b-pass", agent);
  assert.match(await rawHt("bob", token, agent, `<fast xmlns='${FAST}' count='5'/>`), /<\/success>/);
  assert.match(await rawHt("bob", token, agent, `<fast xmlns='${FAST}' count='5'/>`), /not-authorized/, "replayed");
  assert.match(await rawHt("bob", token, agent, `<fast xmlns='${FAST}' count='4'/>`), /not-authorized/, "older");
  assert.match(await rawHt("bob", token, agent, `<fast xmlns='${FAST}' count='6'/>`), /<\/success>/);
  assert.match(await rawHt("bob", token, agent, `<fast xmlns='${FAST}' count='abc'/>`), /malformed-request/);
});

/** RFC 5929 tls-server-end-point of the server's certificate (the fixture is signed with SHA-256). */
const endpoint = (s: TLSSocket) => createHash("sha256").update(s.getPeerCertificate().raw).digest();
/** RFC 9266 tls-exporter (TLS 1.3). */
const exporter = (s: TLSSocket) => s.exportKeyingMaterial(32, "EXPORTER-Channel-Binding", Buffer.alloc(0));

test("channel binding: HT-SHA-256-ENDP and -EXPR offered over TLS and verified with the connection's binding; FAST not offered without TLS", { timeout: 20_000 }, async () => {
  const r = new TlsRaw();
  await r.open();
  assert.match(r.text, /<fast xmlns=["']urn:xmpp:fast:0["']><mechanism>HT-SHA-256-ENDP<\/mechanism><mechanism>HT-SHA-256-EXPR<\/mechanism><mechanism>HT-SHA-256-NONE<\/mechanism><\/fast>/);
  r.destroy();
  for (const [mech, cb] of [["HT-SHA-256-ENDP", endpoint], ["HT-SHA-256-EXPR", exporter]] as const) {
    const agent = randomUUID();
    const token = await rawToken("alice", "a-pass", agent, mech);
    let bound = Buffer.alloc(0);
    const ok = await rawHt("alice", token, agent, undefined, "", mech, (sock) => (bound = cb(sock)));
    assert.match(ok, /<\/success>/, mech);
    // The server proves it holds the token for this very connection: HMAC(token, "Responder" || cb-data).
    const add = ok.match(/<additional-data>([^<]+)<\/additional-data>/)![1];
    assert.deepEqual(Buffer.from(add, "base64"), createHmac("sha256", Buffer.from(token)).update("Responder").update(bound).digest(), mech);
    // The server's answer is bound too: HMAC(token, "Responder" || cb-data), checked with the client's own binding.
    assert.match(await rawHt("alice", token, agent, undefined, "", mech, () => Buffer.alloc(32)), /not-authorized/, `${mech} with another binding`);
  }
  const plain = new Raw(ts.port("xmpp", "tcp"));
  await plain.ready();
  plain.send(HEADER);
  await plain.until(/<\/stream:features>/);
  assert.doesNotMatch(plain.text, /urn:xmpp:fast:0/);
  plain.destroy();
});
