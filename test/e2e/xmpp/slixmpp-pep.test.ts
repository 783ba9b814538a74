import { describe, test, after, before } from "node:test";
import assert from "node:assert/strict";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";
import { SLIXMPP_SKIP, startSlixmppServer } from "./slixmpp.js";
import { PEP_EXPECTED, PEP_LIMITS, runPepScript } from "./pep-script.js";

// slixmpp's xep_0163, xep_0060 and xep_0115 plugins against the server's PEP, on each store
// (test/fixtures/slixmpp_pep.py says what each line checks).

async function run(storage: Record<string, unknown> | null): Promise<string[]> {
  const ts = await startSlixmppServer({ alice: "alice-pw", bob: "bob-pw", carol: "carol-pw" }, PEP_LIMITS, storage);
  try {
    return await runPepScript([`127.0.0.1:${ts.port("xmpp", "tcp")}`], 70_000);
  } finally {
    await ts.stop();
  }
}

test("slixmpp: PEP with caps, OMEMO device lists, last items, options, limits (SQLite)", { timeout: 90_000, skip: SLIXMPP_SKIP }, async () => {
  assert.deepEqual(await run(null), PEP_EXPECTED);
});

describe("slixmpp PEP on PostgreSQL", { skip: SLIXMPP_SKIP || (HAVE_POSTGRES ?? false) }, () => {
  let pgs: PostgresServer;
  before(async () => void (pgs = await startPostgres()));
  after(() => pgs?.stop());
  test("slixmpp: PEP (PostgreSQL)", { timeout: 90_000 }, async () => {
    assert.deepEqual(await run({ type: "postgres", postgres: await pgs.createDatabase("pep") }), PEP_EXPECTED);
  });
});
