import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "ltx";
import { Flag } from "../../../../src/envelope/envelope.js";
import { discoModule } from "../../../../src/xmpp/modules/disco.js";
import { blockingModule } from "../../../../src/xmpp/modules/blocking.js";
import { messageModule } from "../../../../src/xmpp/modules/message.js";
import { presenceModule } from "../../../../src/xmpp/modules/presence.js";
import { iqModule } from "../../../../src/xmpp/modules/iq.js";
import { errorOf, fakeContext, fakeSession, fromClient, settle } from "./fake-session.js";

// The XEP-0191 module through the dispatcher, as a client's stanzas reach it, on a real SQLite store.

async function bench(maxBlocklistItems = 3) {
  const x = await fakeContext(["alice", "bob"], { maxBlocklistItems });
  const disco = discoModule(x.hooks);
  blockingModule(x.hooks, x, disco);
  messageModule(x.hooks);
  presenceModule(x.hooks, x);
  iqModule(x.hooks, x);
  const s = fakeSession("alice");
  s.blocked = new Set();
  const last = (): Element => s.written.at(-1)!;
  return { x, s, last };
}

test("get, block (several), unblock, unblock all: results, the store, and a push to every resource", { timeout: 5000 }, async () => {
  const { x, s, last } = await bench();
  fromClient(x, s, "<iq type='get' id='g'><blocklist xmlns='urn:xmpp:blocking'/></iq>");
  assert.equal(s.blocklistRequested, true);
  assert.equal(last().attrs.type, "result");
  assert.equal(last().getChild("blocklist")!.getChildren("item").length, 0);

  fromClient(x, s, "<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='Bob@LocalHost'/><item jid='spam.example'/><item jid='bob@localhost'/></block></iq>");
  await settle();
  assert.equal(last().attrs.id, "b");
  assert.equal(last().attrs.type, "result");
  assert.deepEqual((await x.profile.blocklist("alice")).sort(), ["bob@localhost", "spam.example"], "normalized, once each");
  const push = s.submitted.at(-1)!;
  assert.equal(push.to, "alice@localhost");
  assert.equal(push.from, "");
  assert.equal(push.flags & Flag.EveryResource, Flag.EveryResource);
  assert.deepEqual((push.payload as Element).getChild("block")!.getChildren("item").map((i) => i.attrs.jid), ["bob@localhost", "spam.example"]);

  fromClient(x, s, "<iq type='set' id='u'><unblock xmlns='urn:xmpp:blocking'><item jid='spam.example'/></unblock></iq>");
  await settle();
  assert.equal(last().attrs.type, "result");
  assert.deepEqual(await x.profile.blocklist("alice"), ["bob@localhost"]);
  fromClient(x, s, "<iq type='set' id='all'><unblock xmlns='urn:xmpp:blocking'/></iq>");
  await settle();
  assert.equal(last().attrs.type, "result");
  assert.deepEqual(await x.profile.blocklist("alice"), []);
  assert.equal((s.submitted.at(-1)!.payload as Element).getChild("unblock")!.children.length, 0, "§3.5: the push is an empty <unblock/>");
});

test("bad input: a clear error, nothing stored, nothing pushed", { timeout: 5000 }, async () => {
  const { x, s, last } = await bench(3);
  const cases: [string, string][] = [
    ["<block xmlns='urn:xmpp:blocking'/>", "bad-request"],
    ["<block xmlns='urn:xmpp:blocking'><item/></block>", "jid-malformed"],
    ["<block xmlns='urn:xmpp:blocking'><item jid='a@@b'/></block>", "jid-malformed"],
    ["<block xmlns='urn:xmpp:blocking'><item jid='@localhost'/></block>", "jid-malformed"],
    ["<block xmlns='urn:xmpp:blocking'><item jid='x@localhost/'/></block>", "jid-malformed"],
    ["<block xmlns='urn:xmpp:blocking'><other jid='x@localhost'/></block>", "bad-request"],
    ["<unblock xmlns='urn:xmpp:blocking'><item jid='a b@localhost'/></unblock>", "jid-malformed"],
    ["<blocklist xmlns='urn:xmpp:blocking'/>", "bad-request"],
    ["<block xmlns='urn:xmpp:blocking'><item jid='a@x'/><item jid='b@x'/><item jid='c@x'/><item jid='d@x'/></block>", "policy-violation"],
  ];
  for (const [child, cond] of cases) {
    fromClient(x, s, `<iq type='set' id='bad'>${child}</iq>`);
    await settle();
    assert.equal(errorOf(last()), cond, child);
  }
  fromClient(x, s, "<iq type='get' id='bad'><block xmlns='urn:xmpp:blocking'/></iq>");
  assert.equal(errorOf(last()), "bad-request");
  // The cap counts what is stored.
  fromClient(x, s, "<iq type='set' id='ok'><block xmlns='urn:xmpp:blocking'><item jid='a@x'/><item jid='b@x'/></block></iq>");
  await settle();
  assert.equal(last().attrs.type, "result");
  fromClient(x, s, "<iq type='set' id='full'><block xmlns='urn:xmpp:blocking'><item jid='c@x'/><item jid='d@x'/></block></iq>");
  await settle();
  assert.equal(errorOf(last()), "policy-violation");
  assert.deepEqual((await x.profile.blocklist("alice")).sort(), ["a@x", "b@x"]);
  assert.equal(s.submitted.length, 1, "one push, for the one block that was made");
});

test("what the user sends to a blocked JID: <not-acceptable/> with <blocked/> for messages and requests; presence and answers dropped", { timeout: 5000 }, async () => {
  const { x, s, last } = await bench();
  s.blocked = new Set(["bob@localhost"]);
  fromClient(x, s, "<message to='bob@localhost/r' type='chat' id='m'><body>hi</body></message>");
  assert.equal(last().attrs.id, "m");
  assert.equal(errorOf(last()), "not-acceptable+blocked");
  assert.equal(last().getChild("error")!.getChild("blocked")!.attrs.xmlns, "urn:xmpp:blocking:errors");
  fromClient(x, s, "<iq to='bob@localhost/r' type='get' id='q'><ping xmlns='urn:xmpp:ping'/></iq>");
  assert.equal(errorOf(last()), "not-acceptable+blocked");
  fromClient(x, s, "<iq to='bob@localhost' type='get' id='v'><vCard xmlns='vcard-temp'/></iq>");
  assert.equal(errorOf(last()), "not-acceptable+blocked");
  const written = s.written.length;
  fromClient(x, s, "<presence to='bob@localhost'/>");
  fromClient(x, s, "<presence to='bob@localhost' type='subscribe'/>");
  fromClient(x, s, "<iq to='bob@localhost/r' type='result' id='a'/>");
  fromClient(x, s, "<message to='bob@localhost' type='error' id='e'/>");
  assert.equal(s.written.length, written, "no answer");
  assert.equal(s.submitted.length, 0, "nothing reached the core");
  // Others still get through.
  fromClient(x, s, "<message to='carol@localhost' type='chat' id='c'><body>hi</body></message>");
  assert.equal(s.submitted.length, 1);
});

test("a presence broadcast skips blocked subscribers", { timeout: 5000 }, async () => {
  const { x, s } = await bench();
  s.blocked = new Set(["bob@localhost"]);
  s.roster = new Map(
    ["bob@localhost", "carol@localhost"].map((jid) => [jid, { jid, name: "", subscription: "both" as const, ask: false, groups: [] }]),
  );
  s.available = true;
  fromClient(x, s, "<presence><show>away</show></presence>");
  assert.deepEqual(s.submitted.map((e) => e.to), ["carol@localhost", "alice@localhost"]);
});

test("the server advertises urn:xmpp:blocking", { timeout: 5000 }, async () => {
  const { x, s, last } = await bench();
  fromClient(x, s, "<iq to='localhost' type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
  assert.ok(last().getChild("query")!.getChildren("feature").some((f) => f.attrs.var === "urn:xmpp:blocking"));
});
