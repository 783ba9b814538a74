import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { SqliteStore } from "../../../src/store/sqlite-store.js";
import { PgStore } from "../../../src/store/postgres-store.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { silentLogger } from "../../../src/log/logger.js";
import type { Storage } from "../../../src/store/store.js";
import type { NodeConfig } from "../../../src/store/pep-store.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";

// XEP-0163 nodes and items (PepStore) on both backends: the same checks.

const PRESENCE: NodeConfig = { accessModel: "presence", persistItems: true, maxItems: 3 };
const item = (id: string) => ({ id, payload: `<p xmlns='urn:x'>${id}</p>` });
const ids = (xs: { id: string }[] | null) => (xs === null ? null : xs.map((x) => x.id));

async function checks(store: Storage): Promise<void> {
  const creds = await deriveCredentials("pw", 4096);
  await store.putUser("alice", creds);
  await store.putUser("bob", creds);
  const p = store.pep;
  const pub = (user: string, node: string, id: string, over: Partial<{ create: NodeConfig; require: Partial<NodeConfig> | null; maxNodes: number }> = {}) =>
    p.publish(user, { node, item: item(id), create: PRESENCE, require: null, maxNodes: 2, ...over });

  assert.equal(await p.node("alice", "n1"), null);
  assert.equal(await p.items("alice", "n1", {}), null, "no node: null, not empty");
  assert.deepEqual(await pub("alice", "n1", "a"), { outcome: "published", config: PRESENCE }, "auto-created");
  assert.deepEqual(await p.node("alice", "n1"), PRESENCE);
  for (const id of ["b", "c", "d"]) await pub("alice", "n1", id);
  assert.deepEqual(ids(await p.items("alice", "n1", {})), ["b", "c", "d"], "max_items 3: the oldest went, oldest first");
  await pub("alice", "n1", "b");
  assert.deepEqual(ids(await p.items("alice", "n1", {})), ["c", "d", "b"], "the same id again: replaced, now the newest");
  assert.deepEqual(ids(await p.items("alice", "n1", { max: 2 })), ["d", "b"], "the newest two");
  assert.deepEqual(ids(await p.items("alice", "n1", { ids: ["c", "zz"] })), ["c"], "by id");
  assert.deepEqual((await p.items("alice", "n1", { ids: ["c"] }))![0].payload, "<p xmlns='urn:x'>c</p>");

  // XEP-0223: an existing node must match publish-options; the node limit counts nodes of the account.
  assert.equal((await pub("alice", "n1", "e", { require: { accessModel: "open" } })).outcome, "precondition-not-met");
  assert.equal((await pub("alice", "n1", "e", { require: { accessModel: "presence", maxItems: 3 } })).outcome, "published");
  await pub("alice", "n2", "x", { create: { accessModel: "open", persistItems: true, maxItems: 1 } });
  assert.equal((await pub("alice", "n3", "x")).outcome, "too-many-nodes", "maxNodes 2");
  assert.equal(await p.node("alice", "n3"), null);
  assert.equal(await p.create("alice", "n3", PRESENCE, 2), "too-many-nodes");
  assert.equal(await p.create("alice", "n2", PRESENCE, 5), "exists");
  assert.equal(await p.create("bob", "n2", { accessModel: "whitelist", persistItems: false, maxItems: 1 }, 5), "created");
  assert.deepEqual(
    (await p.nodes("alice")).map((n) => `${n.node} ${n.config.accessModel}`),
    ["n1 presence", "n2 open"],
  );

  // persist_items false: notified, not kept.
  assert.equal((await pub("bob", "n2", "y")).outcome, "published");
  assert.deepEqual(await p.items("bob", "n2", {}), []);

  assert.equal(await p.retract("alice", "n1", "d"), true);
  assert.equal(await p.retract("alice", "n1", "d"), false, "gone already");
  assert.equal(await p.retract("alice", "nx", "c"), null, "no node");

  // The newest item per user and node, for the nodes asked.
  await pub("bob", "n1", "bb");
  const last = await p.lastItems(["alice", "bob", "carol"], ["n1", "n2"]);
  assert.deepEqual(
    last.map((l) => `${l.user} ${l.node} ${l.id} ${l.accessModel}`).sort(),
    ["alice n1 e presence", "alice n2 x open", "bob n1 bb presence"],
  );
  assert.deepEqual(await p.lastItems([], ["n1"]), []);

  assert.equal(await p.configure("alice", "n1", { accessModel: "open", persistItems: true, maxItems: 1 }), true);
  assert.deepEqual(ids(await p.items("alice", "n1", {})), ["e"], "max_items lowered: trimmed");
  assert.equal(await p.configure("alice", "nx", PRESENCE), false);

  assert.equal(await p.deleteNode("alice", "n1"), true);
  assert.equal(await p.deleteNode("alice", "n1"), false);
  assert.equal(await p.items("alice", "n1", {}), null);
  assert.equal((await pub("alice", "n1", "again")).outcome, "published", "a deleted node can be made again");

  // Gone with the account.
  assert.equal(await store.deleteUser("alice"), true);
  assert.deepEqual(await p.nodes("alice"), []);
  assert.deepEqual(await p.lastItems(["alice"], ["n1", "n2"]), []);
}

test("PepStore on SQLite: auto-create, max_items, replace by id, publish-options, node limit, retract, last items, configure, delete", { timeout: 10_000 }, async () => {
  const store = new SqliteStore(":memory:");
  try {
    await checks(store);
    const v = store.db.prepare("SELECT component, version FROM schema_versions WHERE component = 'pep'").all();
    assert.deepEqual(v, [{ component: "pep", version: 1 }]);
  } finally {
    await store.close();
  }
});

describe("PepStore on PostgreSQL", { skip: HAVE_POSTGRES ?? false }, () => {
  let server: PostgresServer;
  before(async () => void (server = await startPostgres()));
  after(() => server?.stop());

  test("the same checks, and two publishes at once do not pass the node limit", { timeout: 30_000 }, async () => {
    const store = await PgStore.open(await server.createDatabase("pep"), silentLogger());
    try {
      await checks(store);
      const creds = await deriveCredentials("pw", 4096);
      await store.putUser("carol", creds);
      const one = (node: string) => store.pep.publish("carol", { node, item: item("i"), create: PRESENCE, require: null, maxNodes: 1 });
      const r = await Promise.all([one("a"), one("b")]);
      assert.deepEqual(r.map((x) => x.outcome).sort(), ["published", "too-many-nodes"]);
    } finally {
      await store.close();
    }
  });
});
