import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deriveCredentials, digest, hmac, keysFromSalted, saltedPassword, verifyPassword, type ScramHash } from "../../../src/store/scram.js";
import { SqliteStore } from "../../../src/store/sqlite-store.js";
import { Authenticator } from "../../../src/auth/authenticator.js";

const xor = (a: Buffer, b: Buffer) => Buffer.from(a.map((x, i) => x ^ b[i]));

/** The worked examples of RFC 5802 §5 (SCRAM-SHA-1) and RFC 7677 §3 (SCRAM-SHA-256): user "user", password "pencil", 4096 iterations. */
const RFC: Record<ScramHash, { salt: string; authMessage: string; clientProof: string; serverSignature: string }> = {
  sha1: {
    salt: "QSXCR+Q6sek8bf92",
    authMessage:
      "n=user,r=fyko+d2lbbFgONRv9qkxdawL," +
      "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096," +
      "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
    clientProof: "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    serverSignature: "rmF9pqV8S7suAoZWja4dJRkFsKQ=",
  },
  sha256: {
    salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
    authMessage:
      "n=user,r=rOprNGfwEbeRWgbNEkqO," +
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096," +
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    clientProof: "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    serverSignature: "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
  },
};

for (const hash of ["sha1", "sha256"] as const) {
  test(`SCRAM-${hash.toUpperCase()}: stored keys verify the RFC's ClientProof and produce its ServerSignature`, { timeout: 10_000 }, async () => {
    const v = RFC[hash];
    const creds = await deriveCredentials("pencil", 4096, Buffer.from(v.salt, "base64"));
    const { storedKey, serverKey } = creds[hash];
    assert.equal(storedKey.length, hash === "sha1" ? 20 : 32);
    // The server's check, from StoredKey alone: ClientKey = proof XOR HMAC(StoredKey, AuthMessage); H(ClientKey) == StoredKey.
    const clientSignature = hmac(hash, storedKey, v.authMessage);
    const clientKey = xor(Buffer.from(v.clientProof, "base64"), clientSignature);
    assert.deepEqual(digest(hash, clientKey), storedKey);
    assert.equal(hmac(hash, serverKey, v.authMessage).toString("base64"), v.serverSignature);
    // And the client's side of the same exchange, from the password.
    const salted = await saltedPassword(hash, "pencil", Buffer.from(v.salt, "base64"), 4096);
    assert.equal(xor(hmac(hash, salted, "Client Key"), clientSignature).toString("base64"), v.clientProof);
    assert.deepEqual(keysFromSalted(hash, salted), { storedKey, serverKey });
    // A wrong password gives another StoredKey.
    const wrong = await deriveCredentials("pencil2", 4096, Buffer.from(v.salt, "base64"));
    assert.notDeepEqual(wrong[hash].storedKey, storedKey);
  });
}

test("verifyPassword: right and wrong; salts are random per derivation", { timeout: 10_000 }, async () => {
  const c = await deriveCredentials("s3cret", 4096);
  assert.equal(await verifyPassword(c, "s3cret"), true);
  assert.equal(await verifyPassword(c, "s3creT"), false);
  assert.equal(await verifyPassword(c, ""), false);
  const d = await deriveCredentials("s3cret", 4096);
  assert.notDeepEqual(c.salt, d.salt);
  assert.notDeepEqual(c.sha256.storedKey, d.sha256.storedKey);
});

function withStore(fn: (store: SqliteStore, dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), "switchboard-unit-"));
    const store = new SqliteStore(join(dir, "sub", "db.sqlite"));
    try {
      await fn(store, dir);
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test(
  "SqliteStore: put, get, replace, delete, list; keys survive a reopen; no plain password stored",
  { timeout: 10_000 },
  withStore(async (store, dir) => {
    const alice = await deriveCredentials("alice-pw", 4096);
    const bob = await deriveCredentials("bob-pw", 4096);
    await store.putUser("bob", bob);
    await store.putUser("alice", alice);
    assert.deepEqual(await store.listUsers(), ["alice", "bob"]);
    assert.equal(await store.hasUser("alice"), true);
    assert.equal(await store.hasUser("carol"), false);
    assert.deepEqual(await store.credentials("alice"), alice);
    assert.equal(await store.credentials("carol"), undefined);
    // put replaces.
    const alice2 = await deriveCredentials("new-pw", 4096);
    await store.putUser("alice", alice2);
    assert.deepEqual((await store.credentials("alice"))!.sha1, alice2.sha1);
    assert.equal(await store.deleteUser("alice"), true);
    assert.equal(await store.deleteUser("alice"), false);
    assert.deepEqual(await store.listUsers(), ["bob"]);
    assert.equal(await store.putUsers([["c1", bob], ["c2", bob]]), 2);
    await store.close();
    const again = new SqliteStore(join(dir, "sub", "db.sqlite"));
    try {
      assert.deepEqual(await again.listUsers(), ["bob", "c1", "c2"]);
      assert.deepEqual(await again.credentials("bob"), bob);
      const cols = again.db.prepare("SELECT * FROM users").all() as Record<string, unknown>[];
      for (const row of cols) for (const v of Object.values(row)) assert.ok(!String(v).includes("bob-pw"));
    } finally {
      await again.close();
    }
  }),
);

test(
  "Authenticator.checkPassword: right, wrong, unknown user",
  { timeout: 10_000 },
  withStore(async (store) => {
    await store.putUser("alice", await deriveCredentials("pencil", 4096));
    const auth = new Authenticator(store, 4096, null);
    assert.equal(await auth.checkPassword("alice", "pencil"), true);
    assert.equal(await auth.checkPassword("alice", "Pencil"), false);
    assert.equal(await auth.checkPassword("nobody", "pencil"), false);
    assert.equal(await auth.checkPassword("nobody", "pencil"), false, "the decoy is reused");
  }),
);

test(
  "Authenticator.checkToken: valid, expired, bad signature, unknown user, disabled",
  { timeout: 10_000 },
  withStore(async (store) => {
    const secret = "0123456789abcdef-secret";
    await store.putUser("alice", await deriveCredentials("pencil", 4096));
    const auth = new Authenticator(store, 4096, secret);
    assert.equal(auth.tokensEnabled, true);
    const now = 1_800_000_000;
    const token = Authenticator.mintToken(secret, "alice", 60, now);
    assert.equal(await auth.checkToken(token, now), "alice");
    assert.equal(await auth.checkToken(token, now + 59), "alice");
    assert.equal(await auth.checkToken(token, now + 60), null, "expired at exp");
    assert.equal(await auth.checkToken(Authenticator.mintToken("another-secret-0123", "alice", 60, now), now), null, "bad signature");
    const [h, , sig] = token.split(".");
    const forgedClaims = Buffer.from(JSON.stringify({ sub: "alice", exp: now + 10000 })).toString("base64url");
    assert.equal(await auth.checkToken(`${h}.${forgedClaims}.${sig}`, now), null, "claims changed under the signature");
    assert.equal(await auth.checkToken(Authenticator.mintToken(secret, "nobody", 60, now), now), null, "unknown user");
    assert.equal(await auth.checkToken(Authenticator.mintToken(secret, "ALICE", 60, now), now), "alice", "user names fold case");
    for (const junk of ["", "a.b", "a.b.c.d", 42, null, "x".repeat(5000)]) assert.equal(await auth.checkToken(junk, now), null);
    assert.equal(await new Authenticator(store, 4096, null).checkToken(token, now), null, "tokens disabled");
  }),
);

test("Authenticator.normalizeUser folds case and refuses what cannot be a local part", { timeout: 10_000 }, () => {
  assert.equal(Authenticator.normalizeUser("Alice"), "alice");
  for (const bad of ["", "a@b", "a/b", "a b", "a:b", 5, null]) assert.equal(Authenticator.normalizeUser(bad), null, String(bad));
});
