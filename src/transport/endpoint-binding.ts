import { createHash } from "node:crypto";

/**
 * RFC 5929 §4.1 tls-server-end-point: the hash of the server's certificate
 * (DER) under its signature's hash function, SHA-256 where that is MD5 or
 * SHA-1. The signature algorithm is read from the certificate itself (Node 20's
 * X509Certificate does not tell it); null when the DER cannot be read.
 */
export function endpointBinding(der: Buffer): Buffer | null {
  const oid = signatureOid(der);
  if (oid === null) return null;
  return createHash(hashOf(oid)).update(der).digest();
}

/** sha384 and sha512 signatures (RSA PKCS#1, RSA-PSS is not told here, ECDSA) hash with theirs; everything else with SHA-256. */
function hashOf(oid: string): string {
  if (oid === "1.2.840.113549.1.1.12" || oid === "1.2.840.10045.4.3.3") return "sha384";
  if (oid === "1.2.840.113549.1.1.13" || oid === "1.2.840.10045.4.3.4") return "sha512";
  return "sha256";
}

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm SEQUENCE { OID, ... }, signatureValue }. */
function signatureOid(der: Buffer): string | null {
  const outer = header(der, 0);
  if (outer === null || der[0] !== 0x30) return null;
  const tbs = header(der, outer.body);
  if (tbs === null) return null;
  const alg = header(der, tbs.body + tbs.len);
  if (alg === null || der[tbs.body + tbs.len] !== 0x30) return null;
  const oid = header(der, alg.body);
  if (oid === null || der[alg.body] !== 0x06) return null;
  return decodeOid(der.subarray(oid.body, oid.body + oid.len));
}

/** A DER element's header at `at`: where its body starts and how long it is. */
function header(der: Buffer, at: number): { body: number; len: number } | null {
  if (at + 2 > der.length) return null;
  let len = der[at + 1];
  let body = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || body + n > der.length) return null;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[body + i];
    body += n;
  }
  return body + len <= der.length ? { body, len } : null;
}

function decodeOid(b: Buffer): string {
  const parts = [Math.floor(b[0] / 40), b[0] % 40];
  let v = 0;
  for (let i = 1; i < b.length; i++) {
    v = v * 128 + (b[i] & 0x7f);
    if (!(b[i] & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join(".");
}
