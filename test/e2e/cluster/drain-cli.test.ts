import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { RelayClient, RelayError } from "../../../src/relay/client.js";
import type { Header } from "../../../src/relay/codec.js";
import { waitUntil, within } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { online, rawLogin } from "../xmpp/util.js";

const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "src", "cli", "main.js");

/** `switchboard start`, one worker, clients connected (one of them not reading): SIGTERM drains and exits 0 in time. */
test("the CLI on SIGTERM drains its clients and exits 0 within drainTimeoutMs", { timeout: 40_000 }, async () => {
  const DRAIN = 2000;
  const dir = mkdtempSync(join(tmpdir(), "switchboard-drain-"));
  const relayPort = await freePort();
  const xmppPort = await freePort();
  const cfg = join(dir, "config.json");
  writeFileSync(
    cfg,
    JSON.stringify({
      log: { level: "info", format: "json" },
      listeners: [
        { protocol: "relay", transport: "tcp", host: "127.0.0.1", port: relayPort },
        { protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: xmppPort },
      ],
      storage: { type: "sqlite", path: "db.sqlite" },
      xmpp: { allowPlainWithoutTls: true },
      limits: { maxOutboundBytes: 256 << 20 },
      admin: { port: 0 },
      drainTimeoutMs: DRAIN,
    }),
  );
  writeFileSync(join(dir, "users.csv"), ["dave,pw", "erin,pw", "alice,pw", "bob,pw", "frank,pw"].join("\n"));
  const imp = spawnSync(process.execPath, [CLI, "users", "import", join(dir, "users.csv"), "--config", cfg], { encoding: "utf8" });
  assert.equal(imp.status, 0, imp.stderr);
  const host = spawn(process.execPath, [CLI, "start", "--config", cfg], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  host.stderr!.on("data", (b: Buffer) => (stderr += b));
  const logLine = (message: string): Record<string, unknown> | undefined =>
    stderr
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.message === message);
  try {
    await waitUntil(() => logLine("switchboard started") !== undefined, 15_000, () => `the server to start; stderr:\n${stderr}`, 20);
    const adminPort = Number(logLine("admin listening")!.port);

    const dave = await RelayClient.connect({ port: relayPort });
    await dave.login({ user: "dave", password: "pw", resource: "gw" });
    const erin = await RelayClient.connect({ port: relayPort });
    await erin.login({ user: "erin", password: "pw", resource: "gw" });
    const daveFrames: Header[] = [];
    dave.on("frame", (h: Header) => daveFrames.push(h));
    const asked = new Promise<void>((r) => erin.once("request", () => r()));
    const pending = dave.request("erin@localhost/gw", "", 60_000).then(
      () => "answered",
      (e: RelayError) => e.code,
    );
    await within(asked, 5000, "erin to get the request");
    const frank = await online(xmppPort, "frank", "pw", { resource: "lib" });
    const frankErrors: string[] = [];
    frank.c.on("error", (e: { condition?: string }) => frankErrors.push(String(e.condition)));
    // alice does not read; bob fills her queue.
    const alice = await rawLogin(xmppPort, "alice", "pw", "slow");
    const bob = await rawLogin(xmppPort, "bob", "pw", "desk");
    alice.pause();
    let out = "";
    for (let i = 0; i < 3000; i++) out += `<message to='alice@localhost/slow' type='chat'><body>${"z".repeat(8000)}</body></message>`;
    bob.send(out + `<iq type='get' id='settle' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await bob.until(/id=["']settle["']/, 15_000);

    const t0 = performance.now();
    const exited = new Promise<number | null>((resolve) => host.once("exit", (code) => resolve(code)));
    host.kill("SIGTERM");
    // While alice holds the drain open, the host says it is not ready.
    await waitUntil(() => logLine("draining") !== undefined, 2000, () => `the drain to start; stderr:\n${stderr}`, 10);
    const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
    assert.equal(ready.status, 503);
    assert.match(await ready.text(), /draining/);

    assert.equal(await within(exited, DRAIN + 3000, () => `the host to exit; stderr:\n${stderr}`), 0, stderr);
    const took = performance.now() - t0;
    assert.ok(took < DRAIN + 3000, `exited in ${took.toFixed(0)} ms`);
    assert.equal(await pending, "unavailable", "the pending request failed with unavailable");
    assert.deepEqual(daveFrames.at(-1), { t: "err", code: "unavailable", text: "server shutdown" });
    await bob.whenClosed(1000);
    assert.match(bob.text, /<system-shutdown/);
    await waitUntil(() => frankErrors.includes("system-shutdown"), 1000, () => `frank's stream error; got ${frankErrors}`);
    alice.resume();
    await alice.whenClosed(5000);
    assert.ok(logLine("switchboard stopped") !== undefined, stderr);
  } finally {
    if (host.exitCode === null) host.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});
