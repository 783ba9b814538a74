import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { FIXTURES, TLS_FILES } from "../../helpers.js";
import { SLIXMPP_SKIP } from "./slixmpp.js";
import { startPair } from "./muc-util.js";
import { deriveCredentials } from "../../../src/store/scram.js";

// slixmpp's xep_0313 (with xep_0045, xep_0059, xep_0359) against a room's archive, occupants on two
// workers of one process, STARTTLS with the test certificate (test/fixtures/slixmpp_muc_mam.py).

const ROOM = "sxarch@conference.localhost";
const EXPECTED = [
  `stanza-id by ${ROOM} 5`,
  "features True True",
  "forwards g0 g1 g2 g3 g4 True",
  `from {'${ROOM}'} {'${ROOM}/Alice'}`,
  "backwards g4 g3 g2 g1 g0",
  "with Alice 5",
  "fields end start with",
  "carol forbidden",
];

test("slixmpp xep_0313 on a room: stanza ids by the room, paging both ways, with, the form, a non-member refused", { timeout: 90_000, skip: SLIXMPP_SKIP }, async () => {
  const users = ["alice", "bob", "carol"];
  const pair = await startPair(users, { mam: { enabled: true } }, undefined, true);
  try {
    for (const u of users) await pair.a.store.putUser(u, await deriveCredentials(`${u}-pw`, 4096));
    const out = await new Promise<string>((resolve, reject) => {
      execFile("/usr/bin/python3", [join(FIXTURES, "slixmpp_muc_mam.py"), String(pair.portA), String(pair.portB), TLS_FILES.cert], { timeout: 80_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stdout}\n${stderr.slice(-3000)}`)) : resolve(stdout),
      );
    });
    const lines = out.split("\n").filter((l) => l.startsWith("= ")).map((l) => l.slice(2));
    assert.deepEqual(lines, EXPECTED);
  } finally {
    await pair.stop();
  }
});
