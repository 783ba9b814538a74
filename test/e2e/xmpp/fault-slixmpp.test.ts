import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { TLS_FILES, waitUntil, type TestServer } from "../../helpers.js";
import { FaultProxy } from "../../../bench/lib/fault-proxy.js";
import { tally } from "./fault-util.js";
import { SLIXMPP_SKIP, spawnSlixmpp, startSlixmppServer } from "./slixmpp.js";

// slixmpp 1.8 (xep_0198 with resumption, xep_0199 keepalive, reconnecting on
// its own) behind the fault proxy, over STARTTLS; the script is
// test/fixtures/slixmpp_fault.py. The same four scenes as with @xmpp/client
// (fault-xmpp-client.test.ts): a cut or a black hole mid-conversation, resumed;
// and kept away past the window, the rest from offline storage. The server
// notices a black hole after 400 + 400 ms, slixmpp after its 2.5 s ping timeout.

const PING = { pingAfterMs: 400, pingTimeoutMs: 400 };
const SM_POLICY = { ackEveryStanzas: 5, ackEveryMs: 200, maxUnacked: 1000 };
const USERS = Object.fromEntries(["s1", "s2", "s3", "s4", "bob"].map((u) => [u, `${u}-pw`]));

let long: TestServer;
let short: TestServer;

before(async () => {
  if (SLIXMPP_SKIP) return;
  long = await startSlixmppServer(USERS, { ...PING, sm: { ...SM_POLICY, resumeTimeoutMs: 15_000 } });
  short = await startSlixmppServer(USERS, { ...PING, sm: { ...SM_POLICY, resumeTimeoutMs: 1000 } });
}, { timeout: 20_000 });
after(async () => {
  await long?.stop();
  await short?.stop();
});

interface Outcome {
  bodies: string[];
  delayed: string[];
  resumed: number;
  sessions: number;
}

for (const fault of ["cut", "blackhole"] as const) {
  test(`slixmpp, ${fault} mid-conversation, the peer keeps sending: resumed, every message exactly once, in order`, { timeout: 45_000, skip: SLIXMPP_SKIP }, async () => {
    const port = long.port("xmpp", "tcp");
    const proxy = await FaultProxy.start(port);
    const py = spawnSlixmpp("slixmpp_fault.py", [String(proxy.port), String(port), TLS_FILES.cert, "resume", fault === "cut" ? "s1" : "s2"]);
    try {
      assert.equal(await py.line(20_000), "fault");
      const live = proxy.connections();
      assert.equal(live.length, 1);
      live[0][fault]();
      const out = JSON.parse(await py.line(30_000)) as Outcome;
      assert.deepEqual(tally(out.bodies, 60), { lost: 0, duplicated: 0, outOfOrder: 0 }, out.bodies.join(","));
      assert.deepEqual([out.resumed, out.sessions], [1, 1], "resumed once, never a new session");
      assert.equal(proxy.accepted, 2, "one reconnection");
    } finally {
      py.kill();
      await proxy.close();
    }
  });

  test(`slixmpp, ${fault}, kept away past the resumption window: the rest arrives from offline storage at the next login, exactly once`, { timeout: 45_000, skip: SLIXMPP_SKIP }, async () => {
    const port = short.port("xmpp", "tcp");
    const proxy = await FaultProxy.start(port);
    const py = spawnSlixmpp("slixmpp_fault.py", [String(proxy.port), String(port), TLS_FILES.cert, "window", fault === "cut" ? "s3" : "s4"]);
    try {
      assert.equal(await py.line(20_000), "away");
      const stored = short.server.metrics.offlineStored;
      proxy.connections()[0][fault]();
      proxy.refuse();
      py.tell("down");
      assert.equal(await py.line(10_000), "sent");
      await waitUntil(() => short.server.metrics.offlineStored >= stored + 20, 10_000, () => `the window to pass (stored ${short.server.metrics.offlineStored - stored} of 20)`);
      await waitUntil(() => proxy.refused > 0, 10_000, "her client to try while the network is down");
      proxy.heal();
      const out = JSON.parse(await py.line(30_000)) as Outcome;
      assert.deepEqual(tally(out.bodies, 30), { lost: 0, duplicated: 0, outOfOrder: 0 }, out.bodies.join(","));
      assert.deepEqual(out.delayed, Array.from({ length: 20 }, (_, i) => String(10 + i)), "the twenty sent while away, with <delay/>");
      assert.deepEqual([out.resumed, out.sessions], [0, 2], "not resumed: a new session");
    } finally {
      py.kill();
      await proxy.close();
    }
  });
}
