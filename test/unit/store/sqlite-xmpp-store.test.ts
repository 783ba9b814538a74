import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { SqliteStore } from "../../../src/store/sqlite-store.js";
import { SqliteXmppStore } from "../../../src/store/sqlite-xmpp-store.js";
import { deriveCredentials } from "../../../src/store/scram.js";

// The XMPP store's schema: its own tables and the trigger that empties them with the account.

const names = (db: Database.Database) => db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all().map((r) => r.name);
const versions = (db: Database.Database) => db.prepare("SELECT component, version FROM schema_versions ORDER BY component").all();

test("it makes its tables, index and trigger in the accounts file, at version 1 of component xmpp; opened again, nothing re-runs", { timeout: 10_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-xmpp-store-"));
  const path = join(dir, "db.sqlite");
  try {
    const store = new SqliteStore(path);
    new SqliteXmppStore(store.db).pushOffline("alice", "<message/>", 10);
    assert.deepEqual(names(store.db), ["offline", "offline_by_user", "roster", "schema_versions", "subscription_requests", "users", "users_delete_xmpp"]);
    assert.deepEqual(versions(store.db), [
      { component: "accounts", version: 1 },
      { component: "xmpp", version: 1 },
    ]);
    store.close();
    const again = new SqliteStore(path);
    assert.equal(new SqliteXmppStore(again.db).offlineCount("alice"), 1);
    again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("deleting an account removes that user's XMPP rows and nobody else's", { timeout: 10_000 }, async () => {
  const store = new SqliteStore(":memory:");
  const xmpp = new SqliteXmppStore(store.db);
  const creds = await deriveCredentials("pw", 4096);
  for (const u of ["alice", "bob"]) {
    store.putUser(u, creds);
    xmpp.putRosterItem(u, { jid: "carol@localhost", name: "", subscription: "both", ask: false, groups: [] });
    xmpp.putSubscriptionRequest(u, "dave@localhost", "<presence type='subscribe'/>");
    xmpp.pushOffline(u, "<message/>", 10);
  }
  store.deleteUser("alice");
  assert.deepEqual([xmpp.rosterSize("alice"), xmpp.subscriptionRequestCount("alice"), xmpp.offlineCount("alice")], [0, 0, 0]);
  assert.deepEqual([xmpp.rosterSize("bob"), xmpp.subscriptionRequestCount("bob"), xmpp.offlineCount("bob")], [1, 1, 1]);
  // Changing a password is a replace of the users row, not a delete: the rows stay.
  store.putUser("bob", await deriveCredentials("new", 4096));
  assert.equal(xmpp.rosterSize("bob"), 1);
  store.close();
});

test("without the accounts schema it refuses to start, naming the missing table", { timeout: 10_000 }, () => {
  const db = new Database(":memory:");
  assert.throws(() => new SqliteXmppStore(db), /users/);
  assert.deepEqual(names(db), [], "rolled back whole: no half-made schema");
  assert.equal(db.pragma("user_version", { simple: true }), 0);
  db.close();
});
