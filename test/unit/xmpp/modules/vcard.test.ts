import { test } from "node:test";
import assert from "node:assert/strict";
import { discoModule } from "../../../../src/xmpp/modules/disco.js";
import { vcardModule } from "../../../../src/xmpp/modules/vcard.js";
import { errorOf, fakeContext, fakeSession, fromClient, settle } from "./fake-session.js";

// XEP-0054 through the dispatcher on a real SQLite store.

async function bench(maxVcardBytes = 200) {
  const x = await fakeContext(["alice", "bob"], { maxVcardBytes });
  vcardModule(x.hooks, x, discoModule(x.hooks));
  const alice = fakeSession("alice");
  const bob = fakeSession("bob");
  return { x, alice, bob };
}

test("own vCard: empty at first, set, read back, replaced, removed by an empty one", { timeout: 5000 }, async () => {
  const { x, alice } = await bench();
  const last = () => alice.written.at(-1)!;
  fromClient(x, alice, "<iq type='get' id='g1'><vCard xmlns='vcard-temp'/></iq>");
  await settle();
  assert.equal(last().attrs.type, "result");
  assert.equal(last().getChild("vCard", "vcard-temp")!.children.length, 0);
  fromClient(x, alice, "<iq type='set' id='s1'><vCard xmlns='vcard-temp'><FN>Alice</FN><NICKNAME>al</NICKNAME></vCard></iq>");
  await settle();
  assert.equal(last().attrs.type, "result");
  fromClient(x, alice, "<iq type='get' to='alice@localhost' id='g2'><vCard xmlns='vcard-temp'/></iq>");
  await settle();
  assert.equal(last().getChild("vCard")!.getChildText("FN"), "Alice");
  assert.equal(last().attrs.from, "alice@localhost");
  fromClient(x, alice, "<iq type='set' id='s2'><vCard xmlns='vcard-temp'/></iq>");
  await settle();
  assert.equal(await x.profile.vcard("alice"), null);
});

test("another account's vCard, answered by the server; none, no such account, or blocked: an error that tells nothing more", { timeout: 5000 }, async () => {
  const { x, alice, bob } = await bench();
  const last = () => bob.written.at(-1)!;
  await x.profile.setVcard("alice", "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>");
  fromClient(x, bob, "<iq type='get' to='alice@localhost' id='o1'><vCard xmlns='vcard-temp'/></iq>");
  await settle();
  assert.equal(last().attrs.type, "result");
  assert.equal(last().attrs.from, "alice@localhost");
  assert.equal(last().getChild("vCard")!.getChildText("FN"), "Alice");
  for (const who of ["carol@localhost", "alice@localhost"]) {
    if (who === "alice@localhost") await x.profile.block("alice", ["bob@localhost"], 10);
    fromClient(x, bob, `<iq type='get' to='${who}' id='o2'><vCard xmlns='vcard-temp'/></iq>`);
    await settle();
    assert.equal(errorOf(last()), who === "carol@localhost" ? "item-not-found" : "service-unavailable", who);
  }
  fromClient(x, bob, "<iq type='set' to='alice@localhost' id='o3'><vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard></iq>");
  assert.equal(errorOf(last()), "forbidden");
  assert.match((await x.profile.vcard("alice"))!, /Alice/);
  // A damaged row counts as none.
  await x.profile.setVcard("bob", "<not xml");
  fromClient(x, alice, "<iq type='get' to='bob@localhost' id='o4'><vCard xmlns='vcard-temp'/></iq>");
  await settle();
  assert.equal(errorOf(alice.written.at(-1)!), "item-not-found");
});

test("too large or malformed: a clear error, the stored vCard untouched", { timeout: 5000 }, async () => {
  const { x, alice } = await bench(200);
  const last = () => alice.written.at(-1)!;
  await x.profile.setVcard("alice", "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>");
  fromClient(x, alice, `<iq type='set' id='big'><vCard xmlns='vcard-temp'><FN>${"x".repeat(200)}</FN></vCard></iq>`);
  assert.equal(errorOf(last()), "not-acceptable");
  assert.match(last().getChild("error")!.getChildText("text")!, /larger than 200 bytes/);
  fromClient(x, alice, "<iq type='set' id='bad'><vcard xmlns='vcard-temp'/></iq>");
  assert.equal(errorOf(last()), "bad-request");
  await settle();
  assert.equal(await x.profile.vcard("alice"), "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>");
});
