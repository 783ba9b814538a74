import { test } from "node:test";
import assert from "node:assert/strict";
import { Element, parse } from "ltx";
import { renderArchived, renderText } from "../../../../src/xmpp/modules/mam.js";
import { StanzaIds } from "../../../../src/xmpp/modules/stanza-id.js";
import { serialize } from "../../../../src/xmpp/stanza.js";
import type { ArchiveEntry } from "../../../../src/store/archive-writer.js";

// What the archive keeps of a message (XEP-0313: the message as delivered, in jabber:client, without the
// server's stanza-id), rendered from the parsed stanza or, when it came over the bus unread, from its text.

const ids = new StanzaIds("localhost");
const entry = (payload: unknown): ArchiveEntry => ({ bare: "bob@localhost", outgoing: false, ts: 1, payload, from: "alice@localhost/phone", to: "bob@localhost" });

function marked(xmlText: string): Element {
  const el = parse(xmlText) as Element;
  assert.ok(ids.mark(el, "alice@localhost", "bob@localhost"));
  return el;
}

/** Same element: name, attributes (any order), children. */
function same(a: string, b: string): void {
  const norm = (x: Element | string): unknown =>
    typeof x === "string" ? x : [x.name, Object.entries(x.attrs).sort(([k], [l]) => (k < l ? -1 : 1)), x.children.map(norm)];
  assert.deepEqual(norm(parse(a) as Element), norm(parse(b) as Element), `${a}\n  !=\n${b}`);
}

test("from the text a worker sent over the bus: the same id and stanza as from the parsed element", { timeout: 5000 }, () => {
  for (const src of [
    `<message type="chat" id="m1" to="bob@localhost"><body>hi &amp; &lt;there&gt; "q"</body></message>`,
    `<message type="chat" to="bob@localhost" from="forged@x"><body>b</body><active xmlns="http://jabber.org/protocol/chatstates"/><origin-id xmlns="urn:xmpp:sid:0" id="o1"/></message>`,
    `<message xmlns="jabber:client" type="normal"><subject>s</subject><body>x</body></message>`,
  ]) {
    const el = marked(src);
    const fromEl = renderArchived(entry(el))!;
    const fromText = renderText(serialize(el), "alice@localhost/phone", "bob@localhost")!;
    assert.equal(fromText.id, fromEl.id);
    same(fromText.text, fromEl.text);
    const out = parse(fromText.text) as Element;
    assert.equal(out.attrs.xmlns, "jabber:client");
    assert.equal(out.attrs.from, "alice@localhost/phone");
    assert.equal(out.attrs.to, "bob@localhost");
    assert.equal(out.getChild("stanza-id", "urn:xmpp:sid:0"), undefined, "the server's id is not in the archived text");
    assert.deepEqual(renderArchived(entry(serialize(el))), fromText, "renderArchived takes the text path for a string");
  }
});

test("text of another shape: not marked (null), or parsed (the same result as the element)", { timeout: 5000 }, () => {
  assert.equal(renderText(`<message type="chat"><body>x</body></message>`, "a@l", "b@l"), null, "no stanza-id: not archived");
  assert.equal(renderText(`<message type="chat"/>`, "a@l", "b@l"), null);
  // A stanza-id that is not the server's last child: left to the parser, which finds none as the last child.
  const odd = `<message><body>x</body><stanza-id xmlns="urn:xmpp:sid:0" by="b@l" id="1"/><x/></message>`;
  assert.equal(renderText(odd, "a@l", "b@l"), undefined);
  assert.equal(renderArchived(entry(odd)), null);
  const el = marked(`<message type="chat"><body>x</body></message>`);
  el.children[el.children.length - 1] = new Element("stanza-id", { xmlns: "urn:xmpp:sid:0", by: "b&c@localhost", id: "i1" });
  const text = serialize(el);
  assert.equal(renderText(text, "a@l", "b@l"), undefined, "an escaped value: parsed instead");
  assert.equal(renderArchived(entry(text))!.id, "i1");
});
