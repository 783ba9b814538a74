import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Database from "better-sqlite3";
import { SqliteStore } from "../../../src/store/sqlite-store.js";
import { SCHEMA_VERSIONS_ERA } from "../../../src/store/sqlite-schema.js";
import { deriveCredentials } from "../../../src/store/scram.js";

// The accounts store's schema. Its reads and writes are tested in test/unit/auth/authenticator.test.ts.

const names = (db: Database.Database) => db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all().map((r) => r.name);

test("a new file gets the accounts' tables only, at version 1 of component accounts", { timeout: 10_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-accounts-"));
  const path = join(dir, "sub", "db.sqlite");
  try {
    const store = new SqliteStore(path);
    assert.deepEqual(names(store.db), ["schema_versions", "users"], "no XMPP tables or trigger: those are the XMPP store's");
    assert.deepEqual(store.db.prepare("SELECT component, version FROM schema_versions").all(), [{ component: "accounts", version: 1 }]);
    assert.equal(store.db.pragma("user_version", { simple: true }), SCHEMA_VERSIONS_ERA, "a server from before refuses the file");
    await store.putUser("alice", await deriveCredentials("pw", 4096));
    await store.close();
    // Opened again: nothing re-applied, the data is there.
    const again = new SqliteStore(path);
    assert.deepEqual(await again.listUsers(), ["alice"]);
    assert.deepEqual(again.db.prepare("SELECT component, version FROM schema_versions").all(), [{ component: "accounts", version: 1 }]);
    await again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("deleting an account where the XMPP store never ran needs no XMPP tables", { timeout: 10_000 }, async () => {
  const store = new SqliteStore(":memory:");
  await store.putUser("alice", await deriveCredentials("pw", 4096));
  assert.equal(await store.deleteUser("alice"), true);
  await store.close();
});
