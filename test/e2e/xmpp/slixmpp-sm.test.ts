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

// slixmpp's xep_0198 plugin, an independent client: enable with resumption, a cut connection, resume, counts.
test("slixmpp xep_0198: enabled with resume, connection aborted mid-conversation, resumed, every message once, in order", { timeout: 40_000, skip: hasSlixmpp() ? false : "python3-slixmpp is not installed" }, async () => {
  const ts = await startServer(
    { listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0, tls: TLS_FILES }] },
    { alice: "alice-pw", bob: "bob-pw" },
  );
  try {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(PYTHON, [join(FIXTURES, "slixmpp_sm.py"), String(ts.port("xmpp", "tcp")), TLS_FILES.cert], { timeout: 35_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout),
      );
    });
    assert.deepEqual(out.trim().split("\n"), ["enabled resume True id True", "resumed", "duplicates 0 lost 0 in order True"]);
  } finally {
    await ts.stop();
  }
});
