import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { migrate, versions } from "../../../src/store/postgres-schema.js";
import { COMPONENTS, PgStore } from "../../../src/store/postgres-store.js";
import { silentLogger } from "../../../src/log/logger.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";

// Versioned migrations on PostgreSQL: per component, in schema_versions, applied under an advisory lock.

describe("postgres migrations", { skip: HAVE_POSTGRES ?? false }, () => {
  let server: PostgresServer;
  before(async () => void (server = await startPostgres()));
  after(() => server?.stop());

  const pool = (db: string) => new pg.Pool({ host: "127.0.0.1", port: server.port, user: "postgres", database: db });

  test("a fresh database gets every component's tables and versions; opened again nothing re-runs", { timeout: 30_000 }, async () => {
    const c = await server.createDatabase("fresh");
    const store = await PgStore.open(c, silentLogger());
    await store.close();
    const again = await PgStore.open(c, silentLogger());
    try {
      assert.deepEqual(await versions(again.pool), { accounts: 1, archive: 2, blocking: 1, fast: 1, muc: 1, muc_directory: 1, pep: 1, vcard: 1, xmpp: 2 });
      const tables = await again.pool.query<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
      assert.deepEqual(tables.rows.map((r) => r.t), ["archive", "archive_prefs", "blocklist", "fast_tokens", "muc_directory", "muc_rooms", "offline", "pep_items", "pep_nodes", "roster", "schema_versions", "subscription_requests", "users", "vcard"]);
    } finally {
      await again.close();
    }
  });

  test("eight processes' worth of migrate() at once apply each step exactly once (the advisory lock), and a step that fails rolls its component back", { timeout: 30_000 }, async () => {
    const c = await server.createDatabase("race");
    // A step with a side effect that shows a second run: one row per application.
    const toy = { name: "toy", steps: ["CREATE TABLE toy (n int)", "INSERT INTO toy VALUES (1)"] };
    await Promise.all(Array.from({ length: 8 }, () => migrate(c, [...COMPONENTS, toy])));
    const p = pool("race");
    try {
      assert.deepEqual((await p.query("SELECT n FROM toy")).rows, [{ n: 1 }]);
      assert.deepEqual(await versions(p), { accounts: 1, archive: 2, blocking: 1, fast: 1, muc: 1, muc_directory: 1, pep: 1, toy: 2, vcard: 1, xmpp: 2 });
      // Appended steps: only the new one runs.
      await migrate(c, [{ name: "toy", steps: [...toy.steps, "INSERT INTO toy VALUES (2)"] }]);
      assert.deepEqual((await p.query("SELECT n FROM toy ORDER BY n")).rows, [{ n: 1 }, { n: 2 }]);
      await assert.rejects(migrate(c, [{ name: "toy", steps: [...toy.steps, "INSERT INTO toy VALUES (2)", "INSERT INTO toy VALUES (3)", "NOT SQL"] }]), /syntax error/);
      assert.deepEqual((await p.query("SELECT n FROM toy ORDER BY n")).rows, [{ n: 1 }, { n: 2 }], "the failed call's earlier step rolled back too");
      assert.equal((await versions(p)).toy, 3);
      // The lock was given back: another migrate does not wait.
      await migrate(c, COMPONENTS);
    } finally {
      await p.end();
    }
  });

  test("a schema newer than this server is refused, naming the component; a worker that only checks refuses a database not migrated", { timeout: 30_000 }, async () => {
    const c = await server.createDatabase("versions");
    await assert.rejects(PgStore.open(c, silentLogger(), { migrate: false }), /schema of accounts is at version 0, this server needs 1/);
    await migrate(c, COMPONENTS);
    await (await PgStore.open(c, silentLogger(), { migrate: false })).close();
    const p = pool("versions");
    try {
      await p.query("UPDATE schema_versions SET version = 7 WHERE component = 'xmpp'");
    } finally {
      await p.end();
    }
    await assert.rejects(PgStore.open(c, silentLogger()), /schema of xmpp is at version 7, newer than this server \(2\)/);
  });
});
