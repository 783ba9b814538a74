import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UploadFiles, retryAt } from "../../../src/upload/files.js";
import { Sweeper } from "../../../src/upload/sweeper.js";
import { newSlotId, userKey } from "../../../src/upload/slot.js";
import { silentLogger } from "../../../src/log/logger.js";

const KEY = Buffer.alloc(32, 1);

function put(files: UploadFiles, user: string, size: number, mtimeMs: number, ext = "data"): string {
  const id = newSlotId();
  const p = files.paths(user, id);
  mkdirSync(files.userDir(user), { recursive: true });
  writeFileSync(p.meta, JSON.stringify({ name: "f", type: "a/b", size }));
  const file = ext === "data" ? p.data : p.part;
  writeFileSync(file, Buffer.alloc(size));
  utimesSync(file, mtimeMs / 1000, mtimeMs / 1000);
  utimesSync(p.meta, mtimeMs / 1000, mtimeMs / 1000);
  return id;
}

test("usage: a user's complete files and uploads under way, expired files not counted; paths only from checked names", { timeout: 5000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "upload-files-"));
  try {
    const files = new UploadFiles(dir);
    const alice = userKey(KEY, "alice@localhost");
    const bob = userKey(KEY, "bob@localhost");
    assert.deepEqual(await files.usage(alice, 0), { bytes: 0, files: [] }, "no directory yet");
    const now = Date.now();
    put(files, alice, 100, now - 1000);
    put(files, alice, 50, now - 5000);
    put(files, alice, 30, now - 100_000);
    put(files, alice, 7, now, "part");
    put(files, bob, 1000, now);
    const u = await files.usage(alice, now - 50_000);
    assert.equal(u.bytes, 157, "100 + 50 complete, 7 arriving; the 30 expired");
    assert.equal(u.files.length, 2);
    assert.equal((await files.usage(alice, now - 50_000, false)).bytes, 150, "without parts");
    assert.equal((await files.usage(bob, 0)).bytes, 1000);
    assert.throws(() => files.userDir("../x"), /not a user key/);
    assert.throws(() => files.paths(alice, "../../etc/passwd"), /not a slot id/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("retryAt: when the oldest files' expiry makes room; never when expiry is off or the file exceeds the quota", { timeout: 5000 }, () => {
  const u = { bytes: 900, files: [{ size: 300, mtimeMs: 3000 }, { size: 500, mtimeMs: 1000 }, { size: 100, mtimeMs: 2000 }] };
  assert.equal(retryAt(u, 200, 1000, 10_000), 11_000, "the oldest (500 bytes) frees enough");
  assert.equal(retryAt(u, 700, 1000, 10_000), 12_000, "the two oldest are needed");
  assert.equal(retryAt(u, 1000, 1000, 10_000), 13_000, "all of them");
  assert.equal(retryAt({ bytes: 950, files: u.files }, 1000, 1000, 10_000), null, "50 bytes under way never expire");
  assert.equal(retryAt(u, 200, 1000, 0), null, "files kept for ever");
  assert.equal(retryAt(u, 2000, 1000, 10_000), null, "larger than the quota");
});

test("the sweeper removes expired files and stale leftovers, a bounded number of entries per tick, and keeps the rest", { timeout: 10_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "upload-sweep-"));
  try {
    const files = new UploadFiles(dir);
    const now = Date.now();
    const users = Array.from({ length: 5 }, (_, i) => userKey(KEY, `u${i}@localhost`));
    const expired: string[][] = [];
    const live: string[][] = [];
    for (const u of users) {
      for (let i = 0; i < 20; i++) expired.push([u, put(files, u, 10, now - 120_000)]);
      for (let i = 0; i < 5; i++) live.push([u, put(files, u, 10, now - 1000)]);
    }
    const stale = put(files, users[0], 5, now - 3_600_000, "part");
    const busy = put(files, users[1], 5, now - 3_600_000, "part");
    writeFileSync(join(dir, "not-a-user"), "x");
    const sweeper = new Sweeper(files, 60_000, (u, id) => u === users[1] && id === busy, silentLogger());
    let ticks = 0;
    while (sweeper.passes === 0) {
      const n = await sweeper.tick(now, 40);
      assert.ok(n <= 40, "bounded work per tick");
      ticks++;
      assert.ok(ticks < 100, "the pass ends");
    }
    assert.ok(ticks >= 7, `spread over ticks (${ticks})`);
    assert.equal(sweeper.removed, 100);
    for (const [u, id] of expired) assert.ok(!existsSync(files.paths(u, id).data) && !existsSync(files.paths(u, id).meta));
    for (const [u, id] of live) assert.ok(existsSync(files.paths(u, id).data) && existsSync(files.paths(u, id).meta));
    assert.ok(!existsSync(files.paths(users[0], stale).part) && !existsSync(files.paths(users[0], stale).meta), "a crashed upload's leftovers");
    assert.ok(existsSync(files.paths(users[1], busy).part), "an upload under way here is kept, however old");
    // Everything expires: the next pass leaves the user directories empty and removes them.
    while (sweeper.passes < 3) await sweeper.tick(now + 3_600_000, 1000);
    assert.deepEqual(readdirSync(dir).sort(), [users[1], "not-a-user"].sort(), "only the directory with an upload under way is left");
    await sweeper.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
