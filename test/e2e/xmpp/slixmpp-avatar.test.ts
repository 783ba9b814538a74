import { test } from "node:test";
import assert from "node:assert/strict";
import { runSlixmpp, SLIXMPP_SKIP } from "./slixmpp.js";

// XEP-0398 and XEP-0153 with slixmpp's xep_0084 and xep_0054 (test/fixtures/slixmpp_avatar.py says what each line checks).

test("slixmpp: PEP avatar and vCard photo kept in step, the hash in presence", { timeout: 60_000, skip: SLIXMPP_SKIP }, async () => {
  assert.deepEqual(await runSlixmpp("slixmpp_avatar.py", 50_000), [
    "conversion feature True",
    "presence hash after PEP publish ok",
    "vcard photo from PEP True",
    "metadata event from vCard ok",
    "avatar data from vCard True",
    "presence hash after vCard set ok",
  ]);
});
