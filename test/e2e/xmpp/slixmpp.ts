import { execFile, execFileSync } from "node:child_process";
import { join } from "node:path";
import { startServer, FIXTURES, TLS_FILES } from "../../helpers.js";

// slixmpp (Debian's python3-slixmpp, installed by .ci/run) as an independent client: each
// test runs one script of test/fixtures against a server offering STARTTLS with the test certificate.

const PYTHON = "/usr/bin/python3";

function hasSlixmpp(): boolean {
  try {
    execFileSync(PYTHON, ["-c", "import slixmpp"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** For a test's `skip`: false, or why it cannot run here. */
export const SLIXMPP_SKIP: false | string = hasSlixmpp() ? false : "python3-slixmpp is not installed";

/** Runs test/fixtures/`script` (port, CA file) against a fresh server with alice and bob; its output lines. */
export async function runSlixmpp(script: string, ms: number): Promise<string[]> {
  const ts = await startServer({ listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0, tls: TLS_FILES }] }, { alice: "alice-pw", bob: "bob-pw" });
  try {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(PYTHON, [join(FIXTURES, script), String(ts.port("xmpp", "tcp")), TLS_FILES.cert], { timeout: ms }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout),
      );
    });
    return out.trim().split("\n");
  } finally {
    await ts.stop();
  }
}
