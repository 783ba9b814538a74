import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isSlotId, isUserKey, loadUploadKey, newSlotId, signSlot, slotPath, userKey, verifySlot, type Slot } from "../../../src/upload/slot.js";

const KEY = Buffer.alloc(32, 7);
const slot = (over: Partial<Slot> = {}): Slot => ({ user: userKey(KEY, "alice@localhost"), id: newSlotId(), name: "très cool.jpg", size: 23456, type: "image/jpeg", expires: 2_000_000, ...over });

test("a signed slot verifies with its key, and gives back exactly what was signed", { timeout: 5000 }, () => {
  const s = slot();
  assert.deepEqual(verifySlot(KEY, signSlot(KEY, s), 1_000_000), s);
  assert.ok(isUserKey(s.user) && isSlotId(s.id));
  assert.notEqual(newSlotId(), newSlotId());
  assert.equal(userKey(KEY, "alice@localhost"), s.user, "a user's key is stable");
  assert.notEqual(userKey(KEY, "bob@localhost"), s.user);
  assert.notEqual(userKey(Buffer.alloc(32, 8), "alice@localhost"), s.user, "and depends on the secret");
  assert.equal(slotPath(s), `/${s.user}/${s.id}/tr%C3%A8s%20cool.jpg`);
});

test("a forged, altered, expired or malformed token is refused with its reason", { timeout: 5000 }, () => {
  const s = slot();
  const t = signSlot(KEY, s);
  assert.equal(verifySlot(Buffer.alloc(32, 8), t, 0), "forged", "another key");
  const [payload, mac] = t.split(".");
  // Another size under the same MAC: the signature covers the payload.
  const bigger = Buffer.from(JSON.stringify([s.user, s.id, s.name, 999999999, s.type, s.expires])).toString("base64url");
  assert.equal(verifySlot(KEY, `${bigger}.${mac}`, 0), "forged");
  assert.equal(verifySlot(KEY, `${payload}.${mac.slice(0, -2)}`, 0), "forged", "a truncated MAC");
  assert.equal(verifySlot(KEY, t, s.expires + 1), "expired");
  assert.deepEqual(verifySlot(KEY, t, s.expires), s, "valid up to its expiry");
  for (const bad of ["", ".", "abc", "a.b.c", ".abc", payload, "x".repeat(5000)]) assert.equal(verifySlot(KEY, bad, 0), "malformed", bad.slice(0, 20));
  assert.equal(verifySlot(KEY, "a.b", 0), "forged", "well formed, wrong MAC");
});

test("a payload that is signed but not a slot is malformed (no path can come from it)", { timeout: 5000 }, () => {
  // Signed by hand with the right key: verifySlot must still refuse what could name a path.
  const s = slot({ user: "../../etc" });
  assert.equal(verifySlot(KEY, signSlot(KEY, s), 0), "malformed");
  assert.equal(verifySlot(KEY, signSlot(KEY, slot({ id: "a/b" })), 0), "malformed");
  assert.equal(verifySlot(KEY, signSlot(KEY, slot({ size: 1.5 })), 0), "malformed");
});

test("the key: upload.secret, else made once into the directory (0600) and read back by every process", { timeout: 5000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "upload-key-"));
  try {
    assert.deepEqual(loadUploadKey("s".repeat(32), dir), Buffer.from("s".repeat(32)));
    const a = loadUploadKey(null, join(dir, "sub"));
    assert.equal(a.length, 32);
    assert.deepEqual(loadUploadKey(null, join(dir, "sub")), a, "the same key the second time");
    assert.equal(statSync(join(dir, "sub", "upload.key")).mode & 0o777, 0o600);
    assert.match(readFileSync(join(dir, "sub", "upload.key"), "utf8"), /^[0-9a-f]{64}\n$/);
    writeFileSync(join(dir, "bad.key"), "nope");
    writeFileSync(join(dir, "upload.key"), "nope");
    assert.throws(() => loadUploadKey(null, dir), /not an upload key/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
