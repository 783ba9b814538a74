import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { startXmppServer, type TestServer } from "../../helpers.js";
import { HEADER, Raw, plainAuth, rawLogin } from "./util.js";

// XEP-0352 on a real server with raw sockets: bob's presence to alice is held
// while alice is inactive; what flushes it is awaited, never a sleep. Each
// check ends with a ping round trip from alice, so "not arrived" means "not
// arrived before something the server wrote later".

let ts: TestServer;
let port: number;

before(async () => {
  ts = await startXmppServer({ xmpp: { allowPlainWithoutTls: true } }, { alice: "a-pass", bob: "b-pass" });
  port = ts.port("xmpp", "tcp");
}, { timeout: 15_000 });
after(() => ts.stop());

let serial = 0;
/** Alice's stream is caught up: everything the server wrote to her before this is in r.text. */
async function roundTrip(r: Raw): Promise<string> {
  const id = `rt${++serial}`;
  r.send(`<iq type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  const text = await r.until(new RegExp(`id=["']${id}["']`));
  return text.slice(0, text.search(new RegExp(`<iq[^>]*id=["']${id}["']`)));
}

const status = (s: string) => `<presence to='alice@localhost/phone'><status>${s}</status></presence>`;

test("csi is offered with the features after authentication, not before", { timeout: 15_000 }, async () => {
  const r = new Raw(port);
  await r.ready();
  r.send(HEADER);
  const first = await r.until(/<\/stream:features>/);
  assert.doesNotMatch(first, /urn:xmpp:csi:0/);
  r.send(plainAuth("alice", "a-pass"));
  await r.until(/<success/);
  r.text = "";
  r.send(HEADER);
  const second = await r.until(/<\/stream:features>/);
  assert.match(second, /<csi xmlns=["']urn:xmpp:csi:0["']\/>/);
  r.destroy();
});

test("inactive: presence held (latest per full JID), other stanzas pass; flushed before a message with a body and on active", { timeout: 20_000 }, async () => {
  const alice = await rawLogin(port, "alice", "a-pass", "phone");
  const bob = await rawLogin(port, "bob", "b-pass", "desk");
  const bob2 = await rawLogin(port, "bob", "b-pass", "laptop");
  try {
    alice.send("<inactive xmlns='urn:xmpp:csi:0'/>");
    await roundTrip(alice);

    // Directed presence (RFC 6121 §4.6) reaches alice's full JID without a subscription.
    bob.send(status("one"));
    bob.send(status("two"));
    bob2.send(status("away"));
    // A chat state without a body: not held, and does not flush.
    bob.send("<message to='alice@localhost/phone' type='chat' id='cs1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>");
    await alice.until(/id=["']cs1["']/);
    let seen = await roundTrip(alice);
    assert.doesNotMatch(seen, /<presence/, "presence held while inactive");
    assert.match(seen, /<composing/);

    // A message with a body: the held presence comes first, only the latest per full JID.
    alice.text = "";
    bob.send("<message to='alice@localhost/phone' type='chat' id='m1'><body>hi</body></message>");
    await alice.until(/id=["']m1["']/);
    seen = await roundTrip(alice);
    const body = seen.indexOf("<body>hi</body>");
    assert.ok(seen.indexOf("<status>two</status>") >= 0 && seen.indexOf("<status>two</status>") < body, `bob/desk's latest before the message: ${seen}`);
    assert.ok(seen.indexOf("<status>away</status>") >= 0 && seen.indexOf("<status>away</status>") < body, `bob/laptop's before the message: ${seen}`);
    assert.doesNotMatch(seen, /<status>one<\/status>/, "the older presence of bob/desk was replaced");
    assert.match(seen, /from=["']bob@localhost\/desk["']/);

    // Still inactive: held again until <active/>.
    alice.text = "";
    bob.send(status("three"));
    seen = await roundTrip(alice);
    assert.doesNotMatch(seen, /<presence/);
    alice.send("<active xmlns='urn:xmpp:csi:0'/>");
    seen = await roundTrip(alice);
    assert.match(seen, /<status>three<\/status>/, "flushed on active");

    // Active: presence passes at once.
    alice.text = "";
    bob.send(status("four"));
    await alice.until(/<status>four<\/status>/);
  } finally {
    for (const r of [alice, bob, bob2]) r.destroy();
  }
});

test("an unknown element in the CSI namespace is an unsupported-stanza-type stream error", { timeout: 15_000 }, async () => {
  const r = await rawLogin(port, "alice", "a-pass", "odd");
  r.send("<sleepy xmlns='urn:xmpp:csi:0'/>");
  await r.until(/<stream:error><unsupported-stanza-type /);
  await r.whenClosed();
});
