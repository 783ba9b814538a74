import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import { startXmppServer, waitUntil, type TestServer } from "../../helpers.js";
import { online, type Online } from "./util.js";

// XEP-0313 with XEP-0359 stanza ids and XEP-0059 paging, on a real server with @xmpp/client:
// alice's phone talks to bob; her desk, logged in later, fetches the history and pages through it.

const MAM = "urn:xmpp:mam:2";
const SID = "urn:xmpp:sid:0";
const RSM = "http://jabber.org/protocol/rsm";
const FORWARD = "urn:xmpp:forward:0";

let ts: TestServer;
let phone: Online, bob: Online;
/** The stanza-id bob's m0 came with. */
let m0Id = "";

before(async () => {
  ts = await startXmppServer({ xmpp: { mam: { enabled: true, maxPageSize: 20 } } }, { alice: "a-pass", bob: "b-pass", carol: "c-pass" });
  const port = ts.port("xmpp", "tcp");
  phone = await online(port, "alice", "a-pass", { resource: "phone" });
  bob = await online(port, "bob", "b-pass", { resource: "b" });
  await Promise.all([smEnabled(phone), smEnabled(bob)]);
}, { timeout: 15_000 });
after(async () => {
  await Promise.all([phone, bob].map((c) => c?.stop()));
  await ts.stop();
});

const isMsg = (id: string) => (el: any) => el.is("message") && el.attrs.id === id;
const chat = (to: string, id: string, ...extra: any[]) => xml("message", { to, id, type: "chat" }, xml("body", {}, `text of ${id}`), ...extra);

/** Runs one query and collects its results (by queryid) and its <fin/>. */
async function mam(c: Online, queryid: string, form: Record<string, string> = {}, set: any[] = []): Promise<{ results: any[]; fin: any }> {
  const fields = Object.entries(form).map(([k, v]) => xml("field", { var: k }, xml("value", {}, v)));
  const x = fields.length === 0 ? [] : [xml("x", { xmlns: "jabber:x:data", type: "submit" }, xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, MAM)), ...fields)];
  const rsm = set.length === 0 ? [] : [xml("set", { xmlns: RSM }, ...set)];
  // iqCaller.set would look for a <query/> in the answer; the answer of a query is a <fin/>.
  const res = (await c.c.iqCaller.request(xml("iq", { type: "set" }, xml("query", { xmlns: MAM, queryid }, ...x, ...rsm)))).getChild("fin", MAM);
  const results = c.stanzas.filter((el) => el.is("message") && el.getChild("result", MAM)?.attrs.queryid === queryid);
  for (const r of results) c.stanzas.splice(c.stanzas.indexOf(r), 1);
  return { results, fin: res };
}
/**
 * @xmpp/client 0.14 resets its XEP-0198 count when it handles <enabled/>, which it does after stanzas that
 * arrived behind it: a burst of results right after login would be miscounted. Queries wait for it.
 */
async function smEnabled(c: Online): Promise<void> {
  await waitUntil(() => c.c.streamManagement?.enabled === true, 5000, "stream management enabled");
  await c.c.iqCaller.get(xml("ping", { xmlns: "urn:xmpp:ping" }));
}
const bodies = (r: { results: any[] }) => r.results.map((m) => m.getChild("result", MAM).getChild("forwarded", FORWARD).getChild("message").getChildText("body"));

test("advertised on the account; a delivered message carries a stanza-id by the recipient, a forged one is removed, origin-id kept", { timeout: 10_000 }, async () => {
  const info = await phone.c.iqCaller.get(xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }), "alice@localhost");
  const vars = info.getChildren("feature").map((f: any) => f.attrs.var);
  assert.ok(vars.includes(MAM) && vars.includes(SID), vars.join(" "));
  await phone.c.send(chat("bob@localhost", "m0", xml("stanza-id", { xmlns: SID, by: "bob@localhost", id: "forged" }), xml("origin-id", { xmlns: SID, id: "origin-0" })));
  const got = await bob.waitFor(isMsg("m0"));
  const ids = got.getChildren("stanza-id", SID);
  assert.equal(ids.length, 1, String(got));
  assert.equal(ids[0].attrs.by, "bob@localhost");
  assert.notEqual(ids[0].attrs.id, "forged");
  m0Id = ids[0].attrs.id;
  assert.equal(got.getChild("origin-id", SID)?.attrs.id, "origin-0");
});

test("a second device fetches the history of both directions, pages forwards and backwards, fin complete", { timeout: 20_000 }, async () => {
  for (let i = 1; i <= 12; i++) {
    const [from, to, peer] = i % 3 === 0 ? [bob, "alice@localhost", phone] : [phone, "bob@localhost", bob];
    await from.c.send(chat(to, `m${i}`));
    await peer.waitFor(isMsg(`m${i}`));
  }
  // A headline and a bodiless chat state are not archived.
  await phone.c.send(xml("message", { to: "bob@localhost", type: "headline", id: "h" }, xml("body", {}, "headline")));
  await phone.c.send(xml("message", { to: "bob@localhost", type: "chat", id: "cs" }, xml("composing", { xmlns: "http://jabber.org/protocol/chatstates" })));
  await bob.waitFor(isMsg("cs"));
  const desk = await online(ts.port("xmpp", "tcp"), "alice", "a-pass", { resource: "desk" });
  try {
    await smEnabled(desk);
    const all = await mam(desk, "q-all");
    assert.deepEqual(bodies(all), ["text of m0", ...Array.from({ length: 12 }, (_, i) => `text of m${i + 1}`)]);
    const fin = all.fin;
    assert.equal(fin.attrs.complete, "true");
    const first = all.results[0].getChild("result", MAM);
    assert.ok(first.getChild("forwarded", FORWARD).getChild("delay", "urn:xmpp:delay").attrs.stamp);
    const inner = first.getChild("forwarded", FORWARD).getChild("message");
    assert.equal(inner.attrs.from, phone.jid);
    assert.equal(inner.attrs.to, "bob@localhost");
    assert.equal(inner.getChildren("stanza-id", SID).length, 0, "the archived copy has no stanza-id; the result's id is it");
    assert.equal(first.attrs.id, m0Id, "the result id is the stanza-id the recipient got");
    // Forwards, 5 at a time.
    const p1 = await mam(desk, "p1", {}, [xml("max", {}, "5")]);
    assert.deepEqual(bodies(p1), ["m0", "m1", "m2", "m3", "m4"].map((m) => `text of ${m}`));
    const f1 = p1.fin;
    assert.equal(f1.attrs.complete, undefined);
    const last = f1.getChild("set", RSM).getChildText("last");

    const p2 = await mam(desk, "p2", {}, [xml("max", {}, "5"), xml("after", {}, last)]);
    assert.deepEqual(bodies(p2), ["m5", "m6", "m7", "m8", "m9"].map((m) => `text of ${m}`));
    const p3 = await mam(desk, "p3", {}, [xml("max", {}, "5"), xml("after", {}, p2.fin.getChild("set", RSM).getChildText("last"))]);
    assert.deepEqual(bodies(p3), ["m10", "m11", "m12"].map((m) => `text of ${m}`));
    assert.equal(p3.fin.attrs.complete, "true");
    // Backwards from the end: <before/> empty is the last page.
    const b1 = await mam(desk, "b1", {}, [xml("max", {}, "4"), xml("before", {})]);
    assert.deepEqual(bodies(b1), ["m9", "m10", "m11", "m12"].map((m) => `text of ${m}`));
    const bf = b1.fin;
    const b2 = await mam(desk, "b2", {}, [xml("max", {}, "4"), xml("before", {}, bf.getChild("set", RSM).getChildText("first"))]);
    assert.deepEqual(bodies(b2), ["m5", "m6", "m7", "m8"].map((m) => `text of ${m}`));
    // with: only bob's messages to alice were every third.
    const fromBob = await mam(desk, "w", { with: bob.jid });
    assert.deepEqual(bodies(fromBob), ["m3", "m6", "m9", "m12"].map((m) => `text of ${m}`));
    // start in the future: nothing, complete.
    const none = await mam(desk, "future", { start: "2100-01-01T00:00:00Z" });
    assert.equal(none.results.length, 0);
    // bob's archive has the same messages, by his own ids.
    const bobs = await mam(bob, "bob-all");
    assert.equal(bobs.results.length, 13);
  } finally {
    await desk.stop();
  }
});

test("bad input: malformed form, bad dates, unknown fields, unknown RSM ids, RSM index, bad max: a clear error, the session goes on", { timeout: 10_000 }, async () => {
  const q = (...kids: any[]) => phone.c.iqCaller.set(xml("query", { xmlns: MAM, queryid: "bad" }, ...kids));
  const form = (...fields: any[]) => xml("x", { xmlns: "jabber:x:data", type: "submit" }, ...fields);
  const field = (k: string, v: string) => xml("field", { var: k }, xml("value", {}, v));
  await assert.rejects(q(form(field("start", "yesterday"))), /bad-request/);
  await assert.rejects(q(form(field("end", "2026-02-30T00:00:00Z"))), /bad-request/);
  await assert.rejects(q(form(field("with", "@@"))), /bad-request/);
  await assert.rejects(q(form(field("FORM_TYPE", "urn:xmpp:mam:1"))), /bad-request/);
  await assert.rejects(q(form(field("flavour", "x"))), /feature-not-implemented/);
  await assert.rejects(q(xml("set", { xmlns: RSM }, xml("after", {}, "no-such-id"))), /item-not-found/);
  await assert.rejects(q(xml("set", { xmlns: RSM }, xml("max", {}, "-1"))), /bad-request/);
  await assert.rejects(q(xml("set", { xmlns: RSM }, xml("index", {}, "100000"))), /feature-not-implemented/);
  await assert.rejects(phone.c.iqCaller.set(xml("prefs", { xmlns: MAM, default: "sometimes" })), /bad-request/);
  // A huge max is cut to maxPageSize (20): still answered.
  const big = await mam(phone, "big", {}, [xml("max", {}, "999999999")]);
  assert.ok(big.results.length <= 20);
  // The session still works.
  await phone.c.send(chat("bob@localhost", "after-bad"));
  await bob.waitFor(isMsg("after-bad"));
});

test("preferences: never bob stops archiving him; always carol archives her despite default never", { timeout: 10_000 }, async () => {
  const carol = await online(ts.port("xmpp", "tcp"), "carol", "c-pass", { resource: "c" });
  try {
    const got = await phone.c.iqCaller.get(xml("prefs", { xmlns: MAM }));
    assert.equal(got.attrs.default ?? got.getChild("prefs", MAM)?.attrs.default, "always");
    await phone.c.iqCaller.set(xml("prefs", { xmlns: MAM, default: "never" }, xml("always", {}, xml("jid", {}, "carol@localhost")), xml("never", {}, xml("jid", {}, "bob@localhost"))));
    const before = (await mam(phone, "pre")).results.length;
    await phone.c.send(chat("bob@localhost", "p-bob"));
    await bob.waitFor(isMsg("p-bob"));
    await phone.c.send(chat("carol@localhost", "p-carol"));
    await carol.waitFor(isMsg("p-carol"));
    const after = await mam(phone, "post");
    assert.equal(after.results.length, before + 1);
    assert.equal(bodies(after).at(-1), "text of p-carol");
    // bob's own archive (default always) has it.
    const bobs = await mam(bob, "bob-p", { with: "alice@localhost" }, [xml("before", {}), xml("max", {}, "1")]);
    assert.deepEqual(bodies(bobs), ["text of p-bob"]);
  } finally {
    await carol.stop();
  }
});
