import { test } from "node:test";
import assert from "node:assert/strict";
import { Element, parse } from "ltx";
import { discoModule } from "../../../../src/xmpp/modules/disco.js";
import { pepModule } from "../../../../src/xmpp/modules/pep.js";
import { Envelope, Flag } from "../../../../src/envelope/envelope.js";
import { errorOf, fakeContext, fakeSession, fromClient, settle } from "./fake-session.js";

// XEP-0163 through the dispatcher on a real SQLite store: who is sent an event, what a session
// writes of one, and bad input refused with the XEP-0060 error and nothing stored.

const NS = "http://jabber.org/protocol/pubsub";
async function bench(pep: Record<string, unknown> = {}) {
  const x = await fakeContext(["alice", "bob", "carol"], { pep: { maxItemBytes: 100, maxNodes: 2, ...pep } });
  pepModule(x.hooks, x, discoModule(x.hooks));
  const alice = fakeSession("alice");
  alice.roster = new Map([
    ["bob@localhost", { jid: "bob@localhost", name: "", subscription: "both", ask: false, groups: [] }],
    ["carol@localhost", { jid: "carol@localhost", name: "", subscription: "to", ask: false, groups: [] }],
    ["dan@elsewhere", { jid: "dan@elsewhere", name: "", subscription: "from", ask: false, groups: [] }],
  ]);
  return { x, alice };
}
const publish = (node: string, payload: string, options = "") =>
  `<iq type='set' id='p'><pubsub xmlns='${NS}'><publish node='${node}'><item id='i'>${payload}</item></publish>${options}</pubsub></iq>`;
const form = (fields: string, type = "http://jabber.org/protocol/pubsub#publish-options") =>
  `<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>${type}</value></field>${fields}</x></publish-options>`;

test("a publish: the result, then one event per bare JID: the owner and local contacts with a subscription from the owner; whitelist: the owner only", { timeout: 5000 }, async () => {
  const { x, alice } = await bench();
  fromClient(x, alice, publish("urn:x:n", "<p xmlns='urn:x'>1</p>"));
  await settle();
  const res = alice.written.at(-1)!;
  assert.equal(res.attrs.type, "result");
  assert.equal(res.getChild("pubsub")!.getChild("publish")!.getChild("item")!.attrs.id, "i");
  assert.deepEqual(alice.submitted.map((e) => `${e.from}>${e.to} ${e.flags === Flag.EveryResource}`), ["alice@localhost>alice@localhost true", "alice@localhost>bob@localhost true"]);
  const ev = alice.submitted[0].payload as Element;
  assert.equal(ev.attrs.type, "headline");
  assert.equal(ev.getChild("event", `${NS}#event`)!.getChild("items")!.attrs.node, "urn:x:n");

  alice.submitted.length = 0;
  fromClient(x, alice, publish("urn:x:w", "<p xmlns='urn:x'>1</p>", form("<field var='pubsub#access_model'><value>whitelist</value></field>")));
  await settle();
  assert.deepEqual(alice.submitted.map((e) => e.to), ["alice@localhost"]);
  assert.deepEqual(await x.pep.node("alice", "urn:x:w"), { accessModel: "whitelist", persistItems: true, maxItems: 1 });
});

test("bad input: a huge item, no payload, two items, a malformed or mistyped form, one node too many: an error, nothing stored or sent", { timeout: 5000 }, async () => {
  const { x, alice } = await bench();
  const err = async (xml: string) => {
    fromClient(x, alice, xml);
    await settle();
    return errorOf(alice.written.at(-1)!);
  };
  assert.equal(await err(publish("urn:x:n", `<p xmlns='urn:x'>${"x".repeat(200)}</p>`)), "not-acceptable+payload-too-big");
  assert.equal(await err(`<iq type='set' id='p'><pubsub xmlns='${NS}'><publish node='urn:x:n'><item id='i'/></publish></pubsub></iq>`), "bad-request+payload-required");
  assert.equal(await err(`<iq type='set' id='p'><pubsub xmlns='${NS}'><publish node='urn:x:n'><item/><item/></publish></pubsub></iq>`), "bad-request+invalid-payload");
  assert.equal(await err(`<iq type='set' id='p'><pubsub xmlns='${NS}'><publish><item><p xmlns='urn:x'/></item></publish></pubsub></iq>`), "bad-request+nodeid-required");
  assert.equal(await err(publish("urn:x:n", "<p xmlns='urn:x'/>", form("<field var='pubsub#max_items'><value>-3</value></field>"))), "bad-request+invalid-options");
  assert.equal(await err(publish("urn:x:n", "<p xmlns='urn:x'/>", form("<field var='pubsub#access_model'><value>roster</value></field>"))), "bad-request+invalid-options");
  assert.equal(await err(publish("urn:x:n", "<p xmlns='urn:x'/>", form("", "urn:other"))), "bad-request+invalid-options");
  assert.equal(await err(publish("urn:x:n", "<p xmlns='urn:x'/>", form("<field var='pubsub#max_items'><value>1000</value></field>"))), "bad-request+invalid-options", "past maxItemsPerNode");
  assert.deepEqual(alice.submitted, []);
  assert.deepEqual(await x.pep.nodes("alice"), []);
  for (const n of ["a", "b"]) assert.equal(await err(publish(n, "<p xmlns='urn:x'/>")), "");
  assert.equal(await err(publish("c", "<p xmlns='urn:x'/>")), "not-allowed");
  assert.equal(await err(`<iq type='set' id='s'><pubsub xmlns='${NS}'><subscribe node='a' jid='alice@localhost'/></pubsub></iq>`), "feature-not-implemented+unsupported");
  assert.equal(await err(`<iq type='set' id='s' to='bob@localhost'><pubsub xmlns='${NS}'><publish node='a'><item><p xmlns='urn:x'/></item></publish></pubsub></iq>`), "forbidden");
});

test("an event on the recipient's side: written only to an available session whose caps say +notify for that node, addressed to it", { timeout: 5000 }, async () => {
  const { x } = await bench();
  const bob = fakeSession("bob", "b");
  const ev = parse(`<message type='headline' from='alice@localhost'><event xmlns='${NS}#event'><items node='urn:x:n'><item id='i'/></items></event></message>`);
  const env = Envelope.message({ from: "alice@localhost", to: "bob@localhost", protocol: "xmpp", payload: ev, flags: Flag.EveryResource });
  assert.equal(x.pepEvent(bob, env), null, "no caps known");
  // Caps learned from presence: bob's client answers the server's disco#info.
  const q = parse(`<query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='pc'/><feature var='urn:x:n+notify'/></query>`);
  const { capsVer } = await import("../../../../src/xmpp/modules/caps-hash.js");
  bob.presence = parse(`<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='${capsVer(q)}'/></presence>`);
  fromClient(x, bob, String(bob.presence));
  const ask = bob.written.find((w) => w.name === "iq")!;
  fromClient(x, bob, `<iq type='result' id='${ask.attrs.id}' to='localhost'>${q}</iq>`);
  const wire = x.pepEvent(bob, env)!;
  assert.match(wire, /to="bob@localhost\/b"|to='bob@localhost\/b'/);
  bob.available = false;
  assert.equal(x.pepEvent(bob, env), null, "unavailable");
  bob.available = true;
  const other = Envelope.message({ from: "alice@localhost", to: "bob@localhost", protocol: "xmpp", payload: parse(ev.toString().replace("urn:x:n", "urn:x:other")), flags: Flag.EveryResource });
  assert.equal(x.pepEvent(bob, other), null, "another node");
});
