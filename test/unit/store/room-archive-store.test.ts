import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "../../../src/store/sqlite-store.js";
import { PgStore } from "../../../src/store/postgres-store.js";
import type { Storage } from "../../../src/store/store.js";
import type { ArchiveRow } from "../../../src/store/archive-store.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { silentLogger } from "../../../src/log/logger.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";

// Room archives (src/xmpp/muc/room-mam.ts) in the users' archive store, on both backends: the room's
// bare JID is the archive's owner, beside an account of the same local part, and forget() removes a
// room's archive up to a time (a room that ended), leaving what a room made again under its name wrote later.
// A room's rows keep their senders' real JIDs (XEP-0313 §MUC archives); rows without one, and rows an older
// server wrote before the column was added, read back as null.

const ROOM = "lobby@conference.localhost";
const row = (user: string, i: number, ts = 2_000_000 + i * 1000): ArchiveRow => ({
  user,
  id: `r-${i}`,
  with: ROOM,
  withResource: i % 2 === 0 ? "Alice" : "Bob",
  ts,
  outgoing: false,
  stanza: `<message type='groupchat'><body>${i}</body></message>`,
});
const ids = (p: { items: { id: string }[] } | null) => p!.items.map((x) => x.id);

/** A store and a way to run raw SQL on it (an older server's insert, the schema's version). */
interface Opened {
  st: Storage;
  sql(text: string): Promise<Record<string, unknown>[]>;
}

function suite(name: string, open: () => Promise<Opened>, skip: string | false): void {
  describe(name, { skip }, () => {
    let st: Storage;
    let sql: Opened["sql"];
    before(async () => {
      ({ st, sql } = await open());
      await st.putUser("lobby", await deriveCredentials("pw", 4096));
      assert.equal(await st.archive.append(Array.from({ length: 6 }, (_, i) => row(ROOM, i))), 6);
      assert.equal(await st.archive.append([row("lobby", 0), row("lobby", 1)]), 2);
    });
    after(async () => void (await st?.close()));

    test("the room's archive and the account's are apart; `with` a nick filters the room's", { timeout: 10_000 }, async () => {
      assert.equal(await st.archive.count(ROOM), 6);
      assert.equal(await st.archive.count("lobby"), 2);
      assert.deepEqual(ids(await st.archive.query({ user: ROOM, max: 10, with: ROOM, withResource: "Bob" })), ["r-1", "r-3", "r-5"]);
      assert.deepEqual(ids(await st.archive.query({ user: ROOM, max: 2, last: true })), ["r-4", "r-5"]);
      assert.equal(await st.archive.query({ user: ROOM, max: 2, after: "no-such" }), null);
      // The account's id is not a cursor in the room's archive.
      assert.equal(await st.archive.append([row(ROOM, 0)]), 0, "an id the room's archive has is skipped");
    });

    test("a row's real JID is kept and read back; none (a user's row, an older server's row) is null", { timeout: 10_000 }, async () => {
      const JIDS = "jids@conference.localhost";
      assert.deepEqual((await sql("SELECT version FROM schema_versions WHERE component = 'archive'")).map((r) => Number(r.version)), [2]);
      const withJid = (i: number, realJid?: string): ArchiveRow => ({ ...row(JIDS, i), realJid });
      assert.equal(await st.archive.append([withJid(0, "alice@localhost/phone"), withJid(1), withJid(2, ""), withJid(3, "bob@localhost/desk")]), 4);
      // A batch none of whose rows has a real JID.
      assert.equal(await st.archive.append([withJid(4), withJid(5)]), 2);
      // As a server from before the column wrote it.
      await sql(`INSERT INTO archive (username, id, with_jid, with_resource, ts, outgoing, stanza) VALUES ('${JIDS}', 'r-6', '${ROOM}', 'Old', 2006000, ${name.includes("PostgreSQL") ? "false" : "0"}, '<message/>')`);
      const page = await st.archive.query({ user: JIDS, max: 10 });
      assert.deepEqual(page!.items.map((x) => [x.id, x.realJid]), [
        ["r-0", "alice@localhost/phone"],
        ["r-1", null],
        ["r-2", null],
        ["r-3", "bob@localhost/desk"],
        ["r-4", null],
        ["r-5", null],
        ["r-6", null],
      ]);
      // Paged backwards and filtered by nick, the same.
      assert.deepEqual((await st.archive.query({ user: JIDS, max: 1, with: ROOM, withResource: "Bob", before: "r-5" }))!.items.map((x) => x.realJid), ["bob@localhost/desk"]);
      assert.equal(await st.archive.forget(JIDS, Number.MAX_SAFE_INTEGER), 7);
    });

    test("deleting the account of the same local part leaves the room's archive", { timeout: 10_000 }, async () => {
      await st.deleteUser("lobby");
      assert.equal(await st.archive.count("lobby"), 0);
      assert.equal(await st.archive.count(ROOM), 6);
    });

    test("forget: up to a time, the rest stays", { timeout: 10_000 }, async () => {
      assert.equal(await st.archive.forget(ROOM, 2_000_000 + 3 * 1000), 4);
      assert.deepEqual(ids(await st.archive.query({ user: ROOM, max: 10 })), ["r-4", "r-5"]);
      assert.equal(await st.archive.forget(ROOM, Number.MAX_SAFE_INTEGER), 2);
      assert.equal(await st.archive.count(ROOM), 0);
      assert.equal(await st.archive.forget("nobody@conference.localhost", Date.now()), 0);
    });
  });
}

let dir = "";
suite("room archives, SQLite (a file: appends on the archive's thread)", async () => {
  dir = mkdtempSync(join(tmpdir(), "switchboard-room-archive-"));
  const st = new SqliteStore(join(dir, "db.sqlite"));
  return { st, sql: async (text: string) => (text.startsWith("SELECT") ? (st.db.prepare(text).all() as Record<string, unknown>[]) : (st.db.exec(text), [])) };
}, false);
after(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

let pgServer: PostgresServer | undefined;
suite(
  "room archives, PostgreSQL",
  async () => {
    pgServer = await startPostgres();
    const st = await PgStore.open(await pgServer.createDatabase("roomarchive"), silentLogger());
    return { st, sql: async (text: string) => (await st.pool.query(text)).rows as Record<string, unknown>[] };
  },
  HAVE_POSTGRES ?? false,
);
after(() => pgServer?.stop());
