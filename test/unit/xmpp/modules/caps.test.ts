import { test } from "node:test";
import assert from "node:assert/strict";
import { Element, parse } from "ltx";
import { capsString, capsVer } from "../../../../src/xmpp/modules/caps-hash.js";
import { Caps } from "../../../../src/xmpp/modules/caps.js";
import type { ClientSession } from "../../../../src/xmpp/client-session.js";
import { fakeContext, fakeSession, type Fake } from "./fake-session.js";

// XEP-0115: the verification string (§5.1, the examples of §5.2 and §5.3) and what the server
// learns per session: one question per new ver, checked, cached within a bound, retried on failure.

const SIMPLE = `<query xmlns='http://jabber.org/protocol/disco#info'>
  <identity category='client' name='Exodus 0.9.1' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
</query>`;

const COMPLEX = `<query xmlns='http://jabber.org/protocol/disco#info'>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
    <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>
    <field var='os'><value>Mac</value></field>
    <field var='os_version'><value>10.5.1</value></field>
    <field var='software'><value>Psi</value></field>
    <field var='software_version'><value>0.11</value></field>
  </x>
</query>`;

test("caps ver: the examples of XEP-0115 §5.2 and §5.3; duplicates and a bad FORM_TYPE fail", { timeout: 5000 }, () => {
  assert.equal(capsString(parse(SIMPLE)), "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<");
  assert.equal(capsVer(parse(SIMPLE)), "QgayPKawpkPSDYmwT/WM94uAlu0=");
  assert.equal(capsVer(parse(COMPLEX)), "q07IKJEyjvHSyhy//CH0CxmKi8w=");
  const dup = parse(SIMPLE);
  dup.c("feature", { var: "http://jabber.org/protocol/muc" });
  assert.equal(capsVer(dup), null, "§5.4: a feature twice");
  const form = parse(COMPLEX);
  form.getChild("x")!.getChildren("field")[0].attrs.type = "text-single";
  assert.equal(capsVer(form), null, "FORM_TYPE not hidden");
});

const NODE = "https://example.org/client";
const presence = (ver: string) => parse(`<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='${NODE}' ver='${ver}'/></presence>`);
const questions = (s: Fake) => s.written.filter((w) => w.name === "iq" && w.attrs.type === "get" && w.getChild("query", "http://jabber.org/protocol/disco#info"));
function answer(q: Element, body: string, type = "result"): Element {
  const iq = parse(`<iq type='${type}' id='${q.attrs.id}' to='localhost'>${type === "result" ? body : "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"}</iq>`);
  return iq;
}
const withNotify = (ver: string) => {
  const q = parse(SIMPLE);
  q.c("feature", { var: "urn:x:a+notify" });
  return { q, ver: capsVer(q)!, ok: ver };
};

test("caps: one question per new ver, the answer checked and shared, then known at once; a wrong answer is not cached", { timeout: 5000 }, async () => {
  const x = await fakeContext(["alice", "bob"]);
  const told: string[] = [];
  const caps = new Caps(x, (s, nodes) => told.push(`${s.address} ${[...nodes].join(",")}`));
  const { q, ver } = withNotify("");
  const a = fakeSession("alice", "a");
  const b = fakeSession("bob", "b");
  for (const s of [a, b]) {
    s.presence = presence(ver);
    caps.presence(s, s.presence as Element);
  }
  assert.equal(questions(a).length, 1, "the first session is asked");
  assert.equal(questions(b).length, 0, "the second waits for the same answer");
  const ask = questions(a)[0];
  assert.equal(ask.attrs.to, "alice@localhost/a");
  assert.equal(ask.getChild("query")!.attrs.node, `${NODE}#${ver}`);
  assert.equal(caps.answer(b as ClientSession, answer(ask, q.toString())), false, "only the session asked may answer");
  assert.equal(caps.answer(a, answer(ask, q.toString())), true);
  assert.deepEqual(told.sort(), ["alice@localhost/a urn:x:a", "bob@localhost/b urn:x:a"]);
  assert.deepEqual([...caps.notifyNodes(b)], ["urn:x:a"]);
  assert.equal(caps.cached, 1);

  // Known now: a third session is not asked; the same presence again changes nothing.
  const c = fakeSession("bob", "c");
  caps.presence(c, presence(ver));
  assert.equal(questions(c).length, 0);
  assert.deepEqual([...caps.notifyNodes(c)], ["urn:x:a"]);
  caps.presence(c, presence(ver));
  assert.equal(told.length, 3, "told once per session");

  // A session whose answer does not hash to its ver: used for that session only, never cached.
  const liar = fakeSession("alice", "liar");
  const fake = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  liar.presence = presence(fake);
  caps.presence(liar, liar.presence as Element);
  caps.answer(liar, answer(questions(liar)[0], q.toString()));
  assert.equal(caps.cached, 1, "not cached");
  const next = fakeSession("alice", "next");
  caps.presence(next, presence(fake));
  assert.equal(questions(next).length, 1, "asked again");

  // No +notify in the presence without caps; forget() empties a session's interest.
  caps.presence(c, parse("<presence/>"));
  assert.equal(caps.notifyNodes(c).size, 0);
  caps.forget(b);
  assert.equal(caps.notifyNodes(b).size, 0);
});

test("caps: an error or no answer in time asks the next session with that ver; the cache is bounded", { timeout: 5000 }, async () => {
  const x = await fakeContext(["alice"], { pep: { capsCacheSize: 1, capsTimeoutMs: 100 } });
  const caps = new Caps(x, () => {});
  const { q, ver } = withNotify("");
  const [a, b, c] = ["a", "b", "c"].map((r) => fakeSession("alice", r));
  for (const s of [a, b, c]) {
    s.presence = presence(ver);
    caps.presence(s, s.presence as Element);
  }
  caps.answer(a, answer(questions(a)[0], "", "error"));
  assert.equal(questions(b).length, 1, "b asked after a's error");
  const deadline = Date.now() + 3000;
  while (questions(c).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(questions(c).length, 1, "c asked after b's silence");
  caps.answer(c, answer(questions(c)[0], q.toString()));
  for (const s of [a, b, c]) assert.deepEqual([...caps.notifyNodes(s)], ["urn:x:a"], s.address);

  const other = parse(SIMPLE);
  const d = fakeSession("alice", "d");
  d.presence = presence(capsVer(other)!);
  caps.presence(d, d.presence as Element);
  caps.answer(d, answer(questions(d)[0], other.toString()));
  assert.equal(caps.cached, 1, "capsCacheSize 1: the older ver went");
  const e = fakeSession("alice", "e");
  caps.presence(e, presence(ver));
  assert.equal(questions(e).length, 1, "the forgotten ver is asked again");
});

test("caps: a session continued from another worker is learned again from its last presence, without its last items again", { timeout: 5000 }, async () => {
  const x = await fakeContext(["alice"]);
  const told: string[] = [];
  const caps = new Caps(x, (s) => told.push(s.address));
  const { q, ver } = withNotify("");
  const a = fakeSession("alice", "a");
  a.presence = presence(ver);
  caps.presence(a, a.presence as Element);
  caps.answer(a, answer(questions(a)[0], q.toString()));
  assert.deepEqual(told, ["alice@localhost/a"]);
  const moved = fakeSession("alice", "a");
  moved.presence = presence(ver);
  caps.continued(moved);
  assert.deepEqual([...caps.notifyNodes(moved)], ["urn:x:a"], "known at once: the ver is cached here");
  assert.deepEqual(told, ["alice@localhost/a"], "no last items again");
  caps.presence(moved, parse("<presence/>"));
  caps.presence(moved, presence(ver));
  assert.equal(told.length, 2, "a later change of caps is told as usual");
});
