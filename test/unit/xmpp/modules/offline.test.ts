import { test } from "node:test";
import assert from "node:assert/strict";
import { parse, type Element } from "ltx";
import { storeUnacked } from "../../../../src/xmpp/modules/offline.js";
import type { XmppContext } from "../../../../src/xmpp/context.js";
import { SqliteStore } from "../../../../src/store/sqlite-store.js";
import { OfflineWriter } from "../../../../src/store/offline-writer.js";
import { deriveCredentials } from "../../../../src/store/scram.js";
import { silentLogger } from "../../../../src/log/logger.js";
import type { Envelope } from "../../../../src/envelope/envelope.js";

// What a session that ends with stanzas unacknowledged (XEP-0198) leaves in offline storage (a real
// SQLite store behind the offline writer), and what is bounced to its sender when storing fails.
async function context(cap = 100) {
  const store = new SqliteStore(":memory:");
  await store.putUser("alice", await deriveCredentials("pw", 4096));
  const bounced: [Envelope, string][] = [];
  const x = {
    config: { domain: "localhost", xmpp: { offlineQueueMax: cap } },
    store: store.xmpp,
    offline: new OfflineWriter(store.xmpp, { cap, maxQueued: 100, maxBatch: 10 }, silentLogger()),
    core: { bounce: (env: Envelope, code: string) => void bounced.push([env, code]) },
    metrics: { offlineStored: 0 },
    log: silentLogger(),
  } as unknown as XmppContext;
  return { x, store, bounced };
}
const m = (xml: string) => parse(xml) as Element;

test("unacknowledged chat and normal messages are stored with <delay/>; presence, headlines and carbon copies are not", { timeout: 5_000 }, async () => {
  const { x, store } = await context();
  assert.equal(storeUnacked(x, "alice", m("<message type='chat' from='bob@localhost/b' to='alice@localhost/p'><body>1</body></message>")), true);
  assert.equal(storeUnacked(x, "alice", m("<message from='bob@localhost/b' to='alice@localhost/p'><body>2</body></message>")), true);
  assert.equal(storeUnacked(x, "alice", m("<message type='headline'><body>3</body></message>")), false);
  assert.equal(storeUnacked(x, "alice", m("<presence from='bob@localhost/b'/>")), false);
  // XEP-0280 copies: the original went to another resource (and is acknowledged or stored there).
  for (const dir of ["received", "sent"]) {
    const carbon = `<message from='alice@localhost' to='alice@localhost/p' type='chat'><${dir} xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat' from='bob@localhost/b' to='alice@localhost/d'><body>4</body></message></forwarded></${dir}></message>`;
    assert.equal(storeUnacked(x, "alice", m(carbon)), false, dir);
  }
  await x.offline.flushed();
  const stored = await store.xmpp.takeOffline("alice");
  assert.equal(stored.length, 2);
  assert.ok(stored.every((s) => s.includes("<delay xmlns=\"urn:xmpp:delay\"")));
  assert.equal(x.metrics.offlineStored, 2);
});

test("what the store refuses (the user's queue full) goes back to its sender with an error, quoting it", { timeout: 5_000 }, async () => {
  const { x, bounced } = await context(1);
  storeUnacked(x, "alice", m("<message type='chat' id='one' from='bob@localhost/b' to='alice@localhost/p'><body>1</body></message>"));
  storeUnacked(x, "alice", m("<message type='chat' id='two' from='bob@localhost/b' to='alice@localhost/p'><body>2</body></message>"));
  await x.offline.flushed();
  assert.equal(x.metrics.offlineStored, 1);
  assert.equal(bounced.length, 1);
  const [env, code] = bounced[0];
  assert.equal(code, "quota-exceeded");
  assert.deepEqual([env.from, env.to, env.id], ["bob@localhost/b", "alice@localhost/p", "two"]);
});
