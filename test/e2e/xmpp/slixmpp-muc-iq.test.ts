import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { FIXTURES, TLS_FILES } from "../../helpers.js";
import { SLIXMPP_SKIP } from "./slixmpp.js";
import { startPair } from "./muc-util.js";
import { deriveCredentials } from "../../../src/store/scram.js";

// slixmpp clients asking each other through a room (XEP-0045 §7.5 for iqs: xep_0092, xep_0199, xep_0054),
// occupants on two workers of one process, STARTTLS with the test certificate (test/fixtures/slixmpp_muc_iq.py).

const ROOM = "sxiq@conference.localhost";
const EXPECTED = [
  `version slix-bob ${ROOM}/Bob`,
  "ping True",
  `vcard feature-not-implemented from ${ROOM}/Bob`,
  `nobody item-not-found from ${ROOM}/Nobody`,
  `carol not-acceptable from ${ROOM}/Bob`,
];

test("slixmpp: iqs to room/nick answered by the occupant's own client, from room/nick; refusals", { timeout: 90_000, skip: SLIXMPP_SKIP }, async () => {
  const users = ["alice", "bob", "carol"];
  const pair = await startPair(users, {}, undefined, true);
  try {
    for (const u of users) await pair.a.store.putUser(u, await deriveCredentials(`${u}-pw`, 4096));
    const out = await new Promise<string>((resolve, reject) => {
      execFile("/usr/bin/python3", [join(FIXTURES, "slixmpp_muc_iq.py"), String(pair.portA), String(pair.portB), TLS_FILES.cert], { timeout: 80_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stdout}\n${stderr.slice(-3000)}`)) : resolve(stdout),
      );
    });
    const lines = out.split("\n").filter((l) => l.startsWith("= ")).map((l) => l.slice(2));
    assert.deepEqual(lines, EXPECTED);
  } finally {
    await pair.stop();
  }
});
