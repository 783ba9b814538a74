import { test } from "node:test";
import assert from "node:assert/strict";
import { Element } from "ltx";
import { Envelope } from "../../../../src/envelope/envelope.js";
import { serialize, serializeWith } from "../../../../src/xmpp/stanza.js";
import { toWire, type Recipient } from "../../../../src/xmpp/outbound.js";
import { serializedOnce } from "../../../../src/xmpp/muc/broadcast.js";

const recipient = (address: string): Recipient => ({ address, bare: address.split("/")[0], rosterRequested: false, blocklistRequested: false, wantsCopies: false });

test("a room's broadcast is serialized once: each occupant gets that text with its own from and to, as serializeWith writes it", () => {
  const m = new Element("message", { type: "groupchat", id: `q"<1` });
  m.c("body").t(`a & b to="x" from="y" <c>`);
  m.c("occupant-id", { xmlns: "urn:xmpp:occupant-id:0", id: "abc" });
  const payload = serializedOnce(m);
  assert.equal(payload.text, serialize(m));
  const from = "room@conference.localhost/n'ick&";
  const env = Envelope.message({ from, to: "", protocol: "xmpp", payload });
  for (const to of ["a@localhost/r", `b@localhost/"odd"<r>`]) {
    const one = env.readdressed(to);
    assert.notEqual(one.wireText, null, "passed on as the text, unread");
    assert.equal(toWire(recipient(to), one), serializeWith(m, { from, to }));
  }
  // Whoever needs the element gets the room's own, without a parse.
  assert.equal(env.payload, m);
  assert.equal(env.wireText, null);
});
