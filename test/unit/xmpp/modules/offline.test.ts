import { test } from "node:test";
import assert from "node:assert/strict";
import { parse, type Element } from "ltx";
import { storeUnacked } from "../../../../src/xmpp/modules/offline.js";
import type { XmppContext } from "../../../../src/xmpp/context.js";

// What a session that ends with stanzas unacknowledged (XEP-0198) leaves in offline storage,
// against a store that only records what it is given.
function context() {
  const pushed: string[] = [];
  const x = {
    config: { domain: "localhost", xmpp: { offlineQueueMax: 100 } },
    store: { pushOffline: (_user: string, stanza: string) => (pushed.push(stanza), true) },
    metrics: { offlineStored: 0 },
    log: { warn: () => {} },
  } as unknown as XmppContext;
  return { x, pushed };
}
const m = (xml: string) => parse(xml) as Element;

test("unacknowledged chat and normal messages are stored with <delay/>; presence, headlines and carbon copies are not", { timeout: 5_000 }, () => {
  const { x, pushed } = context();
  assert.equal(storeUnacked(x, "alice", m("<message type='chat' from='bob@localhost/b' to='alice@localhost/p'><body>1</body></message>")), true);
  assert.equal(storeUnacked(x, "alice", m("<message from='bob@localhost/b' to='alice@localhost/p'><body>2</body></message>")), true);
  assert.equal(storeUnacked(x, "alice", m("<message type='headline'><body>3</body></message>")), false);
  assert.equal(storeUnacked(x, "alice", m("<presence from='bob@localhost/b'/>")), false);
  // XEP-0280 copies: the original went to another resource (and is acknowledged or stored there).
  for (const dir of ["received", "sent"]) {
    const carbon = `<message from='alice@localhost' to='alice@localhost/p' type='chat'><${dir} xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat' from='bob@localhost/b' to='alice@localhost/d'><body>4</body></message></forwarded></${dir}></message>`;
    assert.equal(storeUnacked(x, "alice", m(carbon)), false, dir);
  }
  assert.equal(pushed.length, 2);
  assert.ok(pushed.every((s) => s.includes("<delay xmlns=\"urn:xmpp:delay\"")));
  assert.equal(x.metrics.offlineStored, 2);
});
