import { test } from "node:test";
import assert from "node:assert/strict";
import { startXmppServer } from "../../helpers.js";
import { rawAuth, rawLogin } from "./util.js";

// Input that arrives while the session waits for the store (its roster, read at bind) is handled
// afterwards, in order — also what one chunk already held: a client that pipelines bind, presence,
// a message, a roster get and the end of its stream loses none of them.

test("bind, presence, message, roster get and </stream:stream> in one write: all handled, in order, presence routed by the roster read at bind", { timeout: 20_000 }, async () => {
  const ts = await startXmppServer({ xmpp: { allowPlainWithoutTls: true } }, { alice: "a-pw", bob: "b-pw" });
  try {
    const both = (jid: string) => ({ jid, name: "", subscription: "both" as const, ask: false, groups: [] });
    await ts.server.store.xmpp.putRosterItem("alice", both("bob@localhost"));
    await ts.server.store.xmpp.putRosterItem("bob", both("alice@localhost"));
    const port = ts.port("xmpp", "tcp");
    const bob = await rawLogin(port, "bob", "b-pw", "b");
    bob.send("<presence/>");
    await bob.until(/<presence[^>]*from=["']bob@localhost\/b/);
    bob.text = "";

    const alice = await rawAuth(port, "alice", "a-pw");
    alice.send(
      "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>a</resource></bind></iq>" +
        "<presence><status>here</status></presence>" +
        "<message to='bob@localhost' type='chat' id='m1'><body>pipelined</body></message>" +
        "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>" +
        "</stream:stream>",
    );
    await alice.whenClosed(5000);
    assert.match(alice.text, /id=["']b1["'][\s\S]*id=["']r1["'][\s\S]*<item[^>]*jid=["']bob@localhost["'][\s\S]*<\/stream:stream>/, `bind result, roster, then the end: ${alice.text}`);
    // Bob: alice's presence (she is on his roster as both), her message, then her unavailable.
    await bob.until(/<presence[^>]*type=["']unavailable["'][^>]*from=["']alice@localhost\/a|<presence[^>]*from=["']alice@localhost\/a[^>]*type=["']unavailable/);
    const order = [/<status>here<\/status>/, /<body>pipelined<\/body>/, /unavailable/].map((re) => bob.text.search(re));
    assert.ok(order.every((i) => i >= 0) && order[0] < order[1] && order[1] < order[2], `presence, message, unavailable in order: ${bob.text}`);
    bob.destroy();
  } finally {
    await ts.stop();
  }
});
