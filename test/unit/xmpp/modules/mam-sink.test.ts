import { test } from "node:test";
import assert from "node:assert/strict";
import { parse, type Element } from "ltx";
import { archiveSink } from "../../../../src/xmpp/modules/mam.js";
import { ArchiveWriter, type ArchiveEntry } from "../../../../src/store/archive-writer.js";
import { Envelope, Flag } from "../../../../src/envelope/envelope.js";
import { SqliteStore } from "../../../../src/store/sqlite-store.js";
import { silentLogger } from "../../../../src/log/logger.js";

// The core's archive sink: a message archived for its recipient (before it is written) and for its sender
// (after) on this worker. Once written, both entries keep its text, not the envelope (and its element tree),
// until their batch is written: the collector copied those at every scavenge (docs/benchmarks.md, session 17).

test("a message delivered here: both entries keep the text written, not the envelope; the rows are the same", { timeout: 5000 }, async () => {
  const store = new SqliteStore(":memory:");
  const payloads: unknown[] = [];
  const w = new ArchiveWriter(
    store.archive,
    {
      defaultMode: "always",
      maxQueued: 100,
      maxBatch: 100,
      prefsCacheSize: 10,
      retentionDays: 0,
      render: (e: ArchiveEntry) => {
        payloads.push(e.payload);
        return { id: "s1", text: typeof e.payload === "string" ? e.payload : "<message/>" };
      },
      inRoster: async () => true,
    },
    silentLogger(),
  );
  const sink = archiveSink("localhost", w);
  const el = parse(`<message type="chat" to="bob@localhost"><body>hi</body></message>`) as Element;
  const env = Envelope.message({ from: "alice@localhost/a", to: "bob@localhost", protocol: "xmpp", payload: el, flags: Flag.Archive });
  // The recipient's owner archives it first, then writes it to bob's session, then the sender's copy comes.
  sink(env, "bob@localhost", false);
  env.written = `<message type="chat" to="bob@localhost" from="alice@localhost/a"><body>hi</body></message>`;
  sink(env, "alice@localhost", true);
  // A message nobody here wrote keeps its envelope (its text is made when the batch is written).
  const other = Envelope.message({ from: "carol@localhost/c", to: "bob@localhost", protocol: "xmpp", payload: el, flags: Flag.Archive });
  sink(other, "bob@localhost", false);
  await w.flushed();
  assert.equal(w.stats.archived, 3);
  assert.equal(payloads.length, 2, "one text for the message's two entries, rendered once");
  assert.equal(payloads[0], env.written);
  assert.equal(payloads[1], other);
  const rows = await store.archive.query({ user: "alice", max: 5 });
  assert.equal(rows!.items[0].stanza, env.written);
  assert.equal((await store.archive.query({ user: "bob", max: 5 }))!.items.length, 1, "the same id for bob twice: one row");
  w.close();
  await store.close();
});
