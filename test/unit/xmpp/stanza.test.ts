import { test } from "node:test";
import assert from "node:assert/strict";
import { Element, parse } from "ltx";
import { serialize, serializeWith, stampText } from "../../../src/xmpp/stanza.js";

const SAMPLES = [
  `<message type="chat" to="bob@localhost" id="a1"><body>hello</body></message>`,
  `<message to="bob@localhost"><body>a &amp; b &lt;c&gt; "q" 'a'</body><thread>t&amp;</thread></message>`,
  `<iq type="get" id="x&quot;y" to="a@b/c&amp;d"><query xmlns="jabber:iq:roster"/></iq>`,
  `<presence><show>away</show><status>out &lt;soon&gt;</status><priority>-1</priority><c xmlns="http://jabber.org/protocol/caps" hash="sha-1" node="n" ver="v/+="/></presence>`,
  `<message><body>ünïcödé 😀 &#x1F600;</body><x xmlns="jabber:x:data" type="form"><field var="a"><value>1</value></field><field var="b"/></x></message>`,
  `<message to="x@y"/>`,
];

test("serialize writes what ltx's toString writes, escapes included", () => {
  for (const xml of SAMPLES) {
    const el = parse(xml) as Element;
    assert.equal(serialize(el), el.toString(), xml);
    assert.deepEqual(parse(serialize(el)), el, "round trip");
  }
  const built = new Element("message", { to: "a@b", n: 5 as unknown as string, skip: undefined as unknown as string });
  built.c("body").t(`<&>"'`);
  assert.equal(serialize(built), built.toString());
});

test("serializeWith replaces, adds and removes attributes without touching the original", () => {
  const el = parse(`<iq type="get" id="orig" from="forged@x" to="bob@localhost/r"><ping xmlns="urn:xmpp:ping"/></iq>`) as Element;
  const before = el.toString();
  const out = serializeWith(el, { id: "w0.17", from: "alice@localhost/a", to: undefined });
  assert.deepEqual(parse(out), parse(`<iq type="get" id="w0.17" from="alice@localhost/a"><ping xmlns="urn:xmpp:ping"/></iq>`));
  assert.equal(el.toString(), before);
  assert.equal(serializeWith(el, { to: `a"<b` }).includes(`to="a&quot;&lt;b"`), true);
});

test("stampText on serialize's text writes what serializeWith writes for from and to; other shapes are left to the parser", () => {
  const more = [
    `<message from="forged@x" type="chat" to="old@x" id="a>b"><body>to="x" from="y" &gt;</body></message>`,
    `<message xmlns:to="urn:t" to:x="1" xml:lang="en"/>`,
    `<message>plain</message>`,
  ];
  for (const xml of [...SAMPLES, ...more].filter((x) => x.startsWith("<message"))) {
    const el = parse(xml) as Element;
    for (const [from, to] of [["alice@localhost/a", "bob@localhost"], ["", "b@x/r\"&<"], ["a@x/ü", ""]]) {
      // The same attributes as serializeWith writes; their order may differ (a text stamped already is kept).
      assert.deepEqual(parse(stampText(serialize(el), "message", from, to)!), parse(serializeWith(el, { from, to })), `${xml} ${from} ${to}`);
    }
  }
  // Stamped already with the envelope's from and to (its sender's worker wrote it so): the very text, no copy.
  for (const xml of [`<message to="bob@localhost" type="chat" id="m1" from="alice@localhost/a"><body>hi</body></message>`, `<message from="a@x/r" to="b@x"/>`]) {
    const el = parse(xml) as Element;
    const text = serialize(el);
    assert.equal(stampText(text, "message", el.attrs.from, el.attrs.to), text);
    // One of them other than the envelope's, or missing, or a value with '&': written anew.
    assert.equal(stampText(text, "message", `${el.attrs.from}x`, el.attrs.to), serializeWith(el, { from: `${el.attrs.from}x`, to: el.attrs.to }));
    assert.equal(stampText(text, "message", el.attrs.from, "c@x"), serializeWith(el, { from: el.attrs.from, to: "c@x" }));
    assert.equal(stampText(text, "message", el.attrs.from, ""), serializeWith(el, { from: el.attrs.from, to: "" }));
    assert.equal(stampText(text, "message", "", el.attrs.to), serializeWith(el, { from: "", to: el.attrs.to }));
  }
  const amp = parse(`<message from="a@x/r&amp;s" to="b@x"/>`) as Element;
  assert.equal(stampText(serialize(amp), "message", "a@x/r&s", "b@x"), serializeWith(amp, { from: "a@x/r&s", to: "b@x" }));
  assert.equal(stampText(serialize(amp), "message", "a@x/r&amp;s", "b@x"), serializeWith(amp, { from: "a@x/r&amp;s", to: "b@x" }));
  // Only one of from and to in the start tag, the other wanted empty: as it is.
  const one = serialize(parse(`<message to="b@x"><body> from="a@x" to="c@x"</body></message>`) as Element);
  assert.equal(stampText(one, "message", "", "b@x"), one);
  assert.equal(stampText(`<iq type="set"/>`, "message", "a@x", "b@x"), null);
  assert.equal(stampText(`<messages/>`, "message", "a@x", "b@x"), null);
  assert.equal(stampText(`<message`, "message", "a@x", "b@x"), null);
  assert.equal(stampText(``, "message", "a@x", "b@x"), null);
});
