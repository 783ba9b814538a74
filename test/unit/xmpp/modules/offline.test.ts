import { test } from "node:test";
import assert from "node:assert/strict";
import { parse, type Element } from "ltx";
import { unackedAgain } from "../../../../src/xmpp/modules/offline.js";
import { Flag, Kind } from "../../../../src/envelope/envelope.js";

// What a session that ends with stanzas unacknowledged (XEP-0198) sends through the core again.
const m = (xml: string) => parse(xml) as Element;
const STAMP = "2026-12-01T00:00:00.000Z";
const again = (xml: string) => unackedAgain("localhost", "alice@localhost/p", m(xml), STAMP);

test("unacknowledged chat and normal messages go again to the full JID they were written to, as RFC 6121 §8.5.3.2.1 has it for a gone resource", { timeout: 5_000 }, () => {
  for (const xml of ["<message type='chat' from='bob@localhost/b' to='alice@localhost/p'><body>1</body></message>", "<message from='bob@localhost/b' to='alice@localhost/p'><body>2</body></message>"]) {
    const env = again(xml)!;
    assert.equal(env.kind, Kind.Message);
    assert.equal(env.from, "bob@localhost/b");
    assert.equal(env.to, "alice@localhost/p");
    // Another available resource, else offline storage, else an error to the sender: never dropped.
    assert.equal(env.flags, Flag.BareFallback | Flag.Offline);
    const delay = (env.payload as Element).getChild("delay", "urn:xmpp:delay");
    assert.equal(delay?.attrs.stamp, STAMP, "the time it was first written rides along");
  }
  // One that already carries a delay (it came from offline storage) keeps it.
  const kept = again(`<message type='chat' from='bob@localhost/b'><body>3</body><delay xmlns='urn:xmpp:delay' stamp='2020-01-01T00:00:00Z'/></message>`)!;
  assert.equal((kept.payload as Element).getChildren("delay", "urn:xmpp:delay").length, 1);
  assert.equal((kept.payload as Element).getChild("delay", "urn:xmpp:delay")!.attrs.stamp, "2020-01-01T00:00:00Z");
});

test("presence, headlines and carbon copies are not sent again", { timeout: 5_000 }, () => {
  assert.equal(again("<message type='headline'><body>3</body></message>"), null);
  assert.equal(again("<presence from='bob@localhost/b'/>"), null);
  assert.equal(again("<iq type='get' id='x' from='bob@localhost/b'><query xmlns='urn:example'/></iq>"), null);
  // XEP-0280 copies: the original went to another resource (and is acknowledged or stored there).
  for (const dir of ["received", "sent"]) {
    const carbon = `<message from='alice@localhost' to='alice@localhost/p' type='chat'><${dir} xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat' from='bob@localhost/b' to='alice@localhost/d'><body>4</body></message></forwarded></${dir}></message>`;
    assert.equal(again(carbon), null, dir);
  }
});
