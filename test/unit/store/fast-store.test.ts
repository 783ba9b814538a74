import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { SqliteStore } from "../../../src/store/sqlite-store.js";
import { PgStore } from "../../../src/store/postgres-store.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { silentLogger } from "../../../src/log/logger.js";
import type { Storage } from "../../../src/store/store.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";

// XEP-0484 FAST tokens (FastStore, component "fast") on both backends: the same checks.

const h = (n: number) => Buffer.alloc(32, n);
const slots = async (store: Storage, user: string, agent: string) =>
  (await store.fast.fastTokens(user, agent)).map((t) => `${t.slot} ${t.hash[0]} ${t.count}`).sort();

async function checks(store: Storage): Promise<void> {
  const creds = await deriveCredentials("pw", 4096);
  await store.putUser("alice", creds);
  await store.putUser("bob", creds);
  const f = store.fast;
  const later = Date.now() + 3600_000;

  assert.deepEqual(await f.fastTokens("alice", "ua1"), []);
  await f.issueFastToken("alice", "ua1", { mechanism: "HT-SHA-256-NONE", hash: h(1), expiresAt: later }, 10);
  const [t] = await f.fastTokens("alice", "ua1");
  assert.deepEqual({ ...t, hash: t.hash[0] }, { slot: "new", mechanism: "HT-SHA-256-NONE", hash: 1, expiresAt: later, count: 0 });
  assert.deepEqual(await f.fastTokens("alice", "ua2"), [], "bound to the client");
  assert.deepEqual(await f.fastTokens("bob", "ua1"), [], "bound to the account");

  // Used: "new" becomes "current"; a successor goes to "new"; an unused successor is replaced by the next.
  assert.equal(await f.useFastToken("alice", "ua1", "new", 0), true);
  assert.deepEqual(await slots(store, "alice", "ua1"), ["current 1 0"]);
  await f.issueFastToken("alice", "ua1", { mechanism: "HT-SHA-256-NONE", hash: h(2), expiresAt: later + 1 }, 10);
  await f.issueFastToken("alice", "ua1", { mechanism: "HT-SHA-256-NONE", hash: h(3), expiresAt: later + 2 }, 10);
  assert.deepEqual(await slots(store, "alice", "ua1"), ["current 1 0", "new 3 0"]);
  assert.equal(await f.useFastToken("alice", "ua1", "current", 0), true, "the older one still works before the new one is used");
  assert.deepEqual(await slots(store, "alice", "ua1"), ["current 1 0", "new 3 0"]);
  assert.equal(await f.useFastToken("alice", "ua1", "new", 0), true);
  assert.deepEqual(await slots(store, "alice", "ua1"), ["current 3 0"], "the older one goes once the new one is used");

  // Replay counts: strictly increasing per token.
  assert.equal(await f.useFastToken("alice", "ua1", "current", 5), true);
  assert.equal(await f.useFastToken("alice", "ua1", "current", 5), false);
  assert.equal(await f.useFastToken("alice", "ua1", "current", 3), false);
  assert.equal(await f.useFastToken("alice", "ua1", "current", 6), true);
  assert.deepEqual(await slots(store, "alice", "ua1"), ["current 3 6"]);

  // Expired tokens go at the next issue; past maxClients the clients whose tokens expire first go.
  await f.issueFastToken("alice", "old", { mechanism: "HT-SHA-256-NONE", hash: h(4), expiresAt: Date.now() - 1 }, 10);
  await f.issueFastToken("alice", "ua2", { mechanism: "HT-SHA-256-NONE", hash: h(5), expiresAt: later + 10 }, 10);
  assert.deepEqual(await f.fastTokens("alice", "old"), []);
  await f.issueFastToken("alice", "ua3", { mechanism: "HT-SHA-256-NONE", hash: h(6), expiresAt: later + 20 }, 2);
  assert.deepEqual(await f.fastTokens("alice", "ua1"), [], "the client expiring first lost its token");
  assert.equal((await f.fastTokens("alice", "ua2")).length, 1);
  assert.equal((await f.fastTokens("alice", "ua3")).length, 1);

  // Revocation: one client, then all; a new password; a deleted account.
  await f.revokeFastTokens("alice", "ua2");
  assert.deepEqual(await f.fastTokens("alice", "ua2"), []);
  assert.equal((await f.fastTokens("alice", "ua3")).length, 1);
  await f.issueFastToken("bob", "b", { mechanism: "HT-SHA-256-NONE", hash: h(7), expiresAt: later }, 10);
  await f.revokeFastTokens("alice");
  assert.deepEqual(await f.fastTokens("alice", "ua3"), []);
  assert.equal((await f.fastTokens("bob", "b")).length, 1, "only alice's");
  await store.putUser("bob", creds);
  assert.equal((await f.fastTokens("bob", "b")).length, 1, "the same password again (an import, a no-op update) keeps them");
  await store.putUser("bob", await deriveCredentials("new-pw", 4096));
  assert.deepEqual(await f.fastTokens("bob", "b"), [], "a new password revokes every token");
  await f.issueFastToken("bob", "b", { mechanism: "HT-SHA-256-NONE", hash: h(8), expiresAt: later }, 10);
  assert.equal(await store.deleteUser("bob"), true);
  assert.deepEqual(await f.fastTokens("bob", "b"), [], "gone with the account");
}

test("FastStore on SQLite: slots, rotation, replay counts, caps, revocation by client, account, password and deletion", { timeout: 10_000 }, async () => {
  const store = new SqliteStore(":memory:");
  try {
    await checks(store);
    assert.deepEqual(store.db.prepare("SELECT version FROM schema_versions WHERE component = 'fast'").all(), [{ version: 1 }]);
  } finally {
    await store.close();
  }
});

describe("FastStore on PostgreSQL", { skip: HAVE_POSTGRES ?? false }, () => {
  let server: PostgresServer;
  before(async () => void (server = await startPostgres()));
  after(() => server?.stop());

  test("the same checks; two uses with the same count at once: one wins", { timeout: 30_000 }, async () => {
    const store = await PgStore.open(await server.createDatabase("fast"), silentLogger());
    try {
      await checks(store);
      await store.putUser("carol", await deriveCredentials("pw", 4096));
      await store.fast.issueFastToken("carol", "c", { mechanism: "HT-SHA-256-NONE", hash: h(9), expiresAt: Date.now() + 60_000 }, 10);
      const r = await Promise.all([store.fast.useFastToken("carol", "c", "new", 7), store.fast.useFastToken("carol", "c", "new", 7)]);
      assert.deepEqual(r.sort(), [false, true]);
    } finally {
      await store.close();
    }
  });
});
