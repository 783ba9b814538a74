import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, within, type TestServer } from "../../helpers.js";
import { encodeFrame } from "../../../src/relay/codec.js";
import type { Header } from "../../../src/relay/codec.js";
import { RawPeer, loginAs } from "./relay-helpers.js";

// The relay's dead-peer detection (RELAY-PROTOCOL.md: `ping` → `pong`, either
// side) on a real server: small periods, and what is awaited is the server's
// ping, its `err` and the close, never a sleep.
const AFTER = 300;
const TIMEOUT = 300;
/** Timers on two shared cores under a whole test suite: how late the server may act. */
const SLACK = 1000;
const USERS = { alice: "alice-pw", bob: "bob-pw" };

let ts: TestServer;
before(async () => {
  ts = await startServer({ relay: { pingAfterMs: AFTER, pingTimeoutMs: TIMEOUT } }, USERS);
}, { timeout: 15_000 });
after(() => ts.stop());

async function rawLogin(resource: string): Promise<RawPeer> {
  const p = await RawPeer.open(ts.port("relay", "tcp"));
  p.write(encodeFrame({ t: "hello", v: 1 }));
  p.write(encodeFrame({ t: "auth", user: "alice", password: "alice-pw", resource }));
  await p.frameWhere((h) => h.t === "ok");
  return p;
}

const pings = (p: RawPeer): number => p.frames.filter((h: Header) => h.t === "ping").length;

test("relay: a silent client is pinged and, not answering, dropped with err timeout within pingAfter + pingTimeout", { timeout: 15_000 }, async () => {
  const counts = ts.server.metrics.listener("relay", "tcp");
  const before = counts.deadPeers;
  const p = await rawLogin("silent");
  const t0 = Date.now();
  await p.frameWhere((h) => h.t === "ping", AFTER + SLACK);
  assert.ok(Date.now() - t0 >= AFTER - 5, "not pinged before pingAfterMs");
  const err = await p.frameWhere((h) => h.t === "err", TIMEOUT + SLACK);
  assert.equal(err.code, "timeout");
  assert.equal(err.text, "no answer to ping");
  assert.ok(await p.untilClosed(SLACK), "the server closed the connection");
  const gone = Date.now() - t0;
  assert.ok(gone >= AFTER + TIMEOUT - 5 && gone <= AFTER + TIMEOUT + SLACK, `dropped ${gone} ms after the last traffic`);
  assert.equal(counts.deadPeers, before + 1, "counted as a dead peer");
});

test("relay: a client answering each ping with pong keeps its session", { timeout: 15_000 }, async () => {
  const counts = ts.server.metrics.listener("relay", "tcp");
  const before = counts.deadPeers;
  const p = await rawLogin("answers");
  for (let i = 1; i <= 3; i++) {
    // Were the pong not counted, an `err` and a close would come instead of the next ping.
    await p.frameWhere(() => pings(p) >= i, AFTER + SLACK);
    p.write(encodeFrame({ t: "pong" }));
  }
  assert.equal(p.frames.filter((h) => h.t === "err").length, 0);
  assert.equal(counts.deadPeers, before);
  p.destroy();
});

test("relay over WebSocket: the client library answers the server's pings, and the session keeps working", { timeout: 15_000 }, async () => {
  const alice = await loginAs(ts, "websocket", "alice", "alice-pw", "ws");
  const bob = await loginAs(ts, "tcp", "bob", "bob-pw", "tcp");
  bob.on("request", (r) => r.respond("here"));
  let seen = 0;
  const twoPings = new Promise<void>((resolve) =>
    alice.on("frame", (h: Header) => {
      if (h.t === "ping" && ++seen === 2) resolve();
    }),
  );
  // Two rounds: a connection whose first pong went unnoticed would be dropped before the second ping.
  await within(twoPings, 2 * (AFTER + SLACK), "two pings from the server");
  assert.equal(String((await alice.request(bob.jid, "?", 2000)).body), "here");
  await Promise.all([alice.close(), bob.close()]);
});
