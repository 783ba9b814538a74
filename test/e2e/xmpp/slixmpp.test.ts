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

// .ci/run installs Debian's python3-slixmpp; elsewhere the test says why it did not run.
test("slixmpp 1.8 logs in over STARTTLS with the strongest SCRAM, messages and pings through the server", { timeout: 15_000, skip: hasSlixmpp() ? false : "python3-slixmpp is not installed" }, async () => {
  const ts = await startServer(
    { listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0, tls: TLS_FILES }] },
    { alice: "alice-pw", bob: "bob-pw" },
  );
  try {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(PYTHON, [join(FIXTURES, "slixmpp_check.py"), String(ts.port("xmpp", "tcp")), TLS_FILES.cert], { timeout: 30_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout),
      );
    });
    const lines = out.trim().split("\n");
    // The -PLUS variant: slixmpp binds with tls-unique even on TLS 1.3, which we accept.
    assert.match(lines[0], /^mechanism SCRAM-SHA-256-PLUS$/);
    assert.equal(lines[1], "message alice@localhost/sx hello from slixmpp");
    assert.equal(lines[2], "ping ok");
    assert.equal(lines[3], "ping absent service-unavailable");
  } finally {
    await ts.stop();
  }
});
