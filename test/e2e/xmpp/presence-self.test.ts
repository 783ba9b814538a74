import { test } from "node:test";
import assert from "node:assert/strict";
import { startXmppServer } from "../../helpers.js";
import { rawLogin, chatTo, type Raw } from "./util.js";

// RFC 6121 §4.2.2: a resource's initial presence goes to all the user's available resources, itself
// included; §4.3.2: the server probes the user's own bare JID for the other resources' presence. The probe's
// answer must not give the new resource its own presence a second time.

const presencesFrom = (r: Raw, from: string): number => [...r.text.matchAll(/<presence\b[^>]*>/g)].filter((m) => m[0].includes(`from='${from}'`) || m[0].includes(`from="${from}"`)).length;

test("initial presence: a resource gets its own once, and each of the user's other resources' once", { timeout: 20_000 }, async () => {
  const ts = await startXmppServer({ xmpp: { allowPlainWithoutTls: true } }, { alice: "a-pass" });
  try {
    const port = ts.port("xmpp", "tcp");
    const one = await rawLogin(port, "alice", "a-pass", "one");
    one.send("<presence/>");
    // A message to itself after the presence: everything the presence caused is ahead of it.
    one.send(chatTo("alice@localhost/one", "barrier1"));
    await one.until(/barrier1/);
    assert.equal(presencesFrom(one, "alice@localhost/one"), 1, one.text);

    const two = await rawLogin(port, "alice", "a-pass", "two");
    two.send("<presence/>");
    two.send(chatTo("alice@localhost/two", "barrier2"));
    await two.until(/barrier2/);
    assert.equal(presencesFrom(two, "alice@localhost/two"), 1, two.text);
    assert.equal(presencesFrom(two, "alice@localhost/one"), 1, two.text);
    two.send(chatTo("alice@localhost/one", "barrier3"));
    await one.until(/barrier3/);
    assert.equal(presencesFrom(one, "alice@localhost/two"), 1, one.text);
    assert.equal(presencesFrom(one, "alice@localhost/one"), 1, one.text);
    one.destroy();
    two.destroy();
  } finally {
    await ts.stop();
  }
});
