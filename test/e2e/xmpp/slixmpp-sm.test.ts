import { test } from "node:test";
import assert from "node:assert/strict";
import { SLIXMPP_SKIP, runSlixmpp } from "./slixmpp.js";

// slixmpp's xep_0198 plugin, an independent client: enable with resumption, a cut connection, resume, counts.
test("slixmpp xep_0198: enabled with resume, connection aborted mid-conversation, resumed, every message once, in order", { timeout: 40_000, skip: SLIXMPP_SKIP }, async () => {
  const lines = await runSlixmpp("slixmpp_sm.py", 35_000);
  assert.deepEqual(lines, ["enabled resume True id True", "resumed", "duplicates 0 lost 0 in order True"]);
});
