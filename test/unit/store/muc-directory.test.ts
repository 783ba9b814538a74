import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { SqliteStore } from "../../../src/store/sqlite-store.js";
import { PgStore } from "../../../src/store/postgres-store.js";
import type { Storage } from "../../../src/store/store.js";
import { silentLogger } from "../../../src/log/logger.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";

// The public-room directory (XEP-0045 §6.3, schema component "muc_directory") on both backends: paging in
// address order both ways, the lease of temporary rooms, renewal by holder, the sweep.

const NOW = 10_000_000;
const LEASE = 180_000;
const room = (i: number) => `r${String(i).padStart(2, "0")}@conference.localhost`;
const rooms = (p: { room: string }[]) => p.map((x) => x.room);

function suite(name: string, open: () => Promise<Storage>, skip: string | false): void {
  describe(name, { skip }, () => {
    let st: Storage;
    before(async () => {
      st = await open();
      // Ten rooms: even ones persistent; odd ones temporary, of holder "h1", r09 of "h2" and not renewed lately.
      for (let i = 9; i >= 0; i--) await st.mucDirectory.put(room(i), `Room ${i}`, i % 2 === 0, i === 9 ? "h2" : "h1", i === 9 ? NOW - LEASE - 1 : NOW);
    });
    after(async () => void (await st?.close()));

    test("pages in address order, forwards and backwards; one more row than asked tells a cut page", { timeout: 10_000 }, async () => {
      const d = st.mucDirectory;
      const live = NOW - LEASE;
      assert.deepEqual(rooms(await d.page({ liveSince: live, max: 3 })), [room(0), room(1), room(2), room(3)]);
      assert.deepEqual(rooms(await d.page({ liveSince: live, max: 3, after: room(2) })), [room(3), room(4), room(5), room(6)]);
      assert.deepEqual(rooms(await d.page({ liveSince: live, max: 3, last: true })), [room(5), room(6), room(7), room(8)], "r09's lease lapsed");
      assert.deepEqual(rooms(await d.page({ liveSince: live, max: 3, before: room(4) })), [room(0), room(1), room(2), room(3)]);
      assert.deepEqual(rooms(await d.page({ liveSince: live, max: 10, after: "r05x@conference.localhost" })), [room(6), room(7), room(8)], "any address is a place to page from");
      assert.deepEqual((await d.page({ liveSince: live, max: 1 }))[0], { room: room(0), name: "Room 0" });
      assert.equal(await d.count(live), 9);
    });

    test("put replaces; renew moves a holder's temporary rooms' lease; expire sweeps the lapsed temporary rows only", { timeout: 10_000 }, async () => {
      const d = st.mucDirectory;
      await d.put(room(1), "Renamed", false, "h1", NOW);
      assert.deepEqual((await d.page({ liveSince: NOW, max: 1, after: room(0) }))[0], { room: room(1), name: "Renamed" });
      await d.renew("h1", NOW + 1000);
      // Persistent rooms stay listed whatever their time; h1's temporary ones were renewed.
      assert.deepEqual(rooms(await d.page({ liveSince: NOW + 1000, max: 20 })), [0, 1, 2, 3, 4, 5, 6, 7, 8].map(room));
      assert.equal(await d.expire(NOW + 1001), 5, "h1's four temporary rooms and h2's");
      assert.equal(await d.count(0), 5);
      assert.equal(await d.remove(room(0)), true);
      assert.equal(await d.remove(room(0)), false);
    });
  });
}

suite("muc directory, SQLite", async () => new SqliteStore(":memory:"), false);

let pgServer: PostgresServer | undefined;
suite(
  "muc directory, PostgreSQL",
  async () => {
    pgServer = await startPostgres();
    return PgStore.open(await pgServer.createDatabase("mucdirectory"), silentLogger());
  },
  HAVE_POSTGRES ?? false,
);
after(() => pgServer?.stop());
