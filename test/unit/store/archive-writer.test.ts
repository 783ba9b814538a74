import { test } from "node:test";
import assert from "node:assert/strict";
import { SqliteStore } from "../../../src/store/sqlite-store.js";
import { ArchiveWriter, type ArchiveEntry } from "../../../src/store/archive-writer.js";
import type { ArchiveMode } from "../../../src/store/archive-store.js";
import { silentLogger } from "../../../src/log/logger.js";
import { deriveCredentials } from "../../../src/store/scram.js";

// The archive's write queue: batches after the turn, preferences (always/never lists, roster mode),
// a full queue and a failing store cost the archive only; retention.

let n = 0;
function entry(bare: string, other: string, outgoing: boolean, ts = Date.now()): ArchiveEntry {
  const id = `e${n++}`;
  return { bare, outgoing, ts, payload: { id }, from: outgoing ? `${bare}/r` : other, to: outgoing ? other : `${bare}/r` };
}
const render = (e: ArchiveEntry) => ({ id: (e.payload as { id: string }).id, text: `<message id='${(e.payload as { id: string }).id}'/>` });

async function setup(defaultMode: ArchiveMode, extra: Partial<ConstructorParameters<typeof ArchiveWriter>[1]> = {}) {
  const store = new SqliteStore(":memory:");
  await store.putUser("alice", await deriveCredentials("pw", 4096));
  await store.xmpp.putRosterItem("alice", { jid: "friend@localhost", name: "", subscription: "both", ask: false, groups: [] });
  const w = new ArchiveWriter(
    store.archive,
    { defaultMode, maxQueued: 100, maxBatch: 3, prefsCacheSize: 1000, retentionDays: 0, render, inRoster: async (u, j) => (await store.xmpp.rosterItem(u, j)) !== undefined, ...extra },
    silentLogger(),
  );
  return { store, w };
}

test("after the turn, in batches of maxBatch, both directions; a payload written twice for one user is one row", { timeout: 5000 }, async () => {
  const { store, w } = await setup("always");
  const e = entry("alice@localhost", "bob@localhost/b", false);
  for (const x of [e, e, entry("alice@localhost", "bob@localhost", true), entry("alice@localhost", "carol@localhost/c", false), entry("alice@localhost", "bob@localhost", true)]) assert.ok(w.push(x));
  assert.equal(await store.archive.count("alice"), 0, "nothing written within the turn");
  await w.flushed();
  assert.equal(await store.archive.count("alice"), 4);
  const p = await store.archive.query({ user: "alice", max: 10, with: "bob@localhost", withResource: "b" });
  assert.equal(p!.items.length, 1);
  await store.close();
});

test("preferences: never wins, always lists, roster mode asks the roster; the default comes from config", { timeout: 5000 }, async () => {
  const { store, w } = await setup("roster");
  w.push(entry("alice@localhost", "friend@localhost/x", false));
  w.push(entry("alice@localhost", "stranger@localhost/x", false));
  await w.flushed();
  assert.equal(await store.archive.count("alice"), 1, "roster mode: the friend only");
  await store.archive.setPrefs("alice", { default: "always", always: [], never: ["friend@localhost"] });
  w.prefsChanged("alice");
  w.push(entry("alice@localhost", "friend@localhost", true));
  w.push(entry("alice@localhost", "stranger@localhost", true));
  await w.flushed();
  assert.equal(await store.archive.count("alice"), 2);
  await store.archive.setPrefs("alice", { default: "never", always: ["stranger@localhost"], never: [] });
  w.prefsChanged(null);
  w.push(entry("alice@localhost", "friend@localhost", true));
  w.push(entry("alice@localhost", "stranger@localhost", true));
  await w.flushed();
  assert.equal(await store.archive.count("alice"), 3);
  assert.equal(w.stats.skipped, 3);
  await store.close();
});

test("a full queue refuses at once; a failing store loses the batch, counted, and the next one is written", { timeout: 5000 }, async () => {
  const { store, w } = await setup("always", { maxQueued: 2 });
  assert.ok(w.push(entry("alice@localhost", "bob@localhost", true)));
  assert.ok(w.push(entry("alice@localhost", "bob@localhost", true)));
  assert.equal(w.push(entry("alice@localhost", "bob@localhost", true)), false);
  assert.equal(w.stats.dropped, 1);
  await w.flushed();
  const append = store.archive.append.bind(store.archive);
  store.archive.append = () => Promise.reject(new Error("disk full"));
  w.push(entry("alice@localhost", "bob@localhost", true));
  await w.flushed();
  assert.equal(w.stats.failedBatches, 1);
  store.archive.append = append;
  w.push(entry("alice@localhost", "bob@localhost", true));
  await w.flushed();
  assert.equal(await store.archive.count("alice"), 3);
  await store.close();
});

test("retention: expire() removes what is older than retentionDays", { timeout: 5000 }, async () => {
  const { store, w } = await setup("always", { retentionDays: 2 });
  const now = Date.now();
  w.push(entry("alice@localhost", "bob@localhost", true, now - 3 * 86_400_000));
  w.push(entry("alice@localhost", "bob@localhost", true, now - 86_400_000));
  await w.flushed();
  assert.equal(await w.expire(now), 1);
  assert.equal(await store.archive.count("alice"), 1);
  w.close();
  await store.close();
});

test("preferences are read once per user and kept until told changed; one read for a batch's users not kept", { timeout: 5000 }, async () => {
  const { store, w } = await setup("always");
  await store.putUser("bob", await deriveCredentials("pw", 4096));
  await store.archive.setPrefs("bob", { default: "never", always: [], never: [] });
  let calls = 0;
  const prefs = store.archive.prefs.bind(store.archive);
  store.archive.prefs = (users) => (calls++, prefs(users));
  w.push(entry("alice@localhost", "x@localhost", true));
  w.push(entry("bob@localhost", "x@localhost", true));
  await w.flushed();
  assert.equal(calls, 1, "one read for both users of the batch");
  for (let i = 0; i < 5; i++) w.push(entry(i % 2 === 0 ? "alice@localhost" : "bob@localhost", "x@localhost", true));
  await w.flushed();
  assert.equal(calls, 1, "kept: alice (none stored) as well as bob");
  assert.equal(await store.archive.count("bob"), 0, "bob's never, from memory");
  // Set elsewhere and not told: the kept preferences still apply (the bus tells the writer; see mam-prefs tests).
  await store.archive.setPrefs("bob", { default: "always", always: [], never: [] });
  w.push(entry("bob@localhost", "x@localhost", true));
  await w.flushed();
  assert.equal(await store.archive.count("bob"), 0);
  w.prefsChanged("bob");
  w.push(entry("bob@localhost", "x@localhost", true));
  w.push(entry("alice@localhost", "x@localhost", true));
  await w.flushed();
  assert.equal(calls, 2, "bob read again, alone");
  assert.equal(await store.archive.count("bob"), 1, "told: bob's new preferences");
  await store.close();
});

test("the kept preferences are bounded (least recently used dropped); a read overtaken by a change is not kept", { timeout: 5000 }, async () => {
  const { store, w } = await setup("always", { prefsCacheSize: 2 });
  const cache = w.prefs;
  await cache.lookup(["a", "b"]);
  assert.equal(cache.size, 2);
  assert.ok(cache.lookup(["a"]) instanceof Map, "a kept: no read");
  await cache.lookup(["c"]);
  assert.equal(cache.size, 2);
  assert.ok(cache.lookup(["a", "c"]) instanceof Map, "a (used lately) and c kept");
  const b = cache.lookup(["b"]);
  assert.ok(!(b instanceof Map), "b, the least recently used, was dropped");
  await b;
  // A change told while a read is on its way: what the read found may be older, so it is used but not kept.
  const reads = cache.reads;
  const slow = cache.lookup(["d"]);
  cache.forget("d");
  const got = await slow;
  assert.equal(got.size, 0);
  assert.equal(cache.reads, reads + 1);
  const d = cache.lookup(["d"]);
  assert.ok(!(d instanceof Map), "read again");
  await d;
  await store.close();
});

test("gatherMs: entries gather before a batch is written; a full batch or someone waiting (flushed) ends the gathering", { timeout: 5000 }, async () => {
  const { store, w } = await setup("always", { gatherMs: 60_000, maxBatch: 3 });
  w.push(entry("alice@localhost", "bob@localhost", true));
  w.push(entry("alice@localhost", "bob@localhost", false));
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  assert.equal(await store.archive.count("alice"), 0, "gathering: nothing written after ten turns");
  w.push(entry("alice@localhost", "carol@localhost", true));
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  assert.equal(await store.archive.count("alice"), 3, "a full batch (maxBatch) is written at once");
  w.push(entry("alice@localhost", "dave@localhost", true));
  await w.flushed();
  assert.equal(await store.archive.count("alice"), 4, "flushed() does not wait for the gathering");
  await store.close();
});
