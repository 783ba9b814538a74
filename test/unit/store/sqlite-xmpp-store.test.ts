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

test("it makes its tables, index and trigger in the accounts file, at version 2 of component xmpp; opened again, nothing re-runs", { timeout: 10_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-xmpp-store-"));
  const path = join(dir, "db.sqlite");
  try {
    const store = new SqliteStore(path);
    await store.putUser("alice", await deriveCredentials("pw", 4096));
    assert.deepEqual(await new SqliteXmppStore(store.db).pushOffline([{ user: "alice", stanza: "<message/>" }], 10), ["stored"]);
    assert.deepEqual(names(store.db), ["offline", "offline_by_user", "roster", "schema_versions", "subscription_requests", "users", "users_delete_xmpp"]);
    assert.deepEqual(versions(store.db), [
      { component: "accounts", version: 1 },
      { component: "xmpp", version: 2 },
    ]);
    await store.close();
    const again = new SqliteStore(path);
    assert.equal(await new SqliteXmppStore(again.db).offlineCount("alice"), 1);
    await again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("without the accounts schema it refuses to start, naming the missing table", { timeout: 10_000 }, () => {
  const db = new Database(":memory:");
  assert.throws(() => new SqliteXmppStore(db), /users/);
  assert.deepEqual(names(db), [], "rolled back whole: no half-made schema");
  assert.equal(db.pragma("user_version", { simple: true }), 0);
  db.close();
});
