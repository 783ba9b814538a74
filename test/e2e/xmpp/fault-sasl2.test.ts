import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { startXmppServer, waitUntil, within, type TestServer } from "../../helpers.js";
import { FaultProxy } from "../../../bench/lib/fault-proxy.js";
import { online } from "./util.js";
import { sendNumbered, smClient, tally } from "./fault-util.js";

// fault-xmpp-client.test.ts with SASL2 on: @xmpp/client 0.14 behind the fault
// proxy logs in with SASL2 and Bind2 (SM enabled inline), and after a cut (RST
// both ways) or a black hole (noticed by the server's ping) comes back with its
// <resume/> inside its <authenticate/>: one round trip, every message once, in order.

const N = 60;
const USERS = { s1: "s1-pw", s2: "s2-pw", bob: "bob-pw" };
let ts: TestServer;

before(async () => {
  ts = await startXmppServer(
    { xmpp: { allowPlainWithoutTls: true, pingAfterMs: 400, pingTimeoutMs: 400, sasl2: { enabled: true }, sm: { ackEveryStanzas: 5, ackEveryMs: 200, maxUnacked: 1000, resumeTimeoutMs: 15_000 } } },
    USERS,
  );
}, { timeout: 20_000 });
after(() => ts.stop());

for (const [fault, user] of [["cut", "s1"], ["blackhole", "s2"]] as const) {
  test(`@xmpp/client with SASL2, ${fault} mid-conversation: resumed inline, every message exactly once, in order`, { timeout: 30_000 }, async () => {
    const port = ts.port("xmpp", "tcp");
    const proxy = await FaultProxy.start(port);
    const alice = await smClient(proxy.port, user, `${user}-pw`, "phone", { plain: true });
    const out: string[] = [];
    alice.c.on("send", (el: any) => out.push(String(el)));
    const bob = await online(port, "bob", "bob-pw", { resource: `to-${user}`, presence: false });
    try {
      const jid = `${alice.c.jid}`;
      assert.match(jid, new RegExp(`^${user}@localhost/phone/[A-Za-z0-9_-]{8}$`), "bound by Bind2");
      let faulted = false;
      await sendNumbered(bob.c, jid, 0, N, 15, () => {
        if (faulted || alice.got.length < 20) return;
        faulted = true;
        const live = proxy.connections();
        assert.equal(live.length, 1);
        live[0][fault]();
      });
      assert.ok(faulted, "the fault happened during the conversation");
      await within(waitUntil(() => new Set(alice.got).size >= N && alice.resumed >= 1, 20_000, () => `${new Set(alice.got).size} of ${N}, resumed ${alice.resumed}`), 25_000, "every message");
      assert.deepEqual(tally(alice.got, N), { lost: 0, duplicated: 0, outOfOrder: 0 }, alice.got.join(","));
      assert.deepEqual([alice.resumed, alice.sessions], [1, 1], "resumed once, never a new session");
      const auth = out.filter((s) => s.startsWith("<authenticate"));
      assert.equal(auth.length, 1, "one authentication after the fault");
      assert.match(auth[0], /<resume xmlns="urn:xmpp:sm:3"/, "with the resumption inside");
      assert.ok(!out.some((s) => s.startsWith("<resume")), "no separate <resume/>");
    } finally {
      await alice.stop();
      await bob.stop();
      await proxy.close();
    }
  });
}
