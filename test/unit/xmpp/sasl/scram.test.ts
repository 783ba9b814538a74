import { test } from "node:test";
import assert from "node:assert/strict";
import { ScramServer, SaslFailure, type ScramOptions } from "../../../../src/xmpp/sasl/scram.js";
import { keysFromSalted, saltedPassword, type Credentials, type ScramHash } from "../../../../src/store/scram.js";

async function creds(hash: ScramHash, password: string, saltB64: string, iterations: number): Promise<Credentials> {
  const salt = Buffer.from(saltB64, "base64");
  const keys = keysFromSalted(hash, await saltedPassword(hash, password, salt, iterations));
  return { salt, iterations, sha1: keys, sha256: keys };
}

function server(hash: ScramHash, c: Credentials, nonce: string, extra: Partial<ScramOptions> = {}): ScramServer {
  return new ScramServer({
    hash,
    plus: false,
    plusOffered: false,
    channelBinding: () => null,
    lookup: async (u) => (u === "user" ? c : undefined),
    normalize: (u) => u.toLowerCase(),
    authzOk: (a, u) => a === u,
    saltSecret: Buffer.alloc(32),
    iterations: 4096,
    nonce,
    ...extra,
  });
}

test("RFC 5802 §5 SCRAM-SHA-1 test vector", { timeout: 10_000 }, async () => {
  const s = server("sha1", await creds("sha1", "pencil", "QSXCR+Q6sek8bf92", 4096), "3rfcNHYJY1ZVvWVs7j");
  assert.equal(await s.first("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"), "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
  const r = s.final("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
  assert.deepEqual(r, { serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=", user: "user" });
});

test("RFC 7677 §3 SCRAM-SHA-256 test vector", { timeout: 10_000 }, async () => {
  const s = server("sha256", await creds("sha256", "pencil", "W22ZaJ0SNY7soEsUEjb6gQ==", 4096), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
  assert.equal(await s.first("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"), "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
  const r = s.final("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  assert.equal(r.serverFinal, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
});

const failsWith = (f: () => unknown, condition: string) =>
  assert.throws(f, (e: unknown) => e instanceof SaslFailure && e.condition === condition);
const firstFails = (p: Promise<string>, condition: string) => assert.rejects(p, (e: unknown) => e instanceof SaslFailure && e.condition === condition);

test("wrong proof, wrong nonce, unknown user, downgrade, bad authzid all fail", { timeout: 10_000 }, async () => {
  const c = await creds("sha1", "pencil", "QSXCR+Q6sek8bf92", 4096);
  let s = server("sha1", c, "3rfcNHYJY1ZVvWVs7j");
  await s.first("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
  failsWith(() => s.final("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=AAAAAAAAAAAAAAAAAAAAAAAAAAA="), "not-authorized");
  s = server("sha1", c, "3rfcNHYJY1ZVvWVs7j");
  await s.first("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
  failsWith(() => s.final("c=biws,r=other,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="), "not-authorized");
  // An unknown user gets a plausible challenge (same salt each time) and fails only at the proof.
  s = server("sha1", c, "n1");
  const first = await s.first("n,,n=nobody,r=abc");
  assert.match(first, /^r=abcn1,s=[A-Za-z0-9+/=]+,i=4096$/);
  assert.equal(await server("sha1", c, "n1").first("n,,n=nobody,r=abc"), first);
  failsWith(() => s.final("c=biws,r=abcn1,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="), "not-authorized");
  await firstFails(server("sha1", c, "x", { plusOffered: true }).first("y,,n=user,r=abc"), "not-authorized");
  await firstFails(server("sha1", c, "x").first("n,a=admin,n=user,r=abc"), "invalid-authzid");
  await firstFails(server("sha1", c, "x").first("garbage"), "malformed-request");
  await firstFails(server("sha1", c, "x").first("n,,n=us=er,r=abc"), "malformed-request");
});

test("-PLUS binds to the channel: the right data passes, other data fails", { timeout: 10_000 }, async () => {
  const c = await creds("sha256", "pencil", "W22ZaJ0SNY7soEsUEjb6gQ==", 4096);
  const cb = Buffer.from("channel-binding-data");
  const s = server("sha256", c, "srv", { plus: true, channelBinding: (t) => (t === "tls-exporter" ? cb : null) });
  await s.first("p=tls-exporter,,n=user,r=abc");
  const wrongC = Buffer.concat([Buffer.from("p=tls-exporter,,"), Buffer.from("other")]).toString("base64");
  failsWith(() => s.final(`c=${wrongC},r=abcsrv,p=AAAA`), "not-authorized");
  await firstFails(server("sha256", c, "srv", { plus: true }).first("n,,n=user,r=abc"), "malformed-request");
});
