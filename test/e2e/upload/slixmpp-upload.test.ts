import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { join } from "node:path";
import { FIXTURES, TLS_FILES, startServer } from "../../helpers.js";
import { SLIXMPP_SKIP } from "../xmpp/slixmpp.js";

// slixmpp's xep_0363 plugin (and aiohttp, which it uploads with) against the service over HTTPS:
// test/fixtures/slixmpp_upload.py says what each line checks.

/** The plugin uploads with aiohttp, which Debian's python3-slixmpp only recommends. */
function aiohttpSkip(): false | string {
  if (SLIXMPP_SKIP) return SLIXMPP_SKIP;
  try {
    execFileSync("/usr/bin/python3", ["-c", "import aiohttp"], { stdio: "ignore" });
    return false;
  } catch {
    return "python3-aiohttp is not installed (slixmpp's xep_0363 uploads with it)";
  }
}

test("slixmpp: 10 MB uploaded with xep_0363 and downloaded byte for byte over HTTPS; size and quota refusals", { timeout: 120_000, skip: aiohttpSkip() }, async () => {
  const ts = await startServer(
    {
      listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0, tls: TLS_FILES }],
      upload: { enabled: true, http: { port: 0, tls: TLS_FILES }, maxFileBytes: 11 * 1024 * 1024, quotaBytes: 15 * 1024 * 1024 },
    },
    { alice: "alice-pw", bob: "bob-pw" },
  );
  try {
    const out = await new Promise<string>((resolve, reject) => {
      execFile("/usr/bin/python3", [join(FIXTURES, "slixmpp_upload.py"), String(ts.port("xmpp", "tcp")), TLS_FILES.cert, ts.dir], { timeout: 100_000, env: { ...process.env, SSL_CERT_FILE: TLS_FILES.cert } }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stdout}\n${stderr.slice(-3000)}`)) : resolve(stdout),
      );
    });
    assert.deepEqual(out.trim().split("\n"), [
      `service upload.localhost max ${11 * 1024 * 1024}`,
      "uploaded https ten%20megabytes.bin",
      "download 200 application/octet-stream 10485760 equal True",
      `plugin refuses ${12 * 1024 * 1024} ${11 * 1024 * 1024}`,
      `server refuses not-acceptable ${11 * 1024 * 1024}`,
      "quota resource-constraint retry",
      "bob slot True",
    ]);
  } finally {
    await ts.stop();
  }
});
