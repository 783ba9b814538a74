import { test } from "node:test";
import assert from "node:assert/strict";
import { parse, type Element } from "ltx";
import { eligible } from "../../../../src/xmpp/modules/carbons.js";
import { toWire, withoutPrivate } from "../../../../src/xmpp/outbound.js";
import { Envelope, Flag } from "../../../../src/envelope/envelope.js";

// XEP-0280 §6's eligibility and the removal of <private/>, on parsed stanzas.
const m = (xml: string) => parse(xml) as Element;

test("eligible: chat (with or without body), normal with a body; not the rest", { timeout: 5_000 }, () => {
  assert.equal(eligible(m("<message type='chat'><body>x</body></message>")), true);
  assert.equal(eligible(m("<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>")), true);
  assert.equal(eligible(m("<message><body>x</body></message>")), true);
  assert.equal(eligible(m("<message type='normal'><body>x</body></message>")), true);
  assert.equal(eligible(m("<message type='normal'><x xmlns='urn:example'/></message>")), false);
  assert.equal(eligible(m("<message type='groupchat'><body>x</body></message>")), false);
  assert.equal(eligible(m("<message type='headline'><body>x</body></message>")), false);
  assert.equal(eligible(m("<message type='error'><body>x</body></message>")), false);
  assert.equal(eligible(m("<message type='chat'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>")), false);
  assert.equal(eligible(m("<message type='chat'><body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>")), false);
  assert.equal(eligible(m("<message type='chat'><no-store xmlns='urn:xmpp:hints'/><body>x</body></message>")), true);
  // A carbon, or a forged one a contact sends: never copied again.
  assert.equal(eligible(m("<message type='chat'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'/></received></message>")), false);
});

test("withoutPrivate: null when there is none; else a copy without it, the original untouched", { timeout: 5_000 }, () => {
  assert.equal(withoutPrivate(m("<message type='chat'><body>x</body></message>")), null);
  assert.equal(withoutPrivate(m("<message type='chat'><body>x</body><private xmlns='urn:example'/></message>")), null);
  const orig = m("<message type='chat' id='1'><private xmlns='urn:xmpp:carbons:2'/><body>x</body></message>");
  const out = withoutPrivate(orig)!;
  assert.equal(out.toString(), `<message type="chat" id="1"><body>x</body></message>`);
  assert.equal(orig.children.length, 2);
});

test("a copy is written as <received/> or <sent/> from the bare JID, the original forwarded in jabber:client; not to a session without carbons", { timeout: 5_000 }, () => {
  const orig = m("<message type='chat' id='7'><body>a &amp; b</body></message>");
  const env = Envelope.message({ from: "bob@x/b", to: "alice@x/phone", protocol: "xmpp", payload: orig, flags: Flag.Copies | Flag.Offline });
  const desk = { address: "alice@x/d'sk", bare: "alice@x", rosterRequested: false, blocklistRequested: false, wantsCopies: true };
  assert.equal(
    toWire(desk, env.copy(Flag.Copy)),
    `<message from="alice@x" to="alice@x/d&apos;sk" type="chat"><received xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0">` +
      `<message type="chat" id="7" xmlns="jabber:client" from="bob@x/b" to="alice@x/phone"><body>a &amp; b</body></message></forwarded></received></message>`,
  );
  assert.match(toWire(desk, env.copy(Flag.SentCopy))!, /^<message from="alice@x" to="alice@x\/d&apos;sk" type="chat"><sent xmlns="urn:xmpp:carbons:2">/);
  assert.equal(toWire({ ...desk, wantsCopies: false }, env.copy(Flag.Copy)), null);
  // The original itself is written as it is, to whoever it went to.
  assert.equal(toWire({ ...desk, address: "alice@x/phone" }, env), `<message type="chat" id="7" from="bob@x/b" to="alice@x/phone"><body>a &amp; b</body></message>`);
  assert.equal(orig.attrs.xmlns, undefined, "the shared original is untouched");
});
