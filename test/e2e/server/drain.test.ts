import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { performance } from "node:perf_hooks";
import { RelayClient, RelayError, type IncomingRequest } from "../../../src/relay/client.js";
import type { Header } from "../../../src/relay/codec.js";
import { WriterThread } from "../../../src/transport/writer-thread.js";
import { workerProblems } from "../../../src/admin/health.js";
import { startServer, waitUntil, within, type TestServer } from "../../helpers.js";
import { HEADER, Raw, online, rawLogin } from "../xmpp/util.js";

/** Graceful drain (docs/operations.md, "Stopping and draining"): a real server, real clients, Server.stop(). */

const LISTENERS = [
  { protocol: "relay", transport: "tcp", host: "127.0.0.1", port: 0 },
  { protocol: "relay", transport: "websocket", host: "127.0.0.1", port: 0, path: "/relay" },
  { protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 },
  { protocol: "xmpp", transport: "websocket", host: "127.0.0.1", port: 0, path: "/xmpp-websocket" },
];
const USERS = { alice: "a", bob: "b", carol: "c", frank: "f", gina: "g", dave: "d", erin: "e" };

function start(drainTimeoutMs: number, extra: Record<string, unknown> = {}): Promise<TestServer> {
  return startServer({ listeners: LISTENERS, drainTimeoutMs, xmpp: { allowPlainWithoutTls: true }, ...extra }, USERS);
}

/** The bob's side of a conversation: N chat messages to `to`, then a ping the server answers after taking them all. */
async function sendAndSettle(from: Raw, to: string, n: number, body: string, pingId: string): Promise<void> {
  let out = "";
  for (let i = 0; i < n; i++) out += `<message to='${to}' type='chat' id='m${i}'><body>n${i}:${body}</body></message>`;
  from.send(out);
  from.send(`<iq type='get' id='${pingId}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await from.until(new RegExp(`id=["']${pingId}["']`), 10_000);
}

/** Every `n<i>:` in order, each once, all before `before` (an index in text). */
function assertInOrder(text: string, n: number, before: number): void {
  let at = 0;
  for (let i = 0; i < n; i++) {
    const k = text.indexOf(`<body>n${i}:`, at);
    assert.ok(k >= 0, `message n${i} arrived`);
    assert.ok(k < before, `message n${i} came before the shutdown notice`);
    at = k + 1;
  }
}

for (const writerThread of [true, false]) test(`stop(): each client gets what was sent to it, then its protocol's shutdown notice, then the close; pending requests fail (io.writerThread ${writerThread})`, { timeout: 30_000 }, async () => {
  const ts = await start(5000, { limits: { maxOutboundBytes: 64 << 20 }, io: { writerThread } });
  const xmppPort = ts.port("xmpp", "tcp");
  const slotsBefore = WriterThread.get()?.opened ?? 0;
  try {
    // XMPP: alice (raw, not reading: her messages back up in the server), bob the sender, carol who never answers.
    const alice = await rawLogin(xmppPort, "alice", "a", "phone");
    const bob = await rawLogin(xmppPort, "bob", "b", "desk");
    const carol = await rawLogin(xmppPort, "carol", "c", "quiet");
    const frank = await online(xmppPort, "frank", "f", { resource: "lib" });
    // Relay: dave over TCP, erin over WebSocket; erin never answers dave's request.
    const dave = await RelayClient.connect({ port: ts.port("relay", "tcp") });
    await dave.login({ user: "dave", password: "d", resource: "gw" });
    const erin = await RelayClient.connect({ url: `ws://127.0.0.1:${ts.port("relay", "websocket")}/relay` });
    await erin.login({ user: "erin", password: "e", resource: "gw" });
    const daveFrames: Header[] = [];
    const erinFrames: Header[] = [];
    dave.on("frame", (h: Header) => daveFrames.push(h));
    erin.on("frame", (h: Header) => erinFrames.push(h));
    const daveClosed = new Promise<void>((r) => dave.once("close", () => r()));
    const erinClosed = new Promise<void>((r) => erin.once("close", () => r()));
    const frankErrors: string[] = [];
    frank.c.on("error", (e: { condition?: string }) => frankErrors.push(String(e.condition)));
    // The stream error makes @xmpp/client drop the connection: status "disconnect" once the socket closes.
    const frankOffline = new Promise<void>((r) => frank.c.once("disconnect", () => r()));
    // gina over RFC 7395 WebSocket: the stream error, then <close/>.
    const gina = await online(`ws://127.0.0.1:${ts.port("xmpp", "websocket")}/xmpp-websocket`, "gina", "g", { resource: "web" });
    const ginaErrors: string[] = [];
    gina.c.on("error", (e: { condition?: string }) => ginaErrors.push(String(e.condition)));
    const ginaOffline = new Promise<void>((r) => gina.c.once("disconnect", () => r()));
    // A connection still negotiating (stream opened, not authenticated) is ended the same way.
    const early = new Raw(xmppPort);
    await early.ready();
    early.send(HEADER);
    await early.until(/<\/stream:features>/);

    alice.pause();
    const N = 2000;
    await sendAndSettle(bob, "alice@localhost/phone", N, "x".repeat(4000), "settle1");
    await sendAndSettle(bob, frank.jid, 20, "hi", "settle2");
    await sendAndSettle(bob, gina.jid, 1, "hi", "settle3");
    // Requests pending at the stop: bob's iq to carol, dave's req to erin.
    bob.send(`<iq type='get' id='q1' to='carol@localhost/quiet'><query xmlns='urn:example:slow'/></iq>`);
    await carol.until(/id=["']q1["']/);
    const asked = new Promise<IncomingRequest>((r) => erin.once("request", r));
    const daveReq = dave.request("erin@localhost/gw", "will you?", 60_000).then(
      () => "answered",
      (e: RelayError) => e.code,
    );
    await within(asked, 5000, "erin to get dave's request");
    for (let i = 0; i < 50; i++) erin.message("dave@localhost", `r${i}`);
    await waitUntil(() => daveFrames.filter((h) => h.t === "msg").length === 50, 5000, "dave to get erin's 50 messages");
    const backlog = ts.server.listeners.reduce((n, l) => n + l.queuedBytes(), 0);
    assert.ok(backlog > 0, "alice's messages wait in the server's queues when the drain starts");

    // With the addon built, the TCP connections' output (alice's backlog) is the writer thread's to flush.
    if (writerThread && WriterThread.unavailable() === null) assert.ok((WriterThread.get()?.opened ?? 0) > slotsBefore, "output went through the writer thread");
    const t0 = performance.now();
    const stopped = ts.server.stop();
    // At once: not ready, ports closed.
    assert.ok((await workerProblems(ts.server)).includes("draining"), "readyz reports draining");
    assert.ok(ts.server.listeners.every((l) => !l.open), "every listener stopped accepting");
    const refused = await new Promise<string>((resolve) => {
      const s = connect(ts.port("relay", "tcp"), "127.0.0.1");
      s.once("connect", () => (s.destroy(), resolve("accepted")));
      s.once("error", (e: NodeJS.ErrnoException) => resolve(String(e.code)));
    });
    assert.equal(refused, "ECONNREFUSED", "a new connection is refused during the drain");

    alice.resume();
    const closed = (r: Raw) => r.whenClosed(8000);
    await Promise.all([closed(alice), closed(bob), closed(carol), within(daveClosed, 8000, "dave closed"), within(erinClosed, 8000, "erin closed"), within(frankOffline, 8000, "frank offline"), within(ginaOffline, 8000, "gina offline"), closed(early)]);
    await within(stopped, 8000, "stop() to return");
    const took = performance.now() - t0;
    assert.ok(took < 5000, `cooperative clients end the drain before its deadline (${took.toFixed(0)} ms)`);

    // alice: all N messages, in order, then <system-shutdown/>, then the end of the stream.
    const shut = alice.text.indexOf("<system-shutdown");
    assert.ok(shut > 0, "alice got <system-shutdown/>");
    assertInOrder(alice.text, N, shut);
    assert.ok(alice.text.indexOf("</stream:stream>", shut) > shut, "the stream ends after the error");
    // bob: his pending iq fails with service-unavailable before his own <system-shutdown/>.
    const bobShut = bob.text.indexOf("<system-shutdown");
    const q1 = bob.text.search(/<iq[^>]*type=["']error["'][^>]*id=["']q1["']|<iq[^>]*id=["']q1["'][^>]*type=["']error["']/);
    assert.ok(q1 >= 0 && bob.text.indexOf("service-unavailable", q1) > q1, `bob's pending iq got service-unavailable: ${bob.text.slice(-600)}`);
    assert.ok(q1 < bobShut, "the request's error comes before the shutdown notice");
    assert.ok(carol.text.includes("<system-shutdown"), "carol got <system-shutdown/>");
    // frank (@xmpp/client): his 20 messages, then the stream error.
    for (let i = 0; i < 20; i++) await frank.waitFor((el: any) => el.is("message") && String(el.getChildText("body")).startsWith(`n${i}:`), 1000);
    assert.deepEqual(frankErrors.filter((c) => c === "system-shutdown"), ["system-shutdown"], `frank's errors: ${frankErrors}`);
    await gina.waitFor((el: any) => el.is("message") && String(el.getChildText("body")).startsWith("n0:"), 1000);
    assert.deepEqual(ginaErrors.filter((c) => c === "system-shutdown"), ["system-shutdown"], `gina's errors: ${ginaErrors}`);
    assert.match(early.text, /<system-shutdown[^]*<\/stream:stream>/, "the negotiating connection too");

    // dave: erin's 50 messages, the error of his pending request, then the shutdown err, then the close.
    assert.equal(await daveReq, "unavailable");
    const reqErr = daveFrames.findIndex((h) => h.t === "err" && h.re !== undefined);
    const daveShut = daveFrames.findIndex((h) => h.t === "err" && h.re === undefined);
    const lastMsg = daveFrames.map((h) => h.t).lastIndexOf("msg");
    assert.ok(lastMsg < reqErr && reqErr < daveShut, JSON.stringify(daveFrames.slice(-3)));
    assert.deepEqual(daveFrames[daveShut], { t: "err", code: "unavailable", text: "server shutdown" });
    assert.equal(daveShut, daveFrames.length - 1, "nothing after the shutdown frame");
    assert.deepEqual(erinFrames.at(-1), { t: "err", code: "unavailable", text: "server shutdown" }, "over WebSocket too");
  } finally {
    await ts.stop();
  }
});

test("a client that does not read is cut at drainTimeoutMs; stop() returns within it and a margin", { timeout: 30_000 }, async () => {
  const DRAIN = 1500;
  const ts = await start(DRAIN, { limits: { maxOutboundBytes: 256 << 20 } });
  const xmppPort = ts.port("xmpp", "tcp");
  try {
    const slow = await rawLogin(xmppPort, "alice", "a", "slow");
    const bob = await rawLogin(xmppPort, "bob", "b", "desk");
    const dave = await RelayClient.connect({ port: ts.port("relay", "tcp") });
    await dave.login({ user: "dave", password: "d", resource: "gw" });
    const daveFrames: Header[] = [];
    dave.on("frame", (h: Header) => daveFrames.push(h));
    const daveClosed = new Promise<void>((r) => dave.once("close", () => r()));
    slow.pause();
    // Far more than loopback's socket buffers hold: most of it stays queued in the server.
    await sendAndSettle(bob, "alice@localhost/slow", 4000, "y".repeat(8000), "settle");
    const backlog = () => ts.server.listeners.reduce((n, l) => n + l.queuedBytes(), 0);
    assert.ok(backlog() > 1 << 20, `a backlog of more than 1 MiB (${backlog()})`);

    const t0 = performance.now();
    await within(ts.server.stop(), DRAIN + 2000, "stop() within drainTimeoutMs and a margin");
    const took = performance.now() - t0;
    assert.ok(took >= DRAIN - 100, `the drain waited for the slow reader until its deadline (${took.toFixed(0)} ms)`);
    // The others were served and closed meanwhile.
    await bob.whenClosed(1000);
    assert.ok(bob.text.includes("<system-shutdown"));
    await within(daveClosed, 1000, "dave closed");
    assert.deepEqual(daveFrames.at(-1), { t: "err", code: "unavailable", text: "server shutdown" });
    // The slow reader finds its connection cut once it reads again.
    slow.resume();
    await slow.whenClosed(5000);
  } finally {
    await ts.stop();
  }
});
