import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { join } from "node:path";
import { startServer, FIXTURES, TLS_FILES } from "../../helpers.js";

const PYTHON = "/usr/bin/python3";

function hasSlixmpp(): boolean {
  try {
    execFileSync(PYTHON, ["-c", "import slixmpp"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

// slixmpp's xep_0280 plugin checks what Gajim and profanity check: the feature, enable, and copies from the own bare JID.
test("slixmpp xep_0280: enable on two resources, received and sent carbons", { timeout: 20_000, skip: hasSlixmpp() ? false : "python3-slixmpp is not installed" }, async () => {
  const ts = await startServer(
    { listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0, tls: TLS_FILES }] },
    { alice: "alice-pw", bob: "bob-pw" },
  );
  try {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(PYTHON, [join(FIXTURES, "slixmpp_carbons.py"), String(ts.port("xmpp", "tcp")), TLS_FILES.cert], { timeout: 30_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout),
      );
    });
    assert.deepEqual(out.trim().split("\n"), [
      "feature True",
      "enabled",
      "received bob@localhost/b alice@localhost/one to one",
      "sent alice@localhost/one bob@localhost from one",
    ]);
  } finally {
    await ts.stop();
  }
});
