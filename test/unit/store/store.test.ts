import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Storage } from "../../../src/store/store.js";
import { SqliteStore } from "../../../src/store/sqlite-store.js";
import { PgStore } from "../../../src/store/postgres-store.js";
import { deriveCredentials, type Credentials } from "../../../src/store/scram.js";
import { OfflineWriter, type OfflineOutcome } from "../../../src/store/offline-writer.js";
import type { OfflineEntry, XmppStore } from "../../../src/store/xmpp-store.js";
import { silentLogger } from "../../../src/log/logger.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";

// The same tests on both backends: what the server relies on from a Storage, SQLite or PostgreSQL.

interface Backend {
  name: string;
  skip: string | null;
  setup(): Promise<void>;
  open(): Promise<Storage>;
  teardown(): Promise<void>;
}

let sqliteDir = "";
let pgServer: PostgresServer | null = null;
let dbs = 0;

const BACKENDS: Backend[] = [
  {
    name: "sqlite",
    skip: null,
    setup: async () => void (sqliteDir = mkdtempSync(join(tmpdir(), "switchboard-store-"))),
    open: async () => {
      const s = new SqliteStore(join(sqliteDir, `db${++dbs}.sqlite`));
      void s.xmpp;
      return s;
    },
    teardown: async () => rmSync(sqliteDir, { recursive: true, force: true }),
  },
  {
    name: "postgres",
    skip: HAVE_POSTGRES,
    setup: async () => void (pgServer = await startPostgres()),
    open: async () => PgStore.open(await pgServer!.createDatabase(`store${++dbs}`), silentLogger()),
    teardown: async () => pgServer?.stop(),
  },
];

let creds: Credentials;
let creds2: Credentials;
const item = (jid: string, subscription: "none" | "to" | "from" | "both" = "none", more: Partial<{ name: string; ask: boolean; groups: string[] }> = {}) => ({
  jid,
  name: more.name ?? "",
  subscription,
  ask: more.ask ?? false,
  groups: more.groups ?? [],
});

for (const b of BACKENDS) {
  describe(`store on ${b.name}`, { skip: b.skip ?? false }, () => {
    before(async () => {
      creds = await deriveCredentials("pw", 4096);
      creds2 = await deriveCredentials("other", 4096);
      await b.setup();
    });
    after(() => b.teardown());

    /** A fresh store for one test, closed after it. */
    const withStore = (fn: (s: Storage) => Promise<void>) => async () => {
      const s = await b.open();
      try {
        await fn(s);
      } finally {
        await s.close();
      }
    };

    test("accounts: put, read back, list in name order, replace, delete; many in one transaction", { timeout: 20_000 }, withStore(async (s) => {
      await s.putUser("bob", creds);
      await s.putUser("alice", creds);
      assert.deepEqual(await s.listUsers(), ["alice", "bob"]);
      assert.equal(await s.hasUser("alice"), true);
      assert.equal(await s.hasUser("carol"), false);
      assert.deepEqual(await s.credentials("alice"), creds);
      assert.equal(await s.credentials("carol"), undefined);
      await s.putUser("alice", creds2);
      assert.deepEqual(await s.credentials("alice"), creds2, "a new password replaces the keys");
      assert.equal(await s.deleteUser("alice"), true);
      assert.equal(await s.deleteUser("alice"), false);
      assert.deepEqual(await s.listUsers(), ["bob"]);
      assert.equal(await s.putUsers([["c1", creds], ["c2", creds], ["c1", creds2]]), 3, "an import counts its lines");
      assert.deepEqual(await s.listUsers(), ["bob", "c1", "c2"]);
      assert.deepEqual(await s.credentials("c1"), creds2, "the last line for a user wins");
      assert.equal(await s.putUsers([]), 0);
      await s.ping();
    }));

    test("accounts: addUser creates only a free name (XEP-0077), never replaces, one winner among concurrent ones", { timeout: 20_000 }, withStore(async (s) => {
      assert.equal(await s.addUser("dora", creds), true);
      assert.deepEqual(await s.credentials("dora"), creds);
      assert.equal(await s.addUser("dora", creds2), false, "a taken name");
      assert.deepEqual(await s.credentials("dora"), creds, "the first password stays");
      const race = await Promise.all([s.addUser("eve", creds), s.addUser("eve", creds2), s.addUser("eve", creds)]);
      assert.equal(race.filter((x) => x).length, 1, "exactly one of concurrent registrations wins");
      assert.equal(await s.deleteUser("dora"), true);
      assert.equal(await s.addUser("dora", creds2), true, "free again after removal");
    }));

    test("rosters: items with names, groups and ask; replace, remove, size, in JID order; per user", { timeout: 20_000 }, withStore(async (s) => {
      const x = s.xmpp;
      await x.putRosterItem("alice", item("carol@localhost", "both", { name: "Carol", groups: ["Friends", "Work"] }));
      await x.putRosterItem("alice", item("bob@localhost", "to", { ask: true }));
      await x.putRosterItem("dave", item("alice@localhost", "from"));
      assert.deepEqual(await x.roster("alice"), [item("bob@localhost", "to", { ask: true }), item("carol@localhost", "both", { name: "Carol", groups: ["Friends", "Work"] })]);
      assert.deepEqual(await x.rosterItem("alice", "carol@localhost"), item("carol@localhost", "both", { name: "Carol", groups: ["Friends", "Work"] }));
      assert.equal(await x.rosterItem("alice", "nobody@localhost"), undefined);
      assert.equal(await x.rosterSize("alice"), 2);
      await x.putRosterItem("alice", item("bob@localhost", "both"));
      assert.deepEqual(await x.rosterItem("alice", "bob@localhost"), item("bob@localhost", "both"));
      assert.equal(await x.rosterSize("alice"), 2);
      assert.equal(await x.removeRosterItem("alice", "bob@localhost"), true);
      assert.equal(await x.removeRosterItem("alice", "bob@localhost"), false);
      assert.equal(await x.rosterSize("alice"), 1);
      assert.deepEqual(await x.roster("dave"), [item("alice@localhost", "from")]);
      assert.deepEqual(await x.roster("nobody"), []);
    }));

    test("subscription requests: kept per user and contact, replaced, counted, removed", { timeout: 20_000 }, withStore(async (s) => {
      const x = s.xmpp;
      await x.putSubscriptionRequest("alice", "dave@localhost", "<presence type='subscribe' n='1'/>");
      await x.putSubscriptionRequest("alice", "bob@localhost", "<presence type='subscribe'/>");
      await x.putSubscriptionRequest("alice", "dave@localhost", "<presence type='subscribe' n='2'/>");
      assert.deepEqual(await x.subscriptionRequests("alice"), [
        { from: "bob@localhost", stanza: "<presence type='subscribe'/>" },
        { from: "dave@localhost", stanza: "<presence type='subscribe' n='2'/>" },
      ]);
      assert.equal(await x.hasSubscriptionRequest("alice", "bob@localhost"), true);
      assert.equal(await x.hasSubscriptionRequest("bob", "alice@localhost"), false);
      assert.equal(await x.subscriptionRequestCount("alice"), 2);
      assert.equal(await x.removeSubscriptionRequest("alice", "bob@localhost"), true);
      assert.equal(await x.removeSubscriptionRequest("alice", "bob@localhost"), false);
      assert.equal(await x.subscriptionRequestCount("alice"), 1);
    }));

    test("offline: a batch is stored in order up to each user's cap (its own entries counted), unknown users refused; taken oldest first", { timeout: 20_000 }, withStore(async (s) => {
      const x = s.xmpp;
      await s.putUser("alice", creds);
      await s.putUser("bob", creds);
      assert.deepEqual(await x.pushOffline([{ user: "alice", stanza: "<m n='1'/>" }], 3), ["stored"]);
      const batch: OfflineEntry[] = [
        { user: "alice", stanza: "<m n='2'/>" },
        { user: "bob", stanza: "<m n='b1'/>" },
        { user: "nobody", stanza: "<m/>" },
        { user: "alice", stanza: "<m n='3'/>" },
        { user: "alice", stanza: "<m n='4'/>" },
      ];
      assert.deepEqual(await x.pushOffline(batch, 3), ["stored", "stored", "unknown", "stored", "full"]);
      assert.deepEqual(await x.pushOffline([], 3), []);
      assert.equal(await x.offlineCount("alice"), 3);
      assert.deepEqual(await x.takeOffline("alice"), ["<m n='1'/>", "<m n='2'/>", "<m n='3'/>"]);
      assert.deepEqual(await x.takeOffline("alice"), []);
      assert.equal(await x.offlineCount("alice"), 0);
      assert.deepEqual(await x.pushOffline([{ user: "alice", stanza: "<m n='5'/>" }], 3), ["stored"], "room again once taken");
      assert.deepEqual(await x.takeOffline("bob"), ["<m n='b1'/>"]);
    }));

    test("offline: a resent copy of a message that waits for the user (same sender and id) is not stored again; anything else is", { timeout: 20_000 }, withStore(async (s) => {
      const x = s.xmpp;
      await s.putUser("alice", creds);
      await s.putUser("bob", creds);
      const k = (id: string) => `21:carol@localhost/phone${id}`;
      assert.deepEqual(await x.pushOffline([{ user: "alice", stanza: "<m n='1'/>", key: k("m1") }, { user: "alice", stanza: "<m n='2'/>" }], 10), ["stored", "stored"]);
      const batch: OfflineEntry[] = [
        { user: "alice", stanza: "<m n='1 again'/>", key: k("m1"), resent: true },
        // Not marked: ids are the client's, the same id twice outside a resumption is two messages.
        { user: "alice", stanza: "<m n='1 unmarked'/>", key: k("m1") },
        { user: "bob", stanza: "<m n='b1'/>", key: k("m1"), resent: true },
        { user: "alice", stanza: "<m n='3'/>", key: k("m3"), resent: true },
        // Stored earlier in this very batch.
        { user: "alice", stanza: "<m n='3 again'/>", key: k("m3"), resent: true },
        { user: "nobody", stanza: "<m/>", key: k("m1"), resent: true },
      ];
      assert.deepEqual(await x.pushOffline(batch, 10), ["duplicate", "stored", "stored", "stored", "duplicate", "unknown"]);
      assert.deepEqual(await x.takeOffline("alice"), ["<m n='1'/>", "<m n='2'/>", "<m n='1 unmarked'/>", "<m n='3'/>"]);
      // Taken: nothing waits, a resent copy now is stored (the session that took the first one drops it: Resent).
      assert.deepEqual(await x.pushOffline([{ user: "alice", stanza: "<m n='1 late'/>", key: k("m1"), resent: true }], 10), ["stored"]);
      assert.deepEqual(await x.takeOffline("bob"), ["<m n='b1'/>"]);
    }));

    test("deleting an account removes that user's roster, requests and offline messages, nobody else's; a new password keeps them", { timeout: 20_000 }, withStore(async (s) => {
      const x = s.xmpp;
      for (const u of ["alice", "bob"]) {
        await s.putUser(u, creds);
        await x.putRosterItem(u, item("carol@localhost", "both"));
        await x.putSubscriptionRequest(u, "dave@localhost", "<presence type='subscribe'/>");
        assert.deepEqual(await x.pushOffline([{ user: u, stanza: "<message/>" }], 10), ["stored"]);
      }
      await s.deleteUser("alice");
      assert.deepEqual([await x.rosterSize("alice"), await x.subscriptionRequestCount("alice"), await x.offlineCount("alice")], [0, 0, 0]);
      assert.deepEqual([await x.rosterSize("bob"), await x.subscriptionRequestCount("bob"), await x.offlineCount("bob")], [1, 1, 1]);
      await s.putUser("bob", creds2);
      assert.deepEqual([await x.rosterSize("bob"), await x.subscriptionRequestCount("bob"), await x.offlineCount("bob")], [1, 1, 1]);
    }));

    test("the offline writer: what one turn queues is one transaction; each entry answered once, in order, per the store", { timeout: 20_000 }, withStore(async (s) => {
      await s.putUser("alice", creds);
      await s.putUser("bob", creds);
      // Counts the writer's transactions; every call is the real store's.
      let batches = 0;
      const counting: XmppStore = Object.create(s.xmpp);
      counting.pushOffline = (batch, cap) => (batches++, s.xmpp.pushOffline(batch, cap));
      const w = new OfflineWriter(counting, { cap: 5, maxQueued: 100, maxBatch: 4 }, silentLogger());
      const got: [string, OfflineOutcome][] = [];
      for (let i = 0; i < 7; i++) assert.equal(w.push("alice", `<m n='${i}'/>`, (o) => got.push([`a${i}`, o])), true);
      assert.equal(w.push("nobody", "<m/>", (o) => got.push(["x", o])), true);
      assert.equal(w.push("bob", "<m n='b'/>", (o) => got.push(["b", o])), true);
      assert.equal(w.size, 9, "nothing written while this turn runs");
      await w.flushed();
      assert.equal(batches, 3, "9 entries, at most 4 per transaction");
      assert.deepEqual(got, [
        ["a0", "stored"], ["a1", "stored"], ["a2", "stored"], ["a3", "stored"], ["a4", "stored"],
        ["a5", "full"], ["a6", "full"], ["x", "unknown"], ["b", "stored"],
      ]);
      assert.deepEqual(await s.xmpp.takeOffline("alice"), [0, 1, 2, 3, 4].map((i) => `<m n='${i}'/>`), "in the order queued");
      // A full queue refuses at once.
      const small = new OfflineWriter(s.xmpp, { cap: 5, maxQueued: 2, maxBatch: 4 }, silentLogger());
      const done: OfflineOutcome[] = [];
      assert.deepEqual([1, 2, 3].map(() => small.push("bob", "<m/>", (o) => done.push(o))), [true, true, false]);
      await small.flushed();
      assert.deepEqual(done, ["stored", "stored"]);
    }));
  });
}
