import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { parseUserLines, importUsers } from "../../../src/cli/users.js";
import { SqliteStore } from "../../../src/store/sqlite-store.js";
import { verifyPassword } from "../../../src/store/scram.js";

const MAIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "src", "cli", "main.js");
const run = promisify(execFile);

test("parseUserLines: user,password lines; blanks and comments skipped; errors name the line", { timeout: 10_000 }, () => {
  const { users, errors } = parseUserLines(
    ["# accounts", "alice,pencil", "", "Bob,pass,with,commas", "   ", "carol,", "no-comma", "bad user,x", "dave, spaced ", "eve,p\r", ""].join("\n"),
  );
  assert.deepEqual(users, [
    ["alice", "pencil"],
    ["bob", "pass,with,commas"],
    ["dave", " spaced "],
    ["eve", "p"],
  ]);
  assert.deepEqual(errors, ["line 6: expected user,password", "line 7: expected user,password", "line 8: expected user,password"]);
  assert.deepEqual(parseUserLines("a,1\r\nb,2\r\n").users, [
    ["a", "1"],
    ["b", "2"],
  ]);
});

test("importUsers derives SCRAM credentials for each user and writes them all", { timeout: 10_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-unit-"));
  const store = new SqliteStore(join(dir, "db.sqlite"));
  try {
    const users: [string, string][] = Array.from({ length: 20 }, (_, i) => [`u${i}`, `pw${i}`]);
    assert.equal(await importUsers(store, users, 4096, 4), 20);
    assert.equal((await store.listUsers()).length, 20);
    assert.equal(await verifyPassword((await store.credentials("u7"))!, "pw7"), true);
    assert.equal(await verifyPassword((await store.credentials("u7"))!, "pw8"), false);
    assert.equal(await importUsers(store, [], 4096), 0);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [MAIN, ...args]);
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

test("the CLI as a subprocess: users add, list, delete, import; a bad config key fails naming it", { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-cli-"));
  try {
    const config = join(dir, "config.json");
    writeFileSync(config, JSON.stringify({ storage: { type: "sqlite", path: "db.sqlite" }, log: { level: "error" } }));
    const c = ["--config", config];

    let r = await cli(["users", "add", "Alice", "pencil", ...c]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /added alice@localhost/);
    assert.equal((await cli(["users", "add", "bob", "pw", ...c])).code, 0);
    r = await cli(["users", "list", ...c]);
    assert.deepEqual(r.stdout.trim().split("\n"), ["alice", "bob"]);

    r = await cli(["users", "delete", "bob", ...c]);
    assert.equal(r.code, 0);
    r = await cli(["users", "delete", "bob", ...c]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /no such user: bob/);

    const file = join(dir, "users.csv");
    writeFileSync(file, "carol,c1\ndave,d1\n# comment\n");
    r = await cli(["users", "import", file, ...c]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /imported 2 users/);
    r = await cli(["users", "list", ...c]);
    assert.deepEqual(r.stdout.trim().split("\n"), ["alice", "carol", "dave"]);

    // The password is checkable, and stored as SCRAM keys only.
    const store = new SqliteStore(join(dir, "db.sqlite"));
    try {
      assert.equal(await verifyPassword((await store.credentials("alice"))!, "pencil"), true);
    } finally {
      await store.close();
    }

    writeFileSync(file, "erin,e1\nbroken\n");
    r = await cli(["users", "import", file, ...c]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /line 2: expected user,password/);

    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ timeouts: { relay: { defualtMs: 10 } } }));
    r = await cli(["users", "list", "--config", bad]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /timeouts\.relay\.defualtMs/);

    r = await cli(["users", "frobnicate", ...c]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /usage/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
