import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { SqliteStore } from "../../../src/store/sqlite-store.js";
import { PgStore } from "../../../src/store/postgres-store.js";
import type { Storage } from "../../../src/store/store.js";
import type { ArchiveRow } from "../../../src/store/archive-store.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { silentLogger } from "../../../src/log/logger.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";

// The archive store (XEP-0313) on both backends, the same checks: paging both ways, filters,
// duplicates, preferences, retention, and the rows gone with the account.

const row = (user: string, i: number, withJid = "bob@localhost", ts = 1_000_000 + i * 1000): ArchiveRow => ({
  user,
  id: `id-${i}`,
  with: withJid,
  withResource: i % 2 === 0 ? "phone" : "",
  ts,
  outgoing: i % 2 === 0,
  stanza: `<message><body>${i}</body></message>`,
});
const ids = (p: { items: { id: string }[] } | null) => p!.items.map((x) => x.id);
const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, k) => `id-${a + k}`);

function suite(name: string, open: () => Promise<Storage>, skip: string | false): void {
  describe(name, { skip }, () => {
    let st: Storage;
    before(async () => {
      st = await open();
      const creds = await deriveCredentials("pw", 4096);
      await st.putUser("alice", creds);
      await st.putUser("zoe", creds);
      // 30 messages, every third with carol; two in the same millisecond (10 and 11).
      const rows = Array.from({ length: 30 }, (_, i) => row("alice", i, i % 3 === 0 ? "carol@localhost" : "bob@localhost", i === 11 ? 1_000_000 + 10_000 : undefined));
      assert.equal(await st.archive.append(rows), 30);
      await st.archive.append([row("zoe", 0)]);
    });
    after(async () => void (await st?.close()));

    test("a row already there (same user and id) is skipped; another user's same id is not", { timeout: 10_000 }, async () => {
      assert.equal(await st.archive.append([row("alice", 3), row("zoe", 3)]), 1);
      assert.equal(await st.archive.count("alice"), 30);
      assert.equal(await st.archive.count("zoe"), 2);
    });

    test("a message's rows for both users share one text; each row keeps the text it was given", { timeout: 10_000 }, async () => {
      const shared = "<message><body>both</body></message>";
      const rows = [{ ...row("sam", 900), stanza: shared }, { ...row("tom", 900), stanza: shared }, { ...row("tom", 901), stanza: "<message><body>'\"\\{}</body></message>" }];
      assert.equal(await st.archive.append(rows), 3);
      const t = await st.archive.query({ user: "tom", max: 10 });
      assert.deepEqual(t!.items.map((x) => x.stanza), [shared, rows[2].stanza]);
      const a = await st.archive.query({ user: "sam", max: 10 });
      assert.deepEqual(a!.items.map((x) => x.stanza), [shared]);
    });

    test("forwards: first page, then after the last id; complete only on the last one", { timeout: 10_000 }, async () => {
      const p1 = await st.archive.query({ user: "alice", max: 12 });
      assert.deepEqual(ids(p1), range(0, 11));
      assert.equal(p1!.complete, false);
      const p2 = await st.archive.query({ user: "alice", max: 12, after: "id-11" });
      assert.deepEqual(ids(p2), range(12, 23));
      const p3 = await st.archive.query({ user: "alice", max: 12, after: "id-23" });
      assert.deepEqual(ids(p3), range(24, 29));
      assert.equal(p3!.complete, true);
      // Exactly max left: complete, no empty page needed.
      assert.equal((await st.archive.query({ user: "alice", max: 6, after: "id-23" }))!.complete, true);
    });

    test("backwards: <before/> empty is the last page; before an id, older ones, oldest first", { timeout: 10_000 }, async () => {
      const last = await st.archive.query({ user: "alice", max: 5, last: true });
      assert.deepEqual(ids(last), range(25, 29));
      assert.equal(last!.complete, false);
      assert.deepEqual(ids(await st.archive.query({ user: "alice", max: 5, before: "id-25" })), range(20, 24));
      const first = await st.archive.query({ user: "alice", max: 5, before: "id-3" });
      assert.deepEqual(ids(first), range(0, 2));
      assert.equal(first!.complete, true);
    });

    test("with, with a resource, start and end bound the set; the same millisecond keeps insertion order", { timeout: 10_000 }, async () => {
      assert.deepEqual(ids(await st.archive.query({ user: "alice", max: 100, with: "carol@localhost" })), ["id-0", "id-3", "id-6", "id-9", "id-12", "id-15", "id-18", "id-21", "id-24", "id-27"]);
      assert.deepEqual(ids(await st.archive.query({ user: "alice", max: 100, with: "carol@localhost", withResource: "phone" })), ["id-0", "id-6", "id-12", "id-18", "id-24"]);
      assert.deepEqual(ids(await st.archive.query({ user: "alice", max: 100, start: 1_000_000 + 20_000, end: 1_000_000 + 22_000 })), range(20, 22));
      assert.deepEqual(ids(await st.archive.query({ user: "alice", max: 3, start: 1_000_000 + 9000 })), ["id-9", "id-10", "id-11"]);
      assert.deepEqual(ids(await st.archive.query({ user: "alice", max: 2, with: "bob@localhost", after: "id-10" })), ["id-11", "id-13"]);
    });

    test("an unknown after/before id is null (item-not-found); max 0 counts", { timeout: 10_000 }, async () => {
      assert.equal(await st.archive.query({ user: "alice", max: 5, after: "nope" }), null);
      assert.equal(await st.archive.query({ user: "alice", max: 5, before: "id-0-x" }), null);
      // Another user's id is not this archive's.
      assert.equal(await st.archive.query({ user: "zoe", max: 5, after: "id-20" }), null);
      assert.equal((await st.archive.query({ user: "alice", max: 0, with: "carol@localhost" }))!.count, 10);
    });

    test("preferences: none stored, then stored and read back", { timeout: 10_000 }, async () => {
      assert.equal((await st.archive.prefs(["alice"])).size, 0);
      await st.archive.setPrefs("alice", { default: "roster", always: ["carol@localhost"], never: ["eve@localhost"] });
      await st.archive.setPrefs("alice", { default: "never", always: ["carol@localhost"], never: [] });
      assert.deepEqual((await st.archive.prefs(["alice", "zoe"])).get("alice"), { default: "never", always: ["carol@localhost"], never: [] });
    });

    test("retention removes what is older, a step at a time; the account's deletion removes the rest", { timeout: 10_000 }, async () => {
      // Older than 1,005,000: alice's 0-4 and zoe's 0 and 3, seven rows, removed three at most per call.
      assert.equal(await st.archive.expire(1_000_000 + 5000, 3), 3);
      assert.equal(await st.archive.expire(1_000_000 + 5000, 3), 3);
      assert.equal(await st.archive.expire(1_000_000 + 5000, 3), 1);
      assert.equal(await st.archive.expire(1_000_000 + 5000, 3), 0);
      assert.deepEqual(ids(await st.archive.query({ user: "alice", max: 2 })), ["id-5", "id-6"]);
      assert.equal(await st.archive.count("zoe"), 0);
      await st.deleteUser("alice");
      assert.equal(await st.archive.count("alice"), 0);
      assert.equal((await st.archive.prefs(["alice"])).size, 0);
    });
  });
}

suite("archive store, SQLite", async () => new SqliteStore(":memory:"), false);

let pgServer: PostgresServer | undefined;
suite(
  "archive store, PostgreSQL",
  async () => {
    pgServer = await startPostgres();
    return PgStore.open(await pgServer.createDatabase("archive"), silentLogger());
  },
  HAVE_POSTGRES ?? false,
);
after(() => pgServer?.stop());
