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
      assert.equal(stampText(serialize(el), "message", from, to), serializeWith(el, { from, to }), `${xml} ${from} ${to}`);
    }
  }
  assert.equal(stampText(`<iq type="set"/>`, "message", "a@x", "b@x"), null);
  assert.equal(stampText(`<messages/>`, "message", "a@x", "b@x"), null);
  assert.equal(stampText(`<message`, "message", "a@x", "b@x"), null);
  assert.equal(stampText(``, "message", "a@x", "b@x"), null);
});
