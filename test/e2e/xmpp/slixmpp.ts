import { execFile, execFileSync, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import { startServer, FIXTURES, TLS_FILES, type TestServer } from "../../helpers.js";
import type { Online } from "./util.js";

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

/** A fresh server offering STARTTLS with the test certificate; `xmpp` is laid over its xmpp config; `storage` (null: a fresh SQLite file). */
export function startSlixmppServer(users: Record<string, string>, xmpp: Record<string, unknown> = {}, storage: Record<string, unknown> | null = null): Promise<TestServer> {
  const listeners = [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0, tls: TLS_FILES }];
  return startServer(storage === null ? { listeners, xmpp } : { listeners, xmpp, storage }, users);
}

/** Runs test/fixtures/`script` (port, CA file) against a fresh server with alice and bob (`xmpp` laid over its xmpp config); its output lines. */
export async function runSlixmpp(script: string, ms: number, xmpp: Record<string, unknown> = {}, storage: Record<string, unknown> | null = null): Promise<string[]> {
  const ts = await startSlixmppServer({ alice: "alice-pw", bob: "bob-pw" }, xmpp, storage);
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

/** A script that talks with the test by lines while it runs: read its stdout line by line, write to its stdin. */
export interface SlixmppScript {
  /** The next line of output, or a rejection (with stderr) at `ms` or if the script exits first. */
  line(ms: number): Promise<string>;
  tell(line: string): void;
  kill(): void;
}

export function spawnSlixmpp(script: string, args: string[]): SlixmppScript {
  const child = spawn(PYTHON, [join(FIXTURES, script), ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const lines: string[] = [];
  let wake: (() => void) | null = null;
  let exited = false;
  createInterface({ input: child.stdout! }).on("line", (l) => {
    lines.push(l);
    wake?.();
  });
  child.on("close", () => {
    exited = true;
    wake?.();
  });
  return {
    async line(ms) {
      const deadline = Date.now() + ms;
      while (lines.length === 0) {
        const left = deadline - Date.now();
        if (exited || left <= 0) throw new Error(`${exited ? "the script exited" : `no line in ${ms} ms`}; stderr: ${stderr.slice(-3000)}`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, left);
          wake = () => (clearTimeout(t), r());
        });
      }
      return lines.shift()!;
    },
    tell(line) {
      child.stdin!.write(`${line}\n`);
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill();
    },
  };
}

/** test/fixtures/slixmpp_component.py (XEP-0114) connected and through its handshake. */
export async function componentOnline(port: number, domain: string, secret: string, mode: "answer" | "silent"): Promise<SlixmppScript> {
  const c = spawnSlixmpp("slixmpp_component.py", [String(port), domain, secret, mode]);
  assert.equal(await c.line(15000), "online");
  return c;
}

let seq = 0;
/** An iq get of urn:test:echo from `u` to `to`; the whole answer stanza. */
export async function echo(u: Online, to: string, text: string, ms = 10000, ns = "urn:test:echo"): Promise<any> {
  const id = `echo-${++seq}`;
  await u.c.send(xml("iq", { type: "get", id, to }, xml("query", { xmlns: ns }, text)));
  return u.waitFor((el) => el.is("iq") && el.attrs.id === id, ms);
}
