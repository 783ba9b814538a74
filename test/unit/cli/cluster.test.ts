import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseOpsArgs } from "../../../src/cli/cluster.js";
import { formatTable } from "../../../src/cli/table.js";
import { freePort } from "../../../bench/lib/proc.js";

const MAIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "src", "cli", "main.js");

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = execFile(process.execPath, [MAIN, ...args], { timeout: 15_000 }, (_e, stdout, stderr) => resolve({ code: c.exitCode, stdout, stderr }));
  });
}

test("parseOpsArgs: --json, --timeout MS or =MS, one JID; anything else refused", { timeout: 5_000 }, () => {
  assert.deepEqual(parseOpsArgs([]), { json: false, timeoutMs: 2000, match: null });
  assert.deepEqual(parseOpsArgs(["--json", "--timeout", "500", "a@b/c"]), { json: true, timeoutMs: 500, match: "a@b/c" });
  assert.deepEqual(parseOpsArgs(["--timeout=3000"]), { json: false, timeoutMs: 3000, match: null });
  assert.throws(() => parseOpsArgs(["--timeout", "x"]), /--timeout/);
  assert.throws(() => parseOpsArgs(["--timeout", "5"]), /--timeout/);
  assert.throws(() => parseOpsArgs(["--verbose"]), /unexpected/);
  assert.throws(() => parseOpsArgs(["a@b", "c@d"]), /unexpected/);
});

test("formatTable pads each column to its widest cell, the last column unpadded", { timeout: 5_000 }, () => {
  assert.equal(formatTable([["A", "BB", "C"], ["xxx", "y", "z"]]), "A    BB  C\nxxx  y   z");
});

test("with the local bus, cluster status and sessions say they need NATS and exit 1", { timeout: 30_000 }, async () => {
  for (const args of [["cluster", "status"], ["sessions"]]) {
    const r = await run(args);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /over NATS, and the configuration has cluster\.bus "local"/);
  }
});

test("NATS unreachable: the command names the servers it tried and exits 1", { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-ops-"));
  try {
    const port = await freePort();
    const cfg = join(dir, "c.json");
    writeFileSync(cfg, JSON.stringify({ storage: { type: "sqlite", path: "x.sqlite" }, cluster: { bus: "nats", nats: { servers: [`nats://127.0.0.1:${port}`], subject: "nobody" } } }));
    const r = await run(["cluster", "status", "--config", cfg]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot reach NATS at nats://127\\.0\\.0\\.1:${port}`));
    const u = await run(["cluster", "bogus", "--config", cfg]);
    assert.equal(u.code, 2, u.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
