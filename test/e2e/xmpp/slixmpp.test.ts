import { test } from "node:test";
import assert from "node:assert/strict";
import { SLIXMPP_SKIP, runSlixmpp } from "./slixmpp.js";

// .ci/run installs Debian's python3-slixmpp; elsewhere the test says why it did not run.
test("slixmpp 1.8 logs in over STARTTLS with the strongest SCRAM, messages and pings through the server", { timeout: 15_000, skip: SLIXMPP_SKIP }, async () => {
  const lines = await runSlixmpp("slixmpp_check.py", 30_000);
  // The -PLUS variant: slixmpp binds with tls-unique even on TLS 1.3, which we accept.
  assert.match(lines[0], /^mechanism SCRAM-SHA-256-PLUS$/);
  assert.equal(lines[1], "message alice@localhost/sx hello from slixmpp");
  assert.equal(lines[2], "ping ok");
  assert.equal(lines[3], "ping absent service-unavailable");
});
