import { describe, test, after, before } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { FIXTURES, TLS_FILES } from "../../helpers.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";
import { SLIXMPP_SKIP, startSlixmppServer } from "./slixmpp.js";
import { packageVersion } from "../../../src/xmpp/modules/version.js";

// slixmpp's xep_0030, xep_0092, xep_0054 and xep_0191 plugins against the server, on each store
// (test/fixtures/slixmpp_profile.py says what each line checks).

const EXPECTED = [
  "features urn:xmpp:blocking vcard-temp jabber:iq:version",
  "items 0",
  `version Switchboard ${packageVersion()} no-os`,
  "own vcard Alice Example",
  "bob reads alice Alice Example ['al']",
  "nobody item-not-found",
  "big not-acceptable",
  "after big Alice Example",
  "empty 0 0",
  "push one block alice@localhost spam.example x@localhost/r",
  "push two block alice@localhost spam.example x@localhost/r",
  "list alice@localhost spam.example x@localhost/r",
  "alice saw bob unavailable",
  "alice's message to full service-unavailable bob@localhost/one",
  "alice's ping service-unavailable",
  "bob's ping not-acceptable blocked",
  "bob's message not-acceptable blocked",
  "alice reads bob's vcard service-unavailable",
  "bob got from alice 0 0",
  "new login sees bob 0",
  "bad jid-malformed",
  "bad bad-request",
  "bad jid-malformed",
  "bad bad-request",
  "list size 3",
  "push unblock 0",
  "alice sees bob again",
  "second login sees bob again",
  "delivered after unblock",
];

async function run(storage: Record<string, unknown> | null): Promise<string[]> {
  const ts = await startSlixmppServer({ alice: "alice-pw", bob: "bob-pw" }, { maxVcardBytes: 4096 }, storage);
  try {
    const out = await new Promise<string>((resolve, reject) => {
      execFile("/usr/bin/python3", [join(FIXTURES, "slixmpp_profile.py"), String(ts.port("xmpp", "tcp")), TLS_FILES.cert], { timeout: 40_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stdout}\n${stderr.slice(-3000)}`)) : resolve(stdout),
      );
    });
    return out.trim().split("\n");
  } finally {
    await ts.stop();
  }
}

test("slixmpp: disco, version, vcard-temp and blocking (SQLite)", { timeout: 60_000, skip: SLIXMPP_SKIP }, async () => {
  assert.deepEqual(await run(null), EXPECTED);
});

describe("slixmpp on PostgreSQL", { skip: SLIXMPP_SKIP || (HAVE_POSTGRES ?? false) }, () => {
  let pgs: PostgresServer;
  before(async () => void (pgs = await startPostgres()));
  after(() => pgs?.stop());
  test("slixmpp: disco, version, vcard-temp and blocking (PostgreSQL)", { timeout: 60_000 }, async () => {
    assert.deepEqual(await run({ type: "postgres", postgres: await pgs.createDatabase("profile") }), EXPECTED);
  });
});
