import { test } from "node:test";
import assert from "node:assert/strict";
import { SLIXMPP_SKIP, runSlixmpp } from "./slixmpp.js";

// slixmpp's xep_0313, xep_0059 and xep_0359 plugins, as Gajim and Poezio use them: a second device
// pages through the archive both ways; delivered messages carry the recipient's stanza-id and the origin-id.
test("slixmpp xep_0313/xep_0059/xep_0359: stanza ids, the history paged forwards and backwards, with, the form", { timeout: 40_000, skip: SLIXMPP_SKIP }, async () => {
  const lines = await runSlixmpp("slixmpp_mam.py", 40_000, { mam: { enabled: true } });
  assert.deepEqual(lines, [
    "stanza-id by alice@localhost,bob@localhost",
    "features True True",
    "forwards a0 a1 b2 a3 a4 b5 a6",
    "backwards a6 b5 a4 a3 b2 a1 a0",
    "with bob 7",
    "fields end start with",
  ]);
});
