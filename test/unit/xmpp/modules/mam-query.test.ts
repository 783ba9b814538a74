import { test } from "node:test";
import assert from "node:assert/strict";
import { parse } from "ltx";
import { parseDateTime, parseQuery } from "../../../../src/xmpp/modules/mam-query.js";
import { StanzaIds, stanzaIdOf } from "../../../../src/xmpp/modules/stanza-id.js";

// XEP-0313 query parsing (data form fields, XEP-0059 set) and XEP-0359 marking, without a server.

const q = (inner: string) => parse(`<query xmlns='urn:xmpp:mam:2' queryid='f27'>${inner}</query>`);
const form = (fields: string) => `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>${fields}</x>`;
const field = (k: string, v: string) => `<field var='${k}'><value>${v}</value></field>`;
const rsm = (inner: string) => `<set xmlns='http://jabber.org/protocol/rsm'>${inner}</set>`;

test("an empty query: the whole archive, a page of maxPageSize, forwards", { timeout: 5000 }, () => {
  assert.deepEqual(parseQuery(q(""), 50), { ok: true, query: { max: 50 }, queryid: "f27" });
});

test("with (bare and full), start, end, and the RSM set", { timeout: 5000 }, () => {
  const r = parseQuery(q(form(field("with", "Juliet@Capulet.lit/Balcony") + field("start", "2010-06-07T00:00:00Z") + field("end", "2010-07-07T13:23:54.5+02:00")) + rsm("<max>10</max><after>09af3-cc343-b409f</after>")), 50);
  assert.ok(r.ok);
  assert.deepEqual(r.query, { max: 10, with: "juliet@capulet.lit", withResource: "Balcony", start: Date.UTC(2010, 5, 7), end: Date.UTC(2010, 6, 7, 11, 23, 54, 500), after: "09af3-cc343-b409f" });
  const back = parseQuery(q(rsm("<max>5</max><before/>")), 50);
  assert.ok(back.ok);
  assert.deepEqual(back.query, { max: 5, last: true });
  const before = parseQuery(q(rsm("<before>abc</before>")), 50);
  assert.ok(before.ok && before.query.before === "abc" && before.query.last === undefined);
});

test("a max above the limit is cut to it; max 0 asks for a count", { timeout: 5000 }, () => {
  const big = parseQuery(q(rsm("<max>999999999</max>")), 50);
  assert.ok(big.ok && big.query.max === 50);
  const zero = parseQuery(q(rsm("<max>0</max>")), 50);
  assert.ok(zero.ok && zero.query.max === 0);
});

test("bad input is refused with a reason: dates, JIDs, FORM_TYPE, unknown fields, max, ids, index", { timeout: 5000 }, () => {
  const refused = (inner: string, cond: string, text: RegExp) => {
    const r = parseQuery(q(inner), 50);
    assert.ok(!r.ok, inner);
    assert.equal(r.cond, cond, inner);
    assert.match(r.text, text, inner);
  };
  refused(form(field("start", "yesterday")), "bad-request", /start/);
  refused(form(field("end", "2026-02-30T00:00:00Z")), "bad-request", /end/);
  refused(form(field("end", "2026-13-01T00:00:00Z")), "bad-request", /end/);
  refused(form(field("start", "2026-01-01T00:00:00")), "bad-request", /start/);
  refused(form(field("start", "2026-01-02T00:00:00Z") + field("end", "2026-01-01T00:00:00Z")), "bad-request", /after end/);
  refused(form(field("with", "a@b@c")), "bad-request", /with/);
  refused(form("<field var='with'/>"), "bad-request", /with/);
  refused(`<x xmlns='jabber:x:data' type='submit'>${field("FORM_TYPE", "urn:xmpp:mam:1")}</x>`, "bad-request", /FORM_TYPE/);
  refused(`<x xmlns='jabber:x:data' type='form'/>`, "bad-request", /submit/);
  refused(form(field("{urn:example}flavour", "x")), "feature-not-implemented", /flavour/);
  refused(rsm("<max>-1</max>"), "bad-request", /max/);
  refused(rsm("<max>ten</max>"), "bad-request", /max/);
  refused(rsm("<after/>"), "bad-request", /after/);
  refused(rsm(`<after>${"x".repeat(300)}</after>`), "bad-request", /after/);
  refused(rsm("<index>100000</index>"), "feature-not-implemented", /index/);
  const long = parseQuery(parse(`<query xmlns='urn:xmpp:mam:2' queryid='${"q".repeat(300)}'/>`), 50);
  assert.ok(!long.ok && long.cond === "bad-request");
});

test("XEP-0082 DateTime: zones and fractions; anything else is null", { timeout: 5000 }, () => {
  assert.equal(parseDateTime("1970-01-01T00:00:01Z"), 1000);
  assert.equal(parseDateTime("1970-01-01T01:00:01+01:00"), 1000);
  assert.equal(parseDateTime("1970-01-01T00:00:01.25Z"), 1250);
  for (const bad of ["", "1970-01-01", "1970-01-01 00:00:01Z", "1970-01-01T24:00:00Z", "1970-02-29T00:00:00Z", "x1970-01-01T00:00:01Z"]) assert.equal(parseDateTime(bad), null, bad);
});

test("stanza ids: archived messages get one as their last child, by the recipient; forged ones by either user go", { timeout: 5000 }, () => {
  const ids = new StanzaIds("localhost");
  const m = parse(`<message type='chat'><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='forged'/><stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='forged2'/><stanza-id xmlns='urn:xmpp:sid:0' by='muc.example' id='keep'/><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>`);
  assert.equal(ids.mark(m, "alice@localhost", "bob@localhost/phone"), true);
  const sids = m.getChildren("stanza-id", "urn:xmpp:sid:0");
  assert.deepEqual(sids.map((s) => s.attrs.by), ["muc.example", "bob@localhost"]);
  assert.equal(stanzaIdOf(m), sids[1].attrs.id);
  assert.equal(m.getChild("origin-id", "urn:xmpp:sid:0")?.attrs.id, "o1");
  const other = parse(`<message><body>x</body></message>`);
  ids.mark(other, "alice@localhost", "bob@localhost");
  assert.notEqual(stanzaIdOf(other), stanzaIdOf(m), "unique");
  // To another domain: the sender's archive names it.
  const remote = parse(`<message type='normal'><body>x</body></message>`);
  assert.equal(ids.mark(remote, "alice@localhost", "romeo@montague.lit"), true);
  assert.equal(remote.getChildren("stanza-id", "urn:xmpp:sid:0")[0].attrs.by, "alice@localhost");
});

test("not archived: no body, headline, groupchat, error, <no-store/>, <no-permanent-store/>, a carbon; forged ids still go", { timeout: 5000 }, () => {
  const ids = new StanzaIds("localhost");
  for (const text of [
    `<message type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
    `<message type='headline'><body>x</body></message>`,
    `<message type='groupchat'><body>x</body></message>`,
    `<message type='error'><body>x</body></message>`,
    `<message type='chat'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>`,
    `<message type='chat'><body>x</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>`,
    `<message type='chat'><body>x</body><received xmlns='urn:xmpp:carbons:2'/></message>`,
  ]) {
    const m = parse(text);
    assert.equal(ids.mark(m, "alice@localhost", "bob@localhost"), false, text);
    assert.equal(stanzaIdOf(m), null, text);
  }
  const forged = parse(`<message type='chat'><stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='f'/></message>`);
  assert.equal(ids.mark(forged, "alice@localhost", "bob@localhost"), false);
  assert.equal(forged.getChildren("stanza-id", "urn:xmpp:sid:0").length, 0);
});
