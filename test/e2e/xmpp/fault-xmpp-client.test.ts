import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { startXmppServer, waitUntil, within, type TestServer } from "../../helpers.js";
import { FaultProxy } from "../../../bench/lib/fault-proxy.js";
import { online, type Online } from "./util.js";
import { sendNumbered, settleAcks, smClient, tally, type SmClient } from "./fault-util.js";

// @xmpp/client 0.14 (XEP-0198 with resumption, its own reconnection) behind a
// fault proxy, receiving a numbered conversation from a peer connected directly.
// The proxy cuts her connection (RST both ways) or black-holes it (a NAT that
// forgot the mapping: the server notices by its XEP-0199 ping, 400 + 400 ms
// here, well before her own <r/> timeout of ~2.8 s, so the session is suspended
// when she comes back). Every message must arrive exactly once, in order:
// resent in-stream when she resumes, or from offline storage with <delay/>
// when the window has passed.

const N = 60;
const PING = { pingAfterMs: 400, pingTimeoutMs: 400 };
const SM_POLICY = { ackEveryStanzas: 5, ackEveryMs: 200, maxUnacked: 1000 };
const USERS = Object.fromEntries(["a1", "a2", "a3", "a4", "bob"].map((u) => [u, `${u}-pw`]));

/** A window longer than any reconnection here; and the shortest allowed, to be outwaited. */
let long: TestServer;
let short: TestServer;

// RFC 6120 SASL and bind, and a plain XEP-0198 <resume/> after them: SASL2 off here (with it on, @xmpp/client
// resumes inside <authenticate/>: fault-sasl2.test.ts).
const LEGACY = { sasl2: { enabled: false } };

before(async () => {
  long = await startXmppServer({ xmpp: { ...PING, ...LEGACY, sm: { ...SM_POLICY, resumeTimeoutMs: 15_000 } } }, USERS);
  short = await startXmppServer({ xmpp: { ...PING, ...LEGACY, sm: { ...SM_POLICY, resumeTimeoutMs: 1000 } } }, USERS);
}, { timeout: 20_000 });
after(async () => {
  await long.stop();
  await short.stop();
});

interface Scene {
  proxy: FaultProxy;
  alice: SmClient;
  bob: Online;
  done(): Promise<void>;
}

/** `user` through a fresh proxy to `ts`, bob straight to it. */
async function scene(ts: TestServer, user: string): Promise<Scene> {
  const port = ts.port("xmpp", "tcp");
  const proxy = await FaultProxy.start(port);
  const alice = await smClient(proxy.port, user, `${user}-pw`, "phone");
  const bob = await online(port, "bob", "bob-pw", { resource: `to-${user}`, presence: false });
  return {
    proxy,
    alice,
    bob,
    async done() {
      await alice.stop();
      await bob.stop();
      await proxy.close();
    },
  };
}

/** The proxy's live connection of the client: the one the fault is for. */
function only(proxy: FaultProxy) {
  const live = proxy.connections();
  assert.equal(live.length, 1, "one live connection through the proxy");
  return live[0];
}

for (const fault of ["cut", "blackhole"] as const) {
  test(`@xmpp/client, ${fault} mid-conversation, the peer keeps sending: resumed, every message exactly once, in order`, { timeout: 30_000 }, async () => {
    const user = fault === "cut" ? "a1" : "a2";
    const s = await scene(long, user);
    try {
      const jid = `${s.alice.c.jid}`;
      assert.equal(jid, `${user}@localhost/phone`, "bound by RFC 6120 bind: the resource asked for");
      let faulted = false;
      await sendNumbered(s.bob.c, jid, 0, N, 15, () => {
        // A third of the way in, with messages in flight.
        if (faulted || s.alice.got.length < 20) return;
        faulted = true;
        only(s.proxy)[fault]();
      });
      assert.ok(faulted, "the fault happened during the conversation");
      await within(waitUntil(() => new Set(s.alice.got).size >= N && s.alice.resumed >= 1, 20_000, () => `${new Set(s.alice.got).size} of ${N}, resumed ${s.alice.resumed}`), 25_000, "every message");
      assert.deepEqual(tally(s.alice.got, N), { lost: 0, duplicated: 0, outOfOrder: 0 }, s.alice.got.join(","));
      assert.deepEqual([s.alice.resumed, s.alice.sessions], [1, 1], "resumed once, never a new session");
      assert.equal(s.proxy.accepted, 2, "one reconnection");
      if (fault === "blackhole") assert.ok(s.proxy.bytes.dropped > 0, "the black hole swallowed something");
    } finally {
      await s.done();
    }
  });

  test(`@xmpp/client, ${fault}, kept away past the resumption window: the rest arrives from offline storage at the next login, exactly once`, { timeout: 30_000 }, async () => {
    const s = await scene(short, fault === "cut" ? "a3" : "a4");
    try {
      const jid = `${s.alice.c.jid}`;
      await sendNumbered(s.bob.c, jid, 0, 10);
      await waitUntil(() => s.alice.got.length >= 10, 5000, "the first ten");
      await settleAcks(s.alice);
      const stored = short.server.metrics.offlineStored;
      // Her network goes: the connection dies (at once, or silently), and new ones are refused until the window has passed.
      only(s.proxy)[fault]();
      s.proxy.refuse();
      await sendNumbered(s.bob.c, jid, 10, 30);
      await waitUntil(() => short.server.metrics.offlineStored >= stored + 20, 10_000, () => `the window to pass (stored ${short.server.metrics.offlineStored - stored} of 20)`);
      // The network comes back once her client has noticed and tried (a black hole takes it ~2.8 s).
      await waitUntil(() => s.proxy.refused > 0, 10_000, "her client to try while the network is down");
      s.proxy.heal();
      await within(waitUntil(() => s.alice.got.length >= 30 && s.alice.sessions === 2, 15_000, () => `${s.alice.got.length} of 30, sessions ${s.alice.sessions}`), 20_000, "the offline messages");
      assert.deepEqual(tally(s.alice.got, 30), { lost: 0, duplicated: 0, outOfOrder: 0 }, s.alice.got.join(","));
      assert.deepEqual(s.alice.delayed, Array.from({ length: 20 }, (_, i) => String(10 + i)), "the twenty sent while away, with <delay/>");
      assert.equal(s.alice.resumed, 0, "not resumed: a new session");
    } finally {
      await s.done();
    }
  });
}
