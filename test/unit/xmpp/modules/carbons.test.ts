import { test } from "node:test";
import assert from "node:assert/strict";
import { parse, type Element } from "ltx";
import { eligible } from "../../../../src/xmpp/modules/carbons.js";
import { withoutPrivate } from "../../../../src/xmpp/outbound.js";

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
