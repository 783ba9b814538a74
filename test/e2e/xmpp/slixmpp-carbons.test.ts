import { test } from "node:test";
import assert from "node:assert/strict";
import { SLIXMPP_SKIP, runSlixmpp } from "./slixmpp.js";

// slixmpp's xep_0280 plugin checks what Gajim and profanity check: the feature, enable, and copies from the own bare JID.
test("slixmpp xep_0280: enable on two resources, received and sent carbons", { timeout: 20_000, skip: SLIXMPP_SKIP }, async () => {
  const lines = await runSlixmpp("slixmpp_carbons.py", 30_000);
  assert.deepEqual(lines, [
    "feature True",
    "enabled",
    "received bob@localhost/b alice@localhost/one to one",
    "sent alice@localhost/one bob@localhost from one",
  ]);
});
