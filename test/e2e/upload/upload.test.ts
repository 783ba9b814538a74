import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { connect, type Socket } from "node:net";
import { xml } from "@xmpp/client";
import { startXmppServer, waitUntil, type TestServer } from "../../helpers.js";
import { online, type Online } from "../xmpp/util.js";
import { signSlot, userKey } from "../../../src/upload/slot.js";
import { UPLOAD_NS, putFile, rawHttp, requestSlot, slotError } from "./upload-util.js";

// XEP-0363 end to end on a real server: @xmpp/client asks for slots, node's fetch and raw sockets play the HTTP side.

const MAX = 1_000_000;
const QUOTA = 1_500_000;
let ts: TestServer;
let alice: Online, bob: Online;
let httpPort = 0;

before(async () => {
  ts = await startXmppServer(
    { upload: { enabled: true, http: { port: 0, headersTimeoutMs: 1000, idleTimeoutMs: 1000 }, maxFileBytes: MAX, quotaBytes: QUOTA, expireAfterMs: 3_600_000 } },
    { alice: "a-pass", bob: "b-pass" },
  );
  httpPort = ts.server.upload!.port;
  const port = ts.port("xmpp", "tcp");
  alice = await online(port, "alice", "a-pass", { resource: "r" });
  bob = await online(port, "bob", "b-pass", { resource: "r" });
}, { timeout: 15_000 });
after(async () => {
  await Promise.all([alice, bob].map((c) => c?.stop()));
  await ts.stop();
});

test("the service is in the server's disco#items; its disco#info has identity store/file, the feature and max-file-size (XEP-0128)", { timeout: 10_000 }, async () => {
  const items = await alice.c.iqCaller.get(xml("query", { xmlns: "http://jabber.org/protocol/disco#items" }), "localhost");
  assert.deepEqual(items.getChildren("item").map((i: any) => i.attrs.jid), ["upload.localhost"]);
  const info = await alice.c.iqCaller.get(xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }), "upload.localhost");
  assert.deepEqual(info.getChild("identity").attrs, { category: "store", type: "file", name: "HTTP File Upload" });
  assert.ok(info.getChildren("feature").some((f: any) => f.attrs.var === UPLOAD_NS));
  const fields = Object.fromEntries(info.getChild("x", "jabber:x:data").getChildren("field").map((f: any) => [f.attrs.var, f.getChildText("value")]));
  assert.deepEqual(fields, { FORM_TYPE: UPLOAD_NS, "max-file-size": String(MAX) });
  // Another domain is still unreachable; the service answers nothing it does not serve.
  await assert.rejects(alice.c.iqCaller.get(xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }), "elsewhere.example"), { condition: "remote-server-not-found" });
  await assert.rejects(alice.c.iqCaller.get(xml("query", { xmlns: "jabber:iq:version" }), "upload.localhost"), { condition: "service-unavailable" });
  await alice.c.iqCaller.get(xml("ping", { xmlns: "urn:xmpp:ping" }), "upload.localhost");
});

test("a slot: PUT once with its header, then GET and HEAD by anyone, byte for byte, with safe headers; a second PUT is refused", { timeout: 20_000 }, async () => {
  const body = randomBytes(300_000);
  const s = await requestSlot(alice, "très cool.jpg", body.length, "image/jpeg");
  assert.match(s.put, new RegExp(`^http://127\\.0\\.0\\.1:${httpPort}/[0-9a-f]{32}/[A-Za-z0-9_-]{22}/tr%C3%A8s%20cool\\.jpg$`));
  assert.equal(s.get, s.put);
  assert.match(s.auth, /^Bearer /);
  // A web client's CORS preflight, then the PUT itself.
  const pre = await fetch(s.put, { method: "OPTIONS", headers: { Origin: "https://web.example", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "authorization, content-type" } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "*");
  assert.match(pre.headers.get("access-control-allow-methods")!, /PUT/);
  assert.match(pre.headers.get("access-control-allow-headers")!, /Authorization/);
  assert.equal((await putFile(s, body, "image/jpeg")).status, 201);
  const r = await fetch(s.get);
  assert.equal(r.status, 200);
  assert.deepEqual(Buffer.from(await r.arrayBuffer()), body);
  assert.equal(r.headers.get("content-type"), "image/jpeg");
  assert.equal(r.headers.get("content-length"), String(body.length));
  assert.equal(r.headers.get("content-disposition"), `inline; filename="tr_s cool.jpg"; filename*=UTF-8''tr%C3%A8s%20cool.jpg`);
  assert.equal(r.headers.get("x-content-type-options"), "nosniff");
  const head = await fetch(s.get, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-length"), String(body.length));
  assert.equal((await head.arrayBuffer()).byteLength, 0);
  const again = await putFile(s, randomBytes(body.length), "image/jpeg");
  assert.equal(again.status, 409, again.text);
  assert.deepEqual(Buffer.from(await (await fetch(s.get)).arrayBuffer()), body, "the file is unchanged");
  // No content-type in the request and none in the PUT: application/octet-stream both times (§6).
  const plain = await requestSlot(alice, "notes", 3);
  const r3 = await fetch(plain.put, { method: "PUT", body: new Uint8Array([1, 2, 3]), headers: { Authorization: plain.auth } });
  assert.equal(r3.status, 201);
  assert.equal((await fetch(plain.get)).headers.get("content-type"), "application/octet-stream");
  assert.match((await fetch(plain.get)).headers.get("content-disposition")!, /^attachment; filename="notes"/);
  // A GET for the same id under another name finds nothing.
  assert.equal((await fetch(s.get.replace(/[^/]+$/, "other.jpg"))).status, 404);
  // The file is on disk under the user's key, never under its name.
  const dir = join(ts.dir, "uploads", s.put.split("/")[3]);
  assert.ok(readdirSync(dir).every((n) => /^[A-Za-z0-9_-]{22}\.(data|meta)$/.test(n)), readdirSync(dir).join(" "));
});

test("slot refusals: too large (file-too-large with max-file-size), bad filenames and types (not-acceptable), bad requests", { timeout: 10_000 }, async () => {
  const big = await slotError(alice, "big.bin", MAX + 1);
  assert.equal(big.condition, "not-acceptable");
  assert.equal(big.app.name, "file-too-large");
  assert.equal(big.app.attrs.xmlns, UPLOAD_NS);
  assert.equal(big.app.getChildText("max-file-size"), String(MAX));
  for (const name of ["", "../etc/passwd", "a\\b", "a\u0085b", "x".repeat(256), "gpj.\u202eexe", ".."]) {
    const e = await slotError(alice, name, 10);
    assert.equal(e.condition, "not-acceptable", JSON.stringify(name));
  }
  // Line breaks and tabs reach the server only as character references (XML normalizes literal ones to spaces).
  for (const [i, ref] of ["&#10;", "&#13;", "&#9;"].entries()) {
    await alice.c.write(`<iq type='get' to='upload.localhost' id='cc${i}'><request xmlns='${UPLOAD_NS}' filename='a${ref}b' size='10'/></iq>`);
    const res = await alice.waitFor((el) => el.is("iq") && el.attrs.id === `cc${i}`);
    assert.equal(res.getChild("error")?.getChildElements()[0].name, "not-acceptable", ref);
  }
  assert.equal((await slotError(alice, "a.txt", 10, "text/plain\r\nX-Evil: 1")).condition, "not-acceptable");
  assert.equal((await slotError(alice, "a.txt", "-1")).condition, "bad-request");
  assert.equal((await slotError(alice, "a.txt", "ten")).condition, "bad-request");
  // A message to the service is bounced; the stream goes on.
  await alice.c.send(xml("message", { to: "upload.localhost", id: "m1", type: "chat" }, xml("body", {}, "hi")));
  const err = await alice.waitFor((el) => el.is("message") && el.attrs.id === "m1");
  assert.equal(err.attrs.type, "error");
  assert.equal(err.attrs.from, "upload.localhost");
  await alice.c.iqCaller.get(xml("ping", { xmlns: "urn:xmpp:ping" }), "localhost");
});

test("quota: a slot past it is refused (resource-constraint with a retry stamp), and so is a PUT past it", { timeout: 20_000 }, async () => {
  const a = await requestSlot(bob, "a.bin", 900_000);
  const b = await requestSlot(bob, "b.bin", 900_000);
  // Both slots were given (nothing stored yet); the first PUT fills most of the quota, the second would pass it.
  assert.equal((await putFile(a, randomBytes(900_000))).status, 201);
  const second = await putFile(b, randomBytes(900_000));
  assert.equal(second.status, 507, second.text);
  const e = await slotError(bob, "c.bin", 700_000);
  assert.equal(e.condition, "resource-constraint");
  assert.match(e.text, /Quota exceeded: 900000 of 1500000 bytes/);
  assert.equal(e.app.name, "retry");
  const stamp = Date.parse(e.app.attrs.stamp);
  assert.ok(stamp > Date.now() + 3_500_000 && stamp < Date.now() + 3_700_000, e.app.attrs.stamp);
  // What still fits is given; alice's quota is her own.
  await requestSlot(bob, "d.bin", 500_000);
  await requestSlot(alice, "e.bin", 900_000);
});

test("bad slots: no header, forged, for another URL, expired, wrong length or type, chunked: refused with a clear status", { timeout: 20_000 }, async () => {
  const body = randomBytes(1000);
  const s = await requestSlot(alice, "f.txt", body.length, "text/plain");
  const put = (headers: Record<string, string>, b: Buffer = body, url = s.put) => fetch(url, { method: "PUT", body: new Uint8Array(b), headers }).then(async (r) => `${r.status} ${(await r.text()).trim()}`);
  assert.match(await put({ "Content-Type": "text/plain" }), /^401 /);
  assert.match(await put({ Authorization: s.auth.slice(0, -3) + "AAA", "Content-Type": "text/plain" }), /^403 not a slot/);
  assert.match(await put({ Authorization: "Bearer garbage", "Content-Type": "text/plain" }), /^403 /);
  const other = await requestSlot(alice, "g.txt", body.length, "text/plain");
  assert.match(await put({ Authorization: other.auth, "Content-Type": "text/plain" }), /^403 the token is for another URL/);
  assert.match(await put({ Authorization: s.auth, "Content-Type": "text/plain" }, randomBytes(999)), /^400 Content-Length must be 1000/);
  assert.match(await put({ Authorization: s.auth, "Content-Type": "text/plain" }, randomBytes(1001)), /^413 /);
  assert.match(await put({ Authorization: s.auth, "Content-Type": "text/html" }), /^415 Content-Type must be text\/plain/);
  // Signed with the service's own key but expired (made here: waiting out upload.slotTimeoutMs would take its minimum, 1 s).
  const key = Buffer.from(readFileSync(join(ts.dir, "uploads", "upload.key"), "utf8").trim(), "hex");
  const [user, id] = s.put.split("/").slice(3, 5);
  const expired = signSlot(key, { user, id, name: "f.txt", size: 1000, type: "text/plain", expires: Date.now() - 1 });
  assert.equal(user, userKey(key, "alice@localhost"));
  assert.match(await put({ Authorization: `Bearer ${expired}`, "Content-Type": "text/plain" }), /^403 the slot has expired/);
  const chunked = await rawHttp(httpPort, (c) => c.write(`PUT ${new URL(s.put).pathname} HTTP/1.1\r\nHost: x\r\nAuthorization: ${s.auth}\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`), 3000);
  assert.match(chunked, /^HTTP\/1\.1 411 /);
  // After all that, the slot still works, once.
  assert.match(await put({ Authorization: s.auth, "Content-Type": "text/plain" }), /^201 /);
  assert.deepEqual(Buffer.from(await (await fetch(s.get)).arrayBuffer()), body);
});

test("slow or hostile HTTP clients cost only their connection: huge headers, slowloris, stalled body, body past its length, path traversal", { timeout: 30_000 }, async () => {
  const huge = await rawHttp(httpPort, (c) => c.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`), 3000);
  assert.match(huge, /^HTTP\/1\.1 431 /);
  // Headers that never end: cut at headersTimeoutMs (1 s here), not held for ever.
  const t0 = Date.now();
  const slow = await rawHttp(httpPort, (c) => c.write("GET / HTTP/1.1\r\nHost: x\r\n"), 8000);
  assert.ok(!slow.endsWith("(open)"), "closed by the server");
  assert.ok(Date.now() - t0 < 4000, `closed after ${Date.now() - t0} ms`);
  // A body that stops half way: cut after idleTimeoutMs; the partial file is gone and the slot can be used again.
  const body = randomBytes(10_000);
  const s = await requestSlot(alice, "stall.bin", body.length);
  const path = new URL(s.put).pathname;
  const stalled = await rawHttp(httpPort, (c) => c.write(`PUT ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${s.auth}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n${body.subarray(0, 5000).toString("latin1")}`, "latin1"), 8000);
  assert.ok(!stalled.endsWith("(open)"), "the stalled upload was cut");
  const dir = join(ts.dir, "uploads", path.split("/")[1]);
  await waitUntil(() => !readdirSync(dir).some((n) => n.startsWith(path.split("/")[2])), 3000, "the partial upload removed");
  // A body longer than its Content-Length: the file gets exactly its bytes; the rest is no request (400) and ends the connection.
  const long = await rawHttp(httpPort, (c) => c.write(`PUT ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${s.auth}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n${body.toString("latin1")}GARBAGE GARBAGE\r\n\r\n`, "latin1"), 5000);
  // node:http's parser meets the excess in the same read as the body, so the upload is usually cut with it: either
  // way the answer is a 400 and the connection closed, and what is on disk is what was answered.
  assert.match(long, /^(HTTP\/1\.1 201 [^]*)?HTTP\/1\.1 400 /);
  assert.ok(!long.endsWith("(open)"));
  if (long.startsWith("HTTP/1.1 400")) {
    assert.equal((await fetch(s.get)).status, 404);
    // The server may still be cleaning up after the cut request (409 meanwhile): then the slot is free again.
    await waitUntil(async () => (await putFile(s, body)).status === 201, 5000, "the slot to be free again", 50);
  }
  assert.deepEqual(Buffer.from(await (await fetch(s.get)).arrayBuffer()), body);
  for (const p of ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", `${path.split("/").slice(0, 3).join("/")}/..%2F..%2Fupload.key`, "/upload.key", `/${path.split("/")[1]}/../upload.key`]) {
    const r = await rawHttp(httpPort, (c) => c.write(`GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`), 3000);
    assert.match(r, /^HTTP\/1\.1 404 /, p);
  }
  // Expect: 100-continue: a bad token is refused before the body is sent; a good one gets 100, then 201.
  const e1 = await requestSlot(alice, "cont.bin", 4);
  const ePath = new URL(e1.put).pathname;
  const refused = await rawHttp(httpPort, (c) => c.write(`PUT ${ePath} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x.y\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n`), 3000);
  assert.match(refused, /^HTTP\/1\.1 403 /);
  assert.doesNotMatch(refused, /100 Continue/);
  const continued = await rawHttp(httpPort, (c) => {
    c.write(`PUT ${ePath} HTTP/1.1\r\nHost: x\r\nAuthorization: ${e1.auth}\r\nContent-Type: application/octet-stream\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`);
    c.once("data", () => c.write("abcd"));
  }, 3000);
  assert.match(continued, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /);
  assert.equal(await (await fetch(e1.get)).text(), "abcd");
  assert.match(await rawHttp(httpPort, (c) => c.write(`DELETE ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`), 3000), /^HTTP\/1\.1 405 /);
  // Still serving everyone else, and the XMPP side untouched.
  assert.equal((await fetch(s.get)).status, 200);
  await alice.c.iqCaller.get(xml("ping", { xmlns: "urn:xmpp:ping" }), "localhost");
});

test("a file that cannot be written: the client gets a clear answer (500), nothing is left, and the slot can be used again", { timeout: 20_000 }, async () => {
  const body = randomBytes(300_000);
  const s = await requestSlot(bob, "blocked.bin", body.length);
  const [user, id] = new URL(s.put).pathname.split("/").slice(1, 3);
  // Its .part path taken by a directory: opening it for writing fails (as a full or broken disk would, with 507 for ENOSPC).
  const part = join(ts.dir, "uploads", user, `${id}.part`);
  mkdirSync(part, { recursive: true });
  const r = await putFile(s, body);
  assert.equal(r.status, 500, r.text);
  assert.match(r.text, /could not be written/);
  assert.ok(!existsSync(join(ts.dir, "uploads", user, `${id}.meta`)), "the claim is given back");
  rmdirSync(part);
  assert.equal((await putFile(s, body)).status, 201);
  assert.deepEqual(Buffer.from(await (await fetch(s.get)).arrayBuffer()), body);
});

test("expiry: a file is removed from disk and no longer served after upload.expireAfterMs", { timeout: 20_000 }, async () => {
  const ex = await startXmppServer({ upload: { enabled: true, http: { port: 0 }, expireAfterMs: 1500 } }, { carol: "c-pass" });
  const carol = await online(ex.port("xmpp", "tcp"), "carol", "c-pass");
  try {
    const body = randomBytes(5000);
    const s = await requestSlot(carol, "soon.bin", body.length);
    assert.equal((await putFile(s, body)).status, 201);
    assert.equal((await fetch(s.get)).status, 200);
    const [user, id] = new URL(s.get).pathname.split("/").slice(1, 3);
    const data = join(ex.dir, "uploads", user, `${id}.data`);
    assert.ok(existsSync(data));
    await waitUntil(() => !existsSync(data), 10_000, "the sweeper to remove the expired file", 50);
    assert.equal((await fetch(s.get)).status, 404);
    assert.ok(!existsSync(join(ex.dir, "uploads", user, `${id}.meta`)));
  } finally {
    await carol.stop();
    await ex.stop();
  }
});

test("upload.http.maxConnections: connections past it are closed at accept; the others are served", { timeout: 20_000 }, async () => {
  const ts2 = await startXmppServer({ upload: { enabled: true, http: { port: 0, maxConnections: 2 } } });
  const port = ts2.server.upload!.port;
  const held: Socket[] = [];
  try {
    // Two kept-alive connections, each answered once (so the server has surely counted them).
    for (let i = 0; i < 2; i++) {
      const s = connect(port, "127.0.0.1");
      held.push(s);
      s.write("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n");
      await new Promise<void>((resolve) => s.once("data", () => resolve()));
    }
    assert.equal(await rawHttp(port, (c) => c.write("GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), 3000), "", "closed without an answer");
    held.pop()!.destroy();
    await waitUntil(async () => (await rawHttp(port, (c) => c.write("GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), 3000)).startsWith("HTTP/1.1 404"), 5000, "a free place again", 50);
  } finally {
    for (const s of held) s.destroy();
    await ts2.stop();
  }
});
