import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { client, xml } from "@xmpp/client";
import { startServer, type TestServer } from "../../helpers.js";
import { online, rawLogin, type Online } from "../xmpp/util.js";
import { RawPeer, loginAs } from "../relay/relay-helpers.js";
import { RelayError, type IncomingRequest } from "../../../src/relay/client.js";
import { encodeFrame } from "../../../src/relay/codec.js";
import type { AdminServer } from "../../../src/admin/http.js";
import { adminFor, http, scrape, until, type Scrape } from "./admin-helpers.js";

const USERS = { alice: "a-pass", bob: "b-pass", carol: "c-pass", eve: "e-pass" };

/** Counts after minus counts before, for the names asked. */
function delta(a: Scrape, b: Scrape, name: string, labels: Record<string, string> = {}): number {
  return b.get(name, labels) - a.get(name, labels);
}

describe("/metrics after real XMPP and relay traffic", () => {
  let ts: TestServer;
  let admin: AdminServer;
  before(async () => {
    ts = await startServer(
      {
        listeners: [
          { protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 },
          { protocol: "relay", transport: "tcp", host: "127.0.0.1", port: 0 },
          { protocol: "relay", transport: "websocket", host: "127.0.0.1", port: 0, path: "/relay" },
        ],
        timeouts: { sweepIntervalMs: 20, relay: { defaultMs: 2000, minMs: 100, maxMs: 5000 }, xmpp: { defaultMs: 300, minMs: 100, maxMs: 20000 } },
        limits: { maxOutboundBytes: 64 * 1024 },
      },
      USERS,
    );
    admin = await adminFor(ts.server);
  }, { timeout: 20_000 });
  after(async () => {
    await admin.close();
    await ts.stop();
  }, { timeout: 10_000 });

  /** A round trip to the server: everything the client sent before has been read and counted. */
  const xmppSync = (c: Online) => c.c.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));

  test("the exposition is Prometheus text with this worker's label", { timeout: 10_000 }, async () => {
    const r = await http(admin.port, "/metrics");
    assert.equal(r.status, 200);
    assert.match(r.type, /^text\/plain; version=0\.0\.4/);
    assert.match(r.body, /# TYPE switchboard_sessions gauge/);
    assert.match(r.body, /# TYPE switchboard_xmpp_stanzas_total counter/);
    const s = await scrape(admin.port);
    assert.ok(s.series.every((x) => x.labels.worker === "w0"), "every series names its worker");
    assert.ok(s.get("nodejs_eventloop_lag_p99_seconds") >= 0, "event-loop delay, from the default metrics");
    assert.equal(s.get("switchboard_cluster_bus_connected"), 1);
  });

  test("XMPP: sessions by transport, stanzas in and out, IQs answered and timed out, offline stored, auth failures", { timeout: 20_000 }, async () => {
    const port = ts.port("xmpp", "tcp");
    const XMPP = { protocol: "xmpp", transport: "tcp" };
    const s0 = await scrape(admin.port);
    const a = await online(port, "alice", "a-pass", { resource: "a" });
    const b = await online(port, "bob", "b-pass", { resource: "b" });
    b.c.iqCallee.get("urn:example:echo", "echo", () => xml("echo", { xmlns: "urn:example:echo" }));
    b.c.iqCallee.get("urn:example:slow", "slow", () => new Promise(() => {}));
    await Promise.all([xmppSync(a), xmppSync(b)]);
    const s1 = await scrape(admin.port);
    assert.equal(delta(s0, s1, "switchboard_sessions_started_total", XMPP), 2);
    assert.equal(s1.get("switchboard_sessions", XMPP), 2);
    assert.equal(s1.get("switchboard_connections", XMPP), 2);
    assert.equal(delta(s0, s1, "switchboard_connections_accepted_total", XMPP), 2);

    // The measured phase: every stanza in it is known.
    for (let i = 0; i < 5; i++) await a.c.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, `m${i}`)));
    for (let i = 0; i < 5; i++) await b.waitFor((el) => el.is("message") && el.getChildText("body") === `m${i}`);
    const echo = await a.c.iqCaller.request(xml("iq", { type: "get", to: b.jid }, xml("echo", { xmlns: "urn:example:echo" })));
    assert.equal(echo.attrs.type, "result");
    await assert.rejects(a.c.iqCaller.request(xml("iq", { type: "get", to: b.jid }, xml("slow", { xmlns: "urn:example:slow" }))), /remote-server-timeout/);
    await a.c.send(xml("message", { to: "carol@localhost", type: "chat" }, xml("body", {}, "while you were away")));
    await Promise.all([xmppSync(a), xmppSync(b)]);
    const s2 = await scrape(admin.port);
    // in: 5 messages, iq + result, iq, message to carol, 2 pings; out: 5 messages, iq + result, iq + timeout error, 2 pongs.
    assert.equal(delta(s1, s2, "switchboard_xmpp_stanzas_total", { direction: "in" }), 11);
    assert.equal(delta(s1, s2, "switchboard_xmpp_stanzas_total", { direction: "out" }), 11);
    assert.equal(delta(s1, s2, "switchboard_requests_total"), 2);
    assert.equal(delta(s1, s2, "switchboard_requests_answered_total"), 1);
    assert.equal(delta(s1, s2, "switchboard_requests_timed_out_total"), 1);
    assert.equal(delta(s1, s2, "switchboard_answers_total"), 1);
    assert.equal(delta(s1, s2, "switchboard_offline_messages_stored_total"), 1);
    assert.equal(delta(s1, s2, "switchboard_messages_total"), 6);
    assert.equal(s2.get("switchboard_requests_pending"), 0);

    const wrong = client({ service: `xmpp://127.0.0.1:${port}`, domain: "localhost", username: "alice", password: "not her password" });
    wrong.reconnect.stop();
    wrong.on("error", () => {});
    await assert.rejects(wrong.start(), /not-authorized/);
    await wrong.stop().catch(() => {});
    const s3 = await scrape(admin.port);
    assert.equal(delta(s2, s3, "switchboard_auth_failures_total", { protocol: "xmpp" }), 1);
    assert.equal(delta(s2, s3, "switchboard_auth_failures_total", { protocol: "relay" }), 0);
    assert.equal(delta(s2, s3, "switchboard_sessions_started_total", XMPP), 0, "a failed login starts no session");

    // Nobody can take or store these: each goes back to alice with an error, and is counted so.
    await a.c.send(xml("message", { to: "nobody@localhost", type: "chat", id: "nx" }, xml("body", {}, "?")));
    await a.c.send(xml("message", { to: "bob@localhost/gone", type: "groupchat", id: "gc" }, xml("body", {}, "?")));
    for (const id of ["nx", "gc"]) await a.waitFor((el) => el.is("message") && el.attrs.id === id && el.attrs.type === "error");
    const s4 = await scrape(admin.port);
    assert.equal(delta(s3, s4, "switchboard_messages_bounced_total"), 2);
    assert.equal(delta(s3, s4, "switchboard_offline_messages_stored_total"), 0);

    await Promise.all([a.stop(), b.stop()]);
    await until("the XMPP sessions to end", async () => (await scrape(admin.port)).get("switchboard_sessions", XMPP) === 0);
    await until("the XMPP connections to close", async () => (await scrape(admin.port)).get("switchboard_connections", XMPP) === 0);
  });

  test("relay: sessions by transport, frames in and out, requests answered, timed out and late, auth failures", { timeout: 20_000 }, async () => {
    const TCP = { protocol: "relay", transport: "tcp" };
    const WS = { protocol: "relay", transport: "websocket" };
    const s0 = await scrape(admin.port);
    const alice = await loginAs(ts, "tcp", "alice", "a-pass", "r");
    const bob = await loginAs(ts, "websocket", "bob", "b-pass", "r");
    await Promise.all([alice.ping(), bob.ping()]);
    const s1 = await scrape(admin.port);
    assert.equal(delta(s0, s1, "switchboard_sessions_started_total", TCP), 1);
    assert.equal(delta(s0, s1, "switchboard_sessions_started_total", WS), 1);
    assert.equal(s1.get("switchboard_sessions", TCP), 1);
    assert.equal(s1.get("switchboard_sessions", WS), 1);

    const got: string[] = [];
    bob.on("message", (m: { body: Buffer }) => got.push(String(m.body)));
    const held: IncomingRequest[] = [];
    bob.on("request", (r: IncomingRequest) => (String(r.body) === "quick" ? r.respond("done") : held.push(r)));
    for (let i = 0; i < 3; i++) alice.message("bob@localhost", `m${i}`);
    await until("bob's three messages", () => got.length === 3);
    assert.equal(String((await alice.request(bob.jid, "quick")).body), "done");
    await assert.rejects(alice.request(bob.jid, "slow", 150), (e: RelayError) => e.code === "timeout");
    held[0].respond("too late");
    await Promise.all([bob.ping(), alice.ping()]);
    const s2 = await scrape(admin.port);
    // in: 3 msg, req + res, req, the late res, 2 pings; out: 3 msg, req + res, req + err timeout, 2 pongs.
    assert.equal(delta(s1, s2, "switchboard_relay_frames_total", { direction: "in" }), 9);
    assert.equal(delta(s1, s2, "switchboard_relay_frames_total", { direction: "out" }), 9);
    assert.equal(delta(s1, s2, "switchboard_requests_answered_total"), 1);
    assert.equal(delta(s1, s2, "switchboard_requests_timed_out_total"), 1);
    assert.equal(delta(s1, s2, "switchboard_answers_late_total"), 1);
    assert.equal(delta(s1, s2, "switchboard_answers_total"), 2);

    await assert.rejects(loginAs(ts, "tcp", "alice", "wrong", "x"), (e: RelayError) => e.code === "not-authorized");
    const s3 = await scrape(admin.port);
    assert.equal(delta(s2, s3, "switchboard_auth_failures_total", { protocol: "relay" }), 1);

    await Promise.all([alice.close(), bob.close()]);
    await until("the relay sessions to end", async () => {
      const s = await scrape(admin.port);
      return s.get("switchboard_sessions", TCP) === 0 && s.get("switchboard_sessions", WS) === 0;
    });
  });

  test("a request to nobody is unavailable; a forged answer is counted and dropped", { timeout: 10_000 }, async () => {
    const alice = await loginAs(ts, "tcp", "alice", "a-pass", "f");
    const bob = await loginAs(ts, "tcp", "bob", "b-pass", "f");
    const eve = await loginAs(ts, "tcp", "eve", "e-pass", "f");
    const s0 = await scrape(admin.port);
    await assert.rejects(alice.request("carol@localhost", "anyone?"), (e: RelayError) => e.code === "unavailable");
    let proxyId = "";
    bob.on("request", (r: IncomingRequest) => (proxyId = r.id));
    const asked = alice.request(bob.jid, "for bob", 300).catch((e: RelayError) => e.code);
    await until("bob's request", () => proxyId !== "");
    eve.send({ t: "res", re: proxyId }, "eve answers for bob");
    await eve.ping();
    assert.equal(await asked, "timeout", "eve's answer did not count");
    const s1 = await scrape(admin.port);
    assert.equal(delta(s0, s1, "switchboard_requests_unavailable_total"), 1);
    assert.equal(delta(s0, s1, "switchboard_answers_forged_total"), 1);
    await Promise.all([alice.close(), bob.close(), eve.close()]);
  });

  test("a client that stops reading is cut and counted as a slow consumer; bytes queued are visible before", { timeout: 30_000 }, async () => {
    const TCP = { protocol: "relay", transport: "tcp" };
    const s0 = await scrape(admin.port);
    const reader = await RawPeer.open(ts.port("relay", "tcp"));
    reader.write(encodeFrame({ t: "hello", v: 1 }));
    reader.write(encodeFrame({ t: "auth", user: "eve", password: "e-pass", resource: "slow" }));
    await reader.frameWhere((h) => h.t === "ok");
    reader.stopReading();
    const alice = await loginAs(ts, "tcp", "alice", "a-pass", "flood");
    const chunk = Buffer.alloc(3000);
    const sessions = ts.server.proxy.sessions;
    // Enough to fill the kernel's buffers and then maxOutboundBytes (64 KiB), bounded. Between
    // the two, 3000-byte messages queue up in about 20 steps: a scrape every 10 sees them.
    let queued = 0;
    for (let i = 0; i < 20000 && sessions.has("eve@localhost/slow"); i++) {
      alice.message("eve@localhost/slow", chunk);
      if (i % 10 !== 9) continue;
      await alice.ping();
      queued = Math.max(queued, (await scrape(admin.port)).get("switchboard_outbound_queued_bytes", TCP));
    }
    assert.equal(sessions.has("eve@localhost/slow"), false, "the reader was cut");
    assert.ok(queued > 0 && queued <= 64 * 1024 + chunk.length, `bytes queued towards the reader were seen (${queued})`);
    const s1 = await scrape(admin.port);
    assert.equal(delta(s0, s1, "switchboard_slow_consumers_total", TCP), 1);
    assert.equal(delta(s0, s1, "switchboard_slow_consumers_total", { protocol: "xmpp" }), 0);
    assert.equal(s1.get("switchboard_outbound_queued_bytes", TCP), 0, "nothing left queued once the reader is gone");
    reader.resumeReading();
    await reader.untilClosed(5000);
    await alice.close();
  });
});

describe("/metrics: connections dropped as dead peers", () => {
  let ts: TestServer;
  let admin: AdminServer;
  before(async () => {
    ts = await startServer(
      {
        listeners: [
          { protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 },
          { protocol: "relay", transport: "tcp", host: "127.0.0.1", port: 0 },
        ],
        xmpp: { allowPlainWithoutTls: true, pingAfterMs: 200, pingTimeoutMs: 200 },
        relay: { pingAfterMs: 200, pingTimeoutMs: 200 },
      },
      USERS,
    );
    admin = await adminFor(ts.server);
  }, { timeout: 20_000 });
  after(async () => {
    await admin.close();
    await ts.stop();
  }, { timeout: 10_000 });

  test("a silent XMPP client and a silent relay client each count once, by protocol and transport", { timeout: 20_000 }, async () => {
    const s0 = await scrape(admin.port);
    const xmppPeer = await rawLogin(ts.port("xmpp", "tcp"), "alice", "a-pass", "silent");
    const relayPeer = await RawPeer.open(ts.port("relay", "tcp"));
    relayPeer.write(encodeFrame({ t: "hello", v: 1 }));
    relayPeer.write(encodeFrame({ t: "auth", user: "bob", password: "b-pass", resource: "silent" }));
    await relayPeer.frameWhere((h) => h.t === "ok");
    await xmppPeer.whenClosed(5000);
    assert.ok(await relayPeer.untilClosed(5000), "the relay peer was dropped");
    const s1 = await scrape(admin.port);
    assert.equal(delta(s0, s1, "switchboard_dead_peers_total", { protocol: "xmpp", transport: "tcp" }), 1);
    assert.equal(delta(s0, s1, "switchboard_dead_peers_total", { protocol: "relay", transport: "tcp" }), 1);
  });
});

describe("/metrics: XEP-0198 unacknowledged stanzas", () => {
  let ts: TestServer;
  let admin: AdminServer;
  before(async () => {
    // No <r/> from the server (neither by count nor by time): the client acknowledges when it chooses.
    ts = await startServer({ listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 }], xmpp: { allowPlainWithoutTls: true, sm: { ackEveryStanzas: 0, ackEveryMs: 0, maxUnacked: 100, resumeTimeoutMs: 0 } } }, USERS);
    admin = await adminFor(ts.server);
  }, { timeout: 20_000 });
  after(async () => {
    await admin.close();
    await ts.stop();
  }, { timeout: 10_000 });

  test("the gauge counts what an SM client has not acknowledged, falls with its <a/>, and to 0 when its session ends", { timeout: 20_000 }, async () => {
    const GAUGE = "switchboard_xmpp_sm_unacked_stanzas";
    const port = ts.port("xmpp", "tcp");
    assert.equal((await scrape(admin.port)).get(GAUGE), 0);
    const bob = await rawLogin(port, "bob", "b-pass", "sm");
    bob.send("<enable xmlns='urn:xmpp:sm:3'/>");
    await bob.until(/<enabled /);
    const alice = await rawLogin(port, "alice", "a-pass", "plain");
    for (let i = 0; i < 3; i++) alice.send(`<message to='bob@localhost/sm' type='chat'><body>m${i}</body></message>`);
    await bob.until(/m2<\/body>/);
    assert.equal((await scrape(admin.port)).get(GAUGE), 3, "alice has no stream management: only bob's three count");
    bob.send("<a xmlns='urn:xmpp:sm:3' h='2'/>");
    await until("two of three acknowledged", async () => (await scrape(admin.port)).get(GAUGE) === 1);
    bob.end("</stream:stream>");
    await until("bob's session to end", async () => (await scrape(admin.port)).get(GAUGE) === 0);
    alice.destroy();
  });
});
