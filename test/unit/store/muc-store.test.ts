import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { SqliteStore } from "../../../src/store/sqlite-store.js";
import { PgStore } from "../../../src/store/postgres-store.js";
import { silentLogger } from "../../../src/log/logger.js";
import type { Storage } from "../../../src/store/store.js";
import { storedRooms, stateOf } from "../../../src/xmpp/muc/rooms-store.js";
import { defaultConfig } from "../../../src/xmpp/muc/room-config.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";

// XEP-0045 persistent rooms (MucStore, schema component "muc") on both backends: the same checks.

async function checks(store: Storage): Promise<void> {
  const m = store.muc;
  assert.equal(await m.room("a@conference.localhost"), null);
  await m.putRoom("a@conference.localhost", '{"x":1}');
  await m.putRoom("b@conference.localhost", '{"y":2}');
  await m.putRoom("a@conference.localhost", '{"x":3}');
  assert.equal(await m.room("a@conference.localhost"), '{"x":3}', "replaced");
  assert.deepEqual(await m.rooms(), ["a@conference.localhost", "b@conference.localhost"]);
  assert.equal(await m.deleteRoom("b@conference.localhost"), true);
  assert.equal(await m.deleteRoom("b@conference.localhost"), false);
  assert.deepEqual(await m.rooms(), ["a@conference.localhost"]);

  // The protocol's side: writes to one room in order, the last kept; state read back as written.
  const rooms = storedRooms(m, silentLogger());
  const state = (name: string) => ({ config: { ...defaultConfig(), name, persistent: true }, affiliations: [["alice@localhost", "owner"]] as [string, "owner"][], subject: "s", subjectBy: "Alice" });
  const writes = [];
  for (let i = 0; i < 20; i++) writes.push(rooms.save("c@conference.localhost", state(`n${i}`)));
  const loaded = await rooms.load("c@conference.localhost");
  assert.equal(loaded?.config.name, "n19", "a load waits for the writes before it");
  await Promise.all(writes);
  assert.deepEqual(await rooms.load("c@conference.localhost"), state("n19"));
  await rooms.remove("c@conference.localhost");
  assert.equal(await rooms.load("c@conference.localhost"), null);
  // Text this server did not write is no room.
  await m.putRoom("d@conference.localhost", "not json");
  assert.equal(await rooms.load("d@conference.localhost"), null);
  assert.equal(stateOf('{"config":{},"affiliations":[["x@y","emperor"],["a@b","member"]]}')?.affiliations.length, 1, "unknown affiliations dropped");
}

test("MucStore on SQLite: put, replace, list, delete; ordered writes; unreadable state ignored", { timeout: 10_000 }, async () => {
  const store = new SqliteStore(":memory:");
  try {
    await checks(store);
    assert.deepEqual(store.db.prepare("SELECT version FROM schema_versions WHERE component = 'muc'").get(), { version: 1 });
  } finally {
    await store.close();
  }
});

describe("MucStore on PostgreSQL", { skip: HAVE_POSTGRES ?? false }, () => {
  let server: PostgresServer;
  before(async () => void (server = await startPostgres()));
  after(() => server?.stop());

  test("the same checks", { timeout: 30_000 }, async () => {
    const store = await PgStore.open(await server.createDatabase("muc"), silentLogger());
    try {
      await checks(store);
    } finally {
      await store.close();
    }
  });
});
