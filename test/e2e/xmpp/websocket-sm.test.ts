import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { client, xml } from "@xmpp/client";
import { startXmppServer, waitUntil, within, xmppListeners, type TestServer } from "../../helpers.js";
import { online } from "./util.js";

// XEP-0198 over RFC 7395 WebSocket with a real client (@xmpp/client 0.14):
// enable and acks both ways, resumption after the socket is cut, and a
// session begun over TCP resumed over WebSocket ("over any transport").
// Losses and duplicates are counted, and must be 0.

const PATH = "/xmpp-websocket";
let ts: TestServer;
let ws: string;
let tcp: number;

before(async () => {
  ts = await startXmppServer(
    {
      listeners: [...xmppListeners(), { protocol: "xmpp", transport: "websocket", host: "127.0.0.1", port: 0, path: PATH }],
      // The server asks for an ack every 5 stanzas; a dropped session waits 30 s.
      xmpp: { sm: { ackEveryStanzas: 5, ackEveryMs: 0, maxUnacked: 500, resumeTimeoutMs: 30_000 } },
    },
    { alice: "a-pass", bob: "b-pass" },
  );
  const wsl = ts.server.listeners.find((l) => l.config.transport === "websocket")!;
  ws = `ws://127.0.0.1:${wsl.port}${PATH}`;
  tcp = ts.port("xmpp", "tcp");
}, { timeout: 15_000 });
after(() => ts.stop());

/** An @xmpp/client with stream management, counting the bodies it gets and its resumptions. */
async function smClient(service: string, resource: string) {
  const c = client({ service, domain: "localhost", username: "alice", password: "a-pass", resource });
  c.on("error", () => {});
  const bodies: string[] = [];
  c.on("stanza", (el: any) => {
    if (el.is("message") && el.getChildText("body") !== null) bodies.push(el.getChildText("body"));
  });
  const counts = { resumed: 0 };
  c.streamManagement.on("resumed", () => counts.resumed++);
  await c.start();
  await c.send(xml("presence"));
  await waitUntil(() => c.streamManagement.enabled === true && c.streamManagement.id !== "", 5000, "stream management enabled with an id");
  return { c, bodies, counts };
}

/** Lost and duplicated among `got`, against "0" … "n-1". */
function tally(got: string[], n: number): { lost: number; duplicated: number } {
  const seen = new Map<string, number>();
  for (const b of got) seen.set(b, (seen.get(b) ?? 0) + 1);
  let lost = 0;
  let duplicated = 0;
  for (let i = 0; i < n; i++) {
    const k = seen.get(String(i)) ?? 0;
    if (k === 0) lost++;
    else duplicated += k - 1;
  }
  return { lost, duplicated };
}

/** bob sends n chat messages to `to`, calling cut() after message `at`; then all must arrive exactly once, in order. */
async function conversation(to: string, bodies: string[], n: number, at: number, cut: () => void): Promise<void> {
  const bob = await online(tcp, "bob", "b-pass", { resource: `sender-${to.split("/")[1]}`, presence: false });
  try {
    for (let i = 0; i < n; i++) {
      await bob.c.send(xml("message", { to, type: "chat" }, xml("body", {}, String(i))));
      if (i === at) cut();
    }
    await within(waitUntil(() => bodies.length >= n, 20_000, () => `${bodies.length} of ${n}`), 25_000, "every message");
    const { lost, duplicated } = tally(bodies, n);
    assert.equal(lost, 0, `lost: ${bodies.join(",")}`);
    assert.equal(duplicated, 0, `duplicated: ${bodies.join(",")}`);
    assert.deepEqual(bodies, Array.from({ length: n }, (_, i) => String(i)), "in order");
  } finally {
    await bob.stop();
  }
}

test("over WebSocket: <enable/> is answered <enabled resume/>, and acks go both ways", { timeout: 20_000 }, async () => {
  const { c, bodies } = await smClient(ws, "acks");
  const fromServer: string[] = [];
  const fromClient: string[] = [];
  c.on("nonza", (el: any) => fromServer.push(String(el)));
  c.on("send", (el: any) => {
    if (el.is("a", "urn:xmpp:sm:3") || el.is("r", "urn:xmpp:sm:3")) fromClient.push(String(el));
  });
  try {
    assert.equal(c.socket.url, ws, "the stream is on the WebSocket");
    assert.ok(c.streamManagement.max > 0, "resumable, with a window");
    // The client's messages: it asks for an ack and the server's <a h/> acknowledges them all.
    const acked: string[] = [];
    c.streamManagement.on("ack", (el: any) => acked.push(el.attrs.id ?? el.name));
    for (let i = 0; i < 7; i++) await c.send(xml("message", { to: "bob@localhost", type: "chat", id: `c${i}` }, xml("body", {}, String(i))));
    await waitUntil(() => acked.length === 8, 5000, () => `the server acknowledged ${acked.length} of 8`);
    // Enabled inline by Bind2 (XEP-0386 §3.2), SM counted from the first stanza: the initial presence, then the 7.
    assert.deepEqual(acked, ["presence", ...Array.from({ length: 7 }, (_, i) => `c${i}`)]);
    // The server's messages: after 5 it asks (<r/>), and the client's <a/> counts what it handled.
    const bob = await online(tcp, "bob", "b-pass", { resource: "acks-peer", presence: false });
    try {
      for (let i = 0; i < 5; i++) await bob.c.send(xml("message", { to: String(c.jid), type: "chat" }, xml("body", {}, String(i))));
      await waitUntil(() => bodies.length === 5, 5000, "five messages");
      await waitUntil(() => fromClient.some((a) => /^<a /.test(a)), 5000, () => `an <a/> from the client; the server sent ${fromServer.join(" ")}`);
    } finally {
      await bob.stop();
    }
    assert.ok(fromServer.some((s) => /^<r xmlns="urn:xmpp:sm:3"\/>$/.test(s)), `the server asked: ${fromServer.join(" ")}`);
    // The server asks after every 5 stanzas it sent, counted (SM enabled inline by Bind2) from the first one it
    // sent the session: the client answers that <r/> with what it had handled by then, 5.
    const hs = fromClient.filter((s) => s.startsWith("<a ")).map((a) => Number(/h="(\d+)"/.exec(a)![1]));
    assert.equal(hs[0], 5, "its h is what it handled");
    assert.ok(c.streamManagement.inbound >= 5);
  } finally {
    c.reconnect.stop();
    await c.stop().catch(() => {});
  }
});

test("over WebSocket: the socket is cut mid-conversation; the client resumes over WebSocket; every message exactly once, in order", { timeout: 40_000 }, async () => {
  const { c, bodies, counts } = await smClient(ws, "wsc");
  try {
    const opened = ts.server.metrics.listener("xmpp", "websocket").opened;
    // No close frame, no </close>: the TCP connection under the WebSocket just goes.
    await conversation(String(c.jid), bodies, 60, 20, () => c.socket.socket._socket.destroy());
    assert.equal(counts.resumed, 1, "resumed, not a new session");
    assert.equal(ts.server.metrics.listener("xmpp", "websocket").opened, opened + 1, "on a new WebSocket");
  } finally {
    c.reconnect.stop();
    await c.stop().catch(() => {});
  }
});

test("a session begun over TCP is resumed over WebSocket; every message exactly once, in order", { timeout: 40_000 }, async () => {
  const { c, bodies, counts } = await smClient(`xmpp://127.0.0.1:${tcp}`, "roam");
  try {
    const opened = ts.server.metrics.listener("xmpp", "websocket").opened;
    // The phone moves from one network to another: it comes back over the WebSocket listener.
    c.options.service = ws;
    const bound = String(c.jid);
    assert.match(bound, /^alice@localhost\/roam\//);
    await conversation(bound, bodies, 60, 20, () => c.socket.destroy());
    assert.equal(counts.resumed, 1, "resumed, not a new session");
    assert.equal(c.socket.url, ws, "now on the WebSocket");
    assert.equal(ts.server.metrics.listener("xmpp", "websocket").opened, opened + 1);
    // The same session goes on over its new transport, both ways.
    const bob = await online(tcp, "bob", "b-pass", { resource: "after", presence: false });
    try {
      await c.send(xml("message", { to: bob.jid, type: "chat", id: "back" }, xml("body", {}, "from the web")));
      assert.equal((await bob.waitFor((el) => el.is("message"))).attrs.from, bound, "the resumed session keeps its full JID");
    } finally {
      await bob.stop();
    }
  } finally {
    c.reconnect.stop();
    await c.stop().catch(() => {});
  }
});
