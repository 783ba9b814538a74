import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";

const pbkdf2Async = promisify(pbkdf2);

export type ScramHash = "sha1" | "sha256";
const KEY_LEN: Record<ScramHash, number> = { sha1: 20, sha256: 32 };

/** What RFC 5802 §3 lets a server keep: enough to verify a proof, never enough to log in. */
export interface ScramKeys {
  storedKey: Buffer;
  serverKey: Buffer;
}

export interface Credentials {
  salt: Buffer;
  iterations: number;
  sha1: ScramKeys;
  sha256: ScramKeys;
}

export function hmac(hash: ScramHash, key: Buffer, data: string | Buffer): Buffer {
  return createHmac(hash, key).update(data).digest();
}

export function digest(hash: ScramHash, data: Buffer): Buffer {
  return createHash(hash).update(data).digest();
}

/** Hi() of RFC 5802, on libuv's thread pool so the event loop never waits for it. */
export function saltedPassword(hash: ScramHash, password: string, salt: Buffer, iterations: number): Promise<Buffer> {
  return pbkdf2Async(Buffer.from(password, "utf8"), salt, iterations, KEY_LEN[hash], hash);
}

export function keysFromSalted(hash: ScramHash, salted: Buffer): ScramKeys {
  return {
    storedKey: digest(hash, hmac(hash, salted, "Client Key")),
    serverKey: hmac(hash, salted, "Server Key"),
  };
}

export async function deriveCredentials(password: string, iterations: number, salt: Buffer = randomBytes(16)): Promise<Credentials> {
  const [s1, s256] = await Promise.all([
    saltedPassword("sha1", password, salt, iterations),
    saltedPassword("sha256", password, salt, iterations),
  ]);
  return { salt, iterations, sha1: keysFromSalted("sha1", s1), sha256: keysFromSalted("sha256", s256) };
}

/** Checks a plain password (relay auth, SASL PLAIN) against the stored SCRAM-SHA-256 keys. */
export async function verifyPassword(creds: Credentials, password: string): Promise<boolean> {
  const salted = await saltedPassword("sha256", password, creds.salt, creds.iterations);
  const { storedKey } = keysFromSalted("sha256", salted);
  return timingSafeEqual(storedKey, creds.sha256.storedKey);
}
