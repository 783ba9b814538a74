import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "../../../src/store/sqlite-store.js";
import type { ArchiveRow } from "../../../src/store/archive-store.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { ArchiveWriter } from "../../../src/store/archive-writer.js";
import { silentLogger } from "../../../src/log/logger.js";
import { archivedText, RENDER_MODULE } from "../../../src/xmpp/modules/mam-render.js";
import { PgStore } from "../../../src/store/postgres-store.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";

// On a SQLite file the archive's appends run on a thread of their own (sqlite-archive-thread.ts):
// the event loop goes on while a batch is written, reads see it once committed, and close waits for it.
// On PostgreSQL the writer's batches go to a thread too (postgres-archive-thread-main.ts): the last tests.

const rows = (user: string, from: number, n: number): ArchiveRow[] =>
  Array.from({ length: n }, (_, k) => ({
    user,
    id: `id-${from + k}`,
    with: `c${(from + k) % 500}@localhost`,
    withResource: "",
    ts: 1_000_000 + from + k,
    outgoing: k % 2 === 0,
    stanza: `<message><body>${"x".repeat(200)} ${from + k}</body></message>`,
  }));

test("a big batch is written while the event loop turns; reads see it after; close waits for what was sent", { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "sb-archive-thread-"));
  try {
    const path = join(dir, "db.sqlite");
    let st = new SqliteStore(path);
    await st.putUser("alice", await deriveCredentials("pw", 4096));
    await st.archive.append(rows("alice", 0, 10));
    // 40,000 rows: on the event loop this transaction held it for its whole length (no turn at all).
    let turns = 0;
    let done = false;
    const big = st.archive.append(rows("alice", 10, 40_000)).then((n) => ((done = true), n));
    while (!done) {
      await new Promise((r) => setImmediate(r));
      turns++;
      // The event loop's own connection reads meanwhile (WAL): the first ten rows at least.
      if (turns === 1) assert.ok((await st.archive.count("alice")) >= 10);
    }
    assert.equal(await big, 40_000);
    assert.ok(turns > 10, `the event loop turned ${turns} times while the batch was written`);
    assert.equal(await st.archive.count("alice"), 40_010);
    // A message's rows for two users share one text (sent once to the thread); each keeps it.
    const shared = `<message><body>"both" \\ '</body></message>`;
    assert.equal(await st.archive.append([{ ...rows("bob", 0, 1)[0], stanza: shared }, { ...rows("carol", 0, 1)[0], stanza: shared }, ...rows("carol", 1, 1)]), 3);
    assert.deepEqual((await st.archive.query({ user: "carol", max: 5 }))!.items.map((x) => x.stanza), [shared, rows("carol", 1, 1)[0].stanza]);
    assert.equal((await st.archive.query({ user: "bob", max: 5 }))!.items[0].stanza, shared);
    // A duplicate (user, id) is skipped, as on the event loop.
    assert.equal(await st.archive.append(rows("alice", 0, 5)), 0);
    // Sent, then closed at once: written before the thread ends.
    const last = st.archive.append(rows("alice", 50_000, 100));
    await st.close();
    assert.equal(await last, 100);
    st = new SqliteStore(path);
    assert.equal(await st.archive.count("alice"), 40_110);
    const page = await st.archive.query({ user: "alice", max: 2, last: true });
    assert.deepEqual(page?.items.map((i) => i.id), ["id-50098", "id-50099"]);
    await st.close();
    await assert.rejects(st.archive.append(rows("alice", 60_000, 1)), /closed/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("in memory (no file another connection could share): appends stay on the event loop", { timeout: 10_000 }, async () => {
  const st = new SqliteStore(":memory:");
  await st.putUser("bob", await deriveCredentials("pw", 4096));
  assert.equal(await st.archive.append(rows("bob", 0, 3)), 3);
  assert.equal(await st.archive.count("bob"), 3);
  await st.close();
});

test("appends gather for a while before they go to the thread; someone waiting (flushed) has them sent at once", { timeout: 20_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "sb-archive-hurry-"));
  const st = new SqliteStore(join(dir, "db.sqlite"));
  try {
    await st.archive.append(rows("alice", 0, 1)); // the thread started and ready
    // The gathering timer never fires from here on: only hurry() can send what is gathered.
    t.mock.timers.enable({ apis: ["setTimeout"] });
    let written = false;
    const a = st.archive.append(rows("alice", 1, 3)).then((n) => ((written = true), n));
    const b = st.archive.append(rows("bob", 1, 2));
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    assert.equal(written, false, "gathered, not sent");
    st.archive.hurry();
    assert.deepEqual(await Promise.all([a, b]), [3, 2], "both appends in one hand-over, each told its own count");
    t.mock.timers.reset();
    assert.equal(await st.archive.count("alice"), 4);
  } finally {
    t.mock.timers.reset();
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the writer's flushed() (a login's barrier, an archive query) does not wait for the gathering", { timeout: 20_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "sb-archive-flushed-"));
  const st = new SqliteStore(join(dir, "db.sqlite"));
  const render = (e: { payload: unknown }) => ({ id: String(e.payload), text: `<message id="${String(e.payload)}"/>` });
  const w = new ArchiveWriter(st.archive, { defaultMode: "always", maxQueued: 100, maxBatch: 2, prefsCacheSize: 10, retentionDays: 0, render, inRoster: async () => true }, silentLogger());
  try {
    await st.archive.append(rows("alice", 0, 1));
    t.mock.timers.enable({ apis: ["setTimeout"] });
    // Five entries: three batches of at most two, one after the other, each sent at once because someone waits.
    for (let i = 0; i < 5; i++) w.push({ bare: "alice@localhost", outgoing: true, ts: 1, payload: `f${i}`, from: "alice@localhost/r", to: "bob@localhost" });
    await w.flushed();
    assert.equal(w.stats.archived, 5);
    t.mock.timers.reset();
    assert.equal(await st.archive.count("alice"), 6);
  } finally {
    t.mock.timers.reset();
    w.close();
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** What both stores' threads are given: a store with accounts, rosters and the archive. */
type ThreadStore = Pick<SqliteStore, "putUser" | "archive" | "close"> & { xmpp: Pick<SqliteStore["xmpp"], "rosterItem" | "putRosterItem"> };

/**
 * The writer's batches as texts on a store's archive thread. The event loop's `render` archives nothing: every
 * row written was made on the thread.
 */
async function textsOnThread(st: ThreadStore | PgStore): Promise<void> {
  const w = new ArchiveWriter(
    st.archive,
    { defaultMode: "roster", maxQueued: 100, maxBatch: 100, prefsCacheSize: 10, retentionDays: 0, render: () => null, text: archivedText, renderModule: RENDER_MODULE, inRoster: async (u, j) => (await st.xmpp.rosterItem(u, j)) !== undefined },
    silentLogger(),
  );
  let n = 0;
  // As a session wrote it, or as it came over the bus: with the stanza-id StanzaIds appended last.
  const wire = (from: string, to: string) => `<message type="chat" from="${from}" to="${to}"><body>m${n}</body><stanza-id xmlns="urn:xmpp:sid:0" by="x@localhost" id="i${n++}"/></message>`;
  const push = (bare: string, outgoing: boolean, other: string, payload?: string) => {
    const from = outgoing ? `${bare}/r` : other;
    const to = outgoing ? other : `${bare}/r`;
    w.push({ bare, outgoing, ts: Date.now(), payload: payload ?? wire(from, to), from, to });
  };
  try {
    for (const u of ["alice", "bob"]) await st.putUser(u, await deriveCredentials("pw", 4096));
    await st.xmpp.putRosterItem("alice", { jid: "friend@localhost", name: "", subscription: "both", ask: false, groups: [] });
    push("alice@localhost", false, "friend@localhost/x");
    push("alice@localhost", false, "stranger@localhost/x");
    await w.flushed();
    assert.equal(await st.archive.count("alice"), 1, "roster mode: the friend only");
    assert.equal(w.stats.skipped, 1);
    const [item] = (await st.archive.query({ user: "alice", max: 5 }))!.items;
    assert.equal(item.id, "i0");
    assert.equal(item.stanza, `<message xmlns="jabber:client" type="chat" from="friend@localhost/x" to="alice@localhost/r"><body>m0</body></message>`);
    // A message archived for both users: one text, two rows.
    await st.archive.setPrefs("bob", { default: "always", always: [], never: [] });
    const shared = wire("bob@localhost/r", "alice@localhost/r");
    w.push({ bare: "bob@localhost", outgoing: true, ts: Date.now(), payload: shared, from: "bob@localhost/r", to: "alice@localhost/r" });
    w.push({ bare: "alice@localhost", outgoing: false, ts: Date.now(), payload: shared, from: "bob@localhost/r", to: "alice@localhost/r" });
    await w.flushed();
    assert.equal(await st.archive.count("bob"), 1);
    assert.equal(await st.archive.count("alice"), 1, "bob is not in alice's roster");
    // Set elsewhere and not told: the thread keeps what it read. Told: read again.
    await st.archive.setPrefs("alice", { default: "always", always: [], never: ["friend@localhost"] });
    push("alice@localhost", true, "stranger@localhost");
    await w.flushed();
    assert.equal(await st.archive.count("alice"), 1, "not told: still roster mode");
    w.prefsChanged("alice");
    push("alice@localhost", true, "friend@localhost");
    push("alice@localhost", true, "stranger@localhost");
    await w.flushed();
    assert.equal(await st.archive.count("alice"), 2, "told: never the friend, the default always");
    await st.archive.setPrefs("alice", { default: "never", always: ["stranger@localhost"], never: [] });
    w.prefsChanged(null);
    push("alice@localhost", true, "friend@localhost");
    push("alice@localhost", true, "stranger@localhost");
    await w.flushed();
    assert.equal(await st.archive.count("alice"), 3);
    assert.equal(w.stats.skipped, 5);
    assert.ok(w.prefs.reads >= 3, `the thread's reads are counted (${w.prefs.reads})`);
  } finally {
    w.close();
  }
}

test("the writer's batches as texts: rendered and filtered on the thread (preferences kept there, told when they change; roster mode asked back)", { timeout: 20_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "sb-archive-texts-"));
  const st = new SqliteStore(join(dir, "db.sqlite"));
  try {
    await textsOnThread(st);
  } finally {
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("PostgreSQL's archive thread", { skip: HAVE_POSTGRES ?? false }, () => {
  let server: PostgresServer;
  before(async () => void (server = await startPostgres()));
  after(async () => server?.stop());

  test("the writer's batches as texts: rendered, filtered and inserted on the thread's own connection", { timeout: 30_000 }, async () => {
    const st = await PgStore.open(await server.createDatabase("texts"), silentLogger());
    try {
      await textsOnThread(st);
      // A batch that needs no preferences: written on the thread's connection, counted on the event loop's.
      const w = new ArchiveWriter(st.archive, { defaultMode: "always", maxQueued: 100, maxBatch: 100, prefsCacheSize: 10, retentionDays: 0, render: () => null, text: archivedText, renderModule: RENDER_MODULE, inRoster: async () => true }, silentLogger());
      w.push({ bare: "bob@localhost", outgoing: true, ts: Date.now(), payload: `<message type="chat" from="bob@localhost/r" to="x@localhost"><body>last</body><stanza-id xmlns="urn:xmpp:sid:0" by="x@localhost" id="last"/></message>`, from: "bob@localhost/r", to: "x@localhost" });
      await w.flushed();
      w.close();
      assert.equal(w.stats.archived, 1);
      assert.equal(await st.archive.count("bob"), 2);
    } finally {
      await st.close();
    }
    await assert.rejects(st.archive.appendTexts({ nums: new Float64Array(0), strs: [], decided: true, defaultMode: "always", prefsCacheSize: 1, renderModule: RENDER_MODULE })!, /closed/);
  });
});
