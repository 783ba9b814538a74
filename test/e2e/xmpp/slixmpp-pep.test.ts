import { describe, test, after, before } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { FIXTURES, TLS_FILES } from "../../helpers.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";
import { SLIXMPP_SKIP, startSlixmppServer } from "./slixmpp.js";

// slixmpp's xep_0163, xep_0060 and xep_0115 plugins against the server's PEP, on each store
// (test/fixtures/slixmpp_pep.py says what each line checks).

const DL = "eu.siacs.conversations.axolotl.devicelist";
export const PEP_EXPECTED = [
  "pep identity True publish-options",
  `bob/one got publish alice@localhost ${DL} 1001`,
  `alice got publish bob@localhost ${DL} 2001,2002`,
  `bob/one got own publish bob@localhost ${DL} 2001,2002`,
  "bob/three last items alice@localhost=1001 bob@localhost=2001,2002",
  "items all n1 n2",
  "items max 1 n2",
  "item n1 n1",
  "carol reads open current",
  "carol reads presence node not-authorized/presence-subscription-required",
  "bob got retract alice@localhost urn:x:nick",
  "publish-options differ conflict/precondition-not-met",
  "malformed options bad-request/invalid-options",
  "bob reads whitelist not-allowed/closed-node",
  `disco items for alice ${DL} urn:x:nick urn:x:secret`,
  `disco items for bob ${DL} urn:x:nick`,
  `disco items for carol ${DL}`,
  "huge item not-acceptable/payload-too-big",
  "too many nodes not-allowed",
  "bob got delete urn:x:nick",
  "deleted node item-not-found",
  "bob/one and bob/three got 1001,1002",
  "bob/two events 0 carol events 0 whitelist events to bob 0",
];

export const PEP_LIMITS = { pep: { maxItemBytes: 4096, maxNodes: 4 } };

/** Runs the script against `addrs` ("host:port", alice on the first, the others on the last); its output lines. */
export function runPepScript(addrs: string[], ms: number): Promise<string[]> {
  return new Promise<string>((resolve, reject) => {
    execFile("/usr/bin/python3", [join(FIXTURES, "slixmpp_pep.py"), addrs.join(","), TLS_FILES.cert], { timeout: ms }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stdout}\n${stderr.slice(-3000)}`)) : resolve(stdout),
    );
  }).then((out) => out.trim().split("\n"));
}

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
