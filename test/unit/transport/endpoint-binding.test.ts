import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { endpointBinding } from "../../../src/transport/endpoint-binding.js";
import { TLS_FILES } from "../../helpers.js";

// RFC 5929 §4.1 tls-server-end-point, for XEP-0484's HT-SHA-256-ENDP.

/** A DER certificate's skeleton: SEQUENCE { tbs, SEQUENCE { OID }, BIT STRING }, enough for the walk. */
function fakeCert(oid: number[]): Buffer {
  const tlv = (tag: number, body: Buffer) => Buffer.concat([Buffer.from([tag, body.length]), body]);
  const enc = [oid[0] * 40 + oid[1]];
  for (const v of oid.slice(2)) {
    const parts = [v & 0x7f];
    for (let n = v >> 7; n > 0; n >>= 7) parts.unshift((n & 0x7f) | 0x80);
    enc.push(...parts);
  }
  return tlv(0x30, Buffer.concat([tlv(0x30, Buffer.from([0x02, 0x01, 0x01])), tlv(0x30, tlv(0x06, Buffer.from(enc))), tlv(0x03, Buffer.from([0, 1, 2]))]));
}

test("the fixture certificate (SHA-256 signed): SHA-256 of its DER", { timeout: 5000 }, () => {
  const pem = readFileSync(TLS_FILES.cert, "utf8");
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
  assert.deepEqual(endpointBinding(der), createHash("sha256").update(der).digest());
});

test("the signature's hash picks the function; MD5 and SHA-1 become SHA-256; garbage gives null", { timeout: 5000 }, () => {
  const cases: [number[], string][] = [
    [[1, 2, 840, 113549, 1, 1, 12], "sha384"],
    [[1, 2, 840, 10045, 4, 3, 4], "sha512"],
    [[1, 2, 840, 113549, 1, 1, 5], "sha256"],
    [[1, 2, 840, 113549, 1, 1, 4], "sha256"],
  ];
  for (const [oid, hash] of cases) {
    const der = fakeCert(oid);
    assert.deepEqual(endpointBinding(der), createHash(hash).update(der).digest(), oid.join("."));
  }
  assert.equal(endpointBinding(Buffer.from([0x30, 0x05, 0x01])), null);
  assert.equal(endpointBinding(Buffer.alloc(0)), null);
  assert.equal(endpointBinding(generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" })), null, "not a certificate");
});
