import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { FIXTURES, TLS_FILES } from "../../helpers.js";
import { SLIXMPP_SKIP } from "./slixmpp.js";
import { startPair } from "./muc-util.js";
import { deriveCredentials } from "../../../src/store/scram.js";

// slixmpp's xep_0045 plugin against the MUC service, occupants on two workers of one process (LocalHub),
// STARTTLS with the test certificate (test/fixtures/slixmpp_muc.py says what each line checks).

const EXPECTED = [
  "service listed True",
  "created [110, 201] owner moderator",
  "form True True",
  "configured ['Slix room']",
  "bob joined [110] ['Alice', 'Bob']",
  "carol as Bob conflict",
  "alice got ['hello 0', 'hello 1', 'hello 2'] {'sx@conference.localhost/Alice'}",
  "bob got ['hello 0', 'hello 1', 'hello 2'] {'sx@conference.localhost/Alice'}",
  "carol got ['hello 0', 'hello 1', 'hello 2'] {'sx@conference.localhost/Alice'}",
  "dave history ['hello 1', 'hello 2']",
  "subject Slix topic Alice",
  "pm sx@conference.localhost/Bob chat",
  "nick change Bob Robert [303]",
  "kicked [110, 307] quiet",
  "banned [110, 301]",
  "carol again forbidden",
  "outcasts ['carol@localhost']",
  "invited sx@conference.localhost alice@localhost/sx come back later",
  "destroyed Robert",
];

test("slixmpp xep_0045: create, configure, join, conflict, groupchat, history, subject, private message, nick change, kick, ban, invite, destroy", { timeout: 120_000, skip: SLIXMPP_SKIP }, async () => {
  const users = ["alice", "bob", "carol", "dave", "eve"];
  const pair = await startPair(users, {}, undefined, true);
  try {
    // startPair's users have `<name>-pass`; the script's, `<name>-pw`.
    for (const u of users) await pair.a.store.putUser(u, await deriveCredentials(`${u}-pw`, 4096));
    const out = await new Promise<string>((resolve, reject) => {
      execFile("/usr/bin/python3", [join(FIXTURES, "slixmpp_muc.py"), String(pair.portA), String(pair.portB), TLS_FILES.cert], { timeout: 100_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stdout}\n${stderr.slice(-3000)}`)) : resolve(stdout),
      );
    });
    const lines = out.split("\n").filter((l) => l.startsWith("= ")).map((l) => l.slice(2));
    assert.deepEqual(lines, EXPECTED);
  } finally {
    await pair.stop();
  }
});
