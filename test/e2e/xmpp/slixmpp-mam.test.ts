import { describe, test, after, before } from "node:test";
import assert from "node:assert/strict";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";
import { SLIXMPP_SKIP, runSlixmpp } from "./slixmpp.js";

// slixmpp's xep_0313, xep_0059 and xep_0359 plugins, as Gajim and Poezio use them: a second device
// pages through the archive both ways; delivered messages carry the recipient's stanza-id and the origin-id.
// On each store: on PostgreSQL the rows are made and inserted on the archive's thread (postgres-archive-thread-main.ts).
const EXPECTED = [
  "stanza-id by alice@localhost,bob@localhost",
  "features True True",
  "forwards a0 a1 b2 a3 a4 b5 a6",
  "backwards a6 b5 a4 a3 b2 a1 a0",
  "with bob 7",
  "fields end start with",
];

test("slixmpp xep_0313/xep_0059/xep_0359: stanza ids, the history paged forwards and backwards, with, the form", { timeout: 40_000, skip: SLIXMPP_SKIP }, async () => {
  assert.deepEqual(await runSlixmpp("slixmpp_mam.py", 40_000, { mam: { enabled: true } }), EXPECTED);
});

describe("slixmpp MAM on PostgreSQL", { skip: SLIXMPP_SKIP || (HAVE_POSTGRES ?? false) }, () => {
  let pgs: PostgresServer;
  before(async () => void (pgs = await startPostgres()));
  after(() => pgs?.stop());
  test("slixmpp xep_0313/xep_0059/xep_0359 (PostgreSQL)", { timeout: 60_000 }, async () => {
    assert.deepEqual(await runSlixmpp("slixmpp_mam.py", 40_000, { mam: { enabled: true } }, { type: "postgres", postgres: await pgs.createDatabase("mam") }), EXPECTED);
  });
});
