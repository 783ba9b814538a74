import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { SqliteStore } from "../../../src/store/sqlite-store.js";
import { PgStore } from "../../../src/store/postgres-store.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { silentLogger } from "../../../src/log/logger.js";
import type { Storage } from "../../../src/store/store.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";

// The XEP-0191 block list and the XEP-0054 vCard (ProfileStore) on both backends: the same checks.

async function checks(store: Storage): Promise<void> {
  const creds = await deriveCredentials("pw", 4096);
  await store.putUser("alice", creds);
  await store.putUser("bob", creds);
  const p = store.profile;

  assert.deepEqual(await p.blocklist("alice"), []);
  assert.equal(await p.block("alice", ["bob@localhost", "spam.example", "bob@localhost"], 3), true, "a JID named twice counts once");
  assert.deepEqual((await p.blocklist("alice")).sort(), ["bob@localhost", "spam.example"]);
  assert.equal(await p.block("alice", ["bob@localhost", "x@localhost/r"], 3), true, "one already there, one new: 3 of 3");
  assert.equal(await p.block("alice", ["y@localhost"], 3), false, "past the cap");
  assert.deepEqual((await p.blocklist("alice")).sort(), ["bob@localhost", "spam.example", "x@localhost/r"], "nothing added by the refused call");
  assert.deepEqual(await p.blocklist("bob"), [], "per user");

  // Who blocked bob by name: his bare JID or one of his full JIDs, not a JID that only begins like his.
  await p.block("bob", ["bob@localhost/self", "bob@localhostx", "bob@localhost2/r"], 10);
  assert.deepEqual((await p.blockers("bob@localhost")).map((b) => `${b.user} ${b.jid}`).sort(), ["alice bob@localhost", "bob bob@localhost/self"]);
  assert.deepEqual(await p.blockers("x@localhost"), [{ user: "alice", jid: "x@localhost/r" }], "a full JID of x");
  const both = await p.blockingAtLogin("alice", "bob@localhost");
  assert.deepEqual([both.items.sort(), both.blockers.map((b) => `${b.user} ${b.jid}`).sort()], [["bob@localhost", "spam.example", "x@localhost/r"], ["alice bob@localhost", "bob bob@localhost/self"]], "one round trip, both");
  await p.unblock("bob", null);
  assert.deepEqual(await p.unblock("alice", ["spam.example", "never@localhost"]), ["spam.example"], "only what was there");
  assert.deepEqual((await p.unblock("alice", null)).sort(), ["bob@localhost", "x@localhost/r"], "all");
  assert.deepEqual(await p.blocklist("alice"), []);

  assert.equal(await p.vcard("alice"), null);
  await p.setVcard("alice", "<vCard xmlns='vcard-temp'><FN>A</FN></vCard>");
  await p.setVcard("alice", "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>");
  assert.equal(await p.vcard("alice"), "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>", "replaced");
  await p.setVcard("bob", "<vCard xmlns='vcard-temp'><FN>Bob</FN></vCard>");
  await p.setVcard("bob", null);
  assert.equal(await p.vcard("bob"), null, "removed");

  // Gone with the account.
  await p.block("alice", ["bob@localhost"], 10);
  assert.equal(await store.deleteUser("alice"), true);
  assert.deepEqual(await p.blocklist("alice"), []);
  assert.equal(await p.vcard("alice"), null);
}

test("ProfileStore on SQLite: block list with its cap, unblock some or all, vCard set/replace/remove, gone with the account", { timeout: 10_000 }, async () => {
  const store = new SqliteStore(":memory:");
  try {
    await checks(store);
    const v = store.db.prepare("SELECT component, version FROM schema_versions WHERE component IN ('blocking', 'vcard') ORDER BY 1").all();
    assert.deepEqual(v, [{ component: "blocking", version: 1 }, { component: "vcard", version: 1 }]);
  } finally {
    await store.close();
  }
});

describe("ProfileStore on PostgreSQL", { skip: HAVE_POSTGRES ?? false }, () => {
  let server: PostgresServer;
  before(async () => void (server = await startPostgres()));
  after(() => server?.stop());

  test("the same checks", { timeout: 30_000 }, async () => {
    const store = await PgStore.open(await server.createDatabase("profile"), silentLogger());
    try {
      await checks(store);
      // Two blocks at once that would together pass the cap: one of them is refused.
      const creds = await deriveCredentials("pw", 4096);
      await store.putUser("carol", creds);
      const r = await Promise.all([store.profile.block("carol", ["a@x", "b@x"], 3), store.profile.block("carol", ["c@x", "d@x"], 3)]);
      assert.deepEqual(r.sort(), [false, true]);
      assert.equal((await store.profile.blocklist("carol")).length, 2);
    } finally {
      await store.close();
    }
  });
});
