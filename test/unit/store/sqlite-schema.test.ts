import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { migrate, SCHEMA_VERSIONS_ERA } from "../../../src/store/sqlite-schema.js";
import { SqliteStore } from "../../../src/store/sqlite-store.js";
import { SqliteXmppStore } from "../../../src/store/sqlite-xmpp-store.js";
import { deriveCredentials } from "../../../src/store/scram.js";

const versions = (db: Database.Database) =>
  Object.fromEntries(db.prepare<[], { component: string; version: number }>("SELECT component, version FROM schema_versions ORDER BY component").all().map((r) => [r.component, r.version]));
const tables = (db: Database.Database) => db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger') ORDER BY name").all().map((r) => r.name);

function withDir(fn: (dir: string) => Promise<void> | void): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), "switchboard-schema-"));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test("migrate applies a component's steps in order once, and only the new ones when steps are appended", { timeout: 10_000 }, () => {
  const db = new Database(":memory:");
  migrate(db, "toy", ["CREATE TABLE a (x)", "INSERT INTO a VALUES (1)"]);
  assert.deepEqual(versions(db), { toy: 2 });
  assert.equal(db.pragma("user_version", { simple: true }), SCHEMA_VERSIONS_ERA);
  // Again: nothing runs (the CREATE would fail, the INSERT would add a row).
  migrate(db, "toy", ["CREATE TABLE a (x)", "INSERT INTO a VALUES (1)"]);
  migrate(db, "toy", ["CREATE TABLE a (x)", "INSERT INTO a VALUES (1)", "INSERT INTO a VALUES (2)"]);
  assert.deepEqual(db.prepare("SELECT x FROM a ORDER BY x").all(), [{ x: 1 }, { x: 2 }]);
  assert.deepEqual(versions(db), { toy: 3 });
  db.close();
});

test("components keep their own versions", { timeout: 10_000 }, () => {
  const db = new Database(":memory:");
  migrate(db, "one", ["CREATE TABLE one (x)"]);
  migrate(db, "two", ["CREATE TABLE two (x)", "CREATE TABLE two_more (x)"]);
  migrate(db, "one", ["CREATE TABLE one (x)", "CREATE TABLE one_more (x)"]);
  assert.deepEqual(versions(db), { one: 2, two: 2 });
  db.close();
});

test("a step that fails rolls the whole call back: earlier steps and the version too", { timeout: 10_000 }, () => {
  const db = new Database(":memory:");
  migrate(db, "toy", ["CREATE TABLE a (x)"]);
  assert.throws(() => migrate(db, "toy", ["CREATE TABLE a (x)", "CREATE TABLE b (x)", "NOT SQL"]), /syntax error/);
  assert.deepEqual(versions(db), { toy: 1 });
  assert.deepEqual(tables(db), ["a", "schema_versions"]);
  db.close();
});

test("a schema newer than this server is refused, naming the component", { timeout: 10_000 }, () => {
  const db = new Database(":memory:");
  migrate(db, "toy", ["CREATE TABLE a (x)", "CREATE TABLE b (x)"]);
  assert.throws(() => migrate(db, "toy", ["CREATE TABLE a (x)"]), /schema of toy is at version 2, newer than this server \(1\)/);
  db.pragma(`user_version = ${SCHEMA_VERSIONS_ERA + 1}`);
  assert.throws(() => migrate(db, "other", []), /user_version 4 is newer/);
  db.close();
});

/** src/store/sqlite-store.ts's single list of steps before schema_versions (user_version 1: users; 2: the XMPP tables). */
const OLD_MIGRATIONS = [
  `CREATE TABLE users (
     username TEXT PRIMARY KEY,
     salt BLOB NOT NULL,
     iterations INTEGER NOT NULL,
     sha1_stored BLOB NOT NULL,
     sha1_server BLOB NOT NULL,
     sha256_stored BLOB NOT NULL,
     sha256_server BLOB NOT NULL,
     created_at INTEGER NOT NULL
   ) WITHOUT ROWID`,
  `CREATE TABLE roster (
     username TEXT NOT NULL,
     jid TEXT NOT NULL,
     name TEXT NOT NULL DEFAULT '',
     subscription TEXT NOT NULL DEFAULT 'none',
     ask INTEGER NOT NULL DEFAULT 0,
     groups TEXT NOT NULL DEFAULT '[]',
     PRIMARY KEY (username, jid)
   ) WITHOUT ROWID;
   CREATE TABLE subscription_requests (
     username TEXT NOT NULL,
     jid TEXT NOT NULL,
     stanza TEXT NOT NULL,
     PRIMARY KEY (username, jid)
   ) WITHOUT ROWID;
   CREATE TABLE offline (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     username TEXT NOT NULL,
     stanza TEXT NOT NULL,
     created_at INTEGER NOT NULL
   );
   CREATE INDEX offline_by_user ON offline (username, id);
   CREATE TRIGGER users_delete_xmpp AFTER DELETE ON users BEGIN
     DELETE FROM roster WHERE username = old.username;
     DELETE FROM subscription_requests WHERE username = old.username;
     DELETE FROM offline WHERE username = old.username;
   END`,
];

/** A database file as the code before schema_versions left it at `userVersion`, with alice (and her XMPP rows at 2). */
async function oldDatabase(path: string, userVersion: 1 | 2) {
  const alice = await deriveCredentials("alice-pw", 4096);
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  for (const step of OLD_MIGRATIONS.slice(0, userVersion)) db.exec(step);
  db.pragma(`user_version = ${userVersion}`);
  db.prepare("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?)").run("alice", alice.salt, alice.iterations, alice.sha1.storedKey, alice.sha1.serverKey, alice.sha256.storedKey, alice.sha256.serverKey, 1);
  if (userVersion === 2) {
    db.prepare("INSERT INTO roster VALUES (?, ?, ?, ?, ?, ?)").run("alice", "bob@localhost", "Bob", "both", 0, '["Friends"]');
    db.prepare("INSERT INTO subscription_requests VALUES (?, ?, ?)").run("alice", "carol@localhost", "<presence type='subscribe'/>");
    db.prepare("INSERT INTO offline (username, stanza, created_at) VALUES (?, ?, ?)").run("alice", "<message><body>while away</body></message>", 1);
  }
  db.close();
  return alice;
}

test(
  "a database made before schema_versions (user_version 2) opens with its data intact, and deleting the account still removes its XMPP rows",
  { timeout: 10_000 },
  withDir(async (dir) => {
    const path = join(dir, "db.sqlite");
    const alice = await oldDatabase(path, 2);
    const store = new SqliteStore(path);
    const xmpp = new SqliteXmppStore(store.db);
    try {
      assert.deepEqual(versions(store.db), { accounts: 1, xmpp: 2 }, "both stores' history recorded, no step re-run; the later step (msgkey) applied");
      assert.equal(store.db.pragma("user_version", { simple: true }), SCHEMA_VERSIONS_ERA);
      assert.deepEqual(await store.credentials("alice"), alice);
      assert.deepEqual(await xmpp.roster("alice"), [{ jid: "bob@localhost", name: "Bob", subscription: "both", ask: false, groups: ["Friends"] }]);
      assert.deepEqual(await xmpp.subscriptionRequests("alice"), [{ from: "carol@localhost", stanza: "<presence type='subscribe'/>" }]);
      assert.equal(await xmpp.offlineCount("alice"), 1);
      assert.equal(await store.deleteUser("alice"), true);
      assert.deepEqual([await xmpp.rosterSize("alice"), await xmpp.subscriptionRequestCount("alice"), await xmpp.offlineCount("alice")], [0, 0, 0]);
    } finally {
      await store.close();
    }
  }),
);

test(
  "a database at user_version 1 (accounts only) keeps its users and gets the XMPP tables from the XMPP store",
  { timeout: 10_000 },
  withDir(async (dir) => {
    const path = join(dir, "db.sqlite");
    const alice = await oldDatabase(path, 1);
    const store = new SqliteStore(path);
    try {
      assert.deepEqual(versions(store.db), { accounts: 1 });
      assert.deepEqual(await store.credentials("alice"), alice);
      const xmpp = new SqliteXmppStore(store.db);
      assert.deepEqual(versions(store.db), { accounts: 1, xmpp: 2 });
      await xmpp.putRosterItem("alice", { jid: "bob@localhost", name: "", subscription: "to", ask: false, groups: [] });
      assert.equal(await xmpp.rosterSize("alice"), 1);
    } finally {
      await store.close();
    }
  }),
);
