import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { keysFromSalted, saltedPassword, type Credentials } from "../../src/store/scram.js";

/**
 * Benchmark accounts userK/pwdK with SCRAM keys at 4096 iterations. PBKDF2 is
 * the whole cost of creating 20,000 accounts, so the salt is derived from the
 * name and the keys are cached on disk: every server under test gets the same
 * keys, and the load generator gets the SaltedPassword a SCRAM client may keep
 * (RFC 5802 §5.1), so logins cost HMACs, not PBKDF2, on both sides.
 */
export interface BenchAccount {
  user: string;
  password: string;
  creds: Credentials;
  /** SCRAM-SHA-1 SaltedPassword, for the client side. */
  salted1: Buffer;
}

export const ITERATIONS = 4096;
const CACHE_DIR = process.env.SWITCHBOARD_BENCH_CACHE ?? join(homedir(), ".cache", "switchboard-bench");

type Row = [string, string, string, string, string, string, string];

export function saltFor(user: string): Buffer {
  return createHash("sha256").update(`switchboard-bench:${user}`).digest().subarray(0, 16);
}

export async function benchAccounts(names: string[], password: (user: string) => string): Promise<BenchAccount[]> {
  mkdirSync(CACHE_DIR, { recursive: true });
  const file = join(CACHE_DIR, `scram-${ITERATIONS}.json`);
  const cache: Record<string, Row> = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : {};
  let added = 0;
  const out: BenchAccount[] = new Array(names.length);
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const i = next++;
      const user = names[i];
      const pw = password(user);
      let row = cache[user];
      if (row === undefined || row[0] !== pw) {
        const salt = saltFor(user);
        // The SHA-1 SaltedPassword serves both sides: the server's keys and the client's cache.
        const [s1, s256] = await Promise.all([saltedPassword("sha1", pw, salt, ITERATIONS), saltedPassword("sha256", pw, salt, ITERATIONS)]);
        const c = { sha1: keysFromSalted("sha1", s1), sha256: keysFromSalted("sha256", s256) };
        row = [pw, salt.toString("base64"), c.sha1.storedKey.toString("base64"), c.sha1.serverKey.toString("base64"), c.sha256.storedKey.toString("base64"), c.sha256.serverKey.toString("base64"), s1.toString("base64")];
        cache[user] = row;
        added++;
      }
      const b = (k: number) => Buffer.from(row[k], "base64");
      out[i] = { user, password: pw, creds: { salt: b(1), iterations: ITERATIONS, sha1: { storedKey: b(2), serverKey: b(3) }, sha256: { storedKey: b(4), serverKey: b(5) } }, salted1: b(6) };
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  if (added > 0) writeFileSync(file, JSON.stringify(cache));
  return out;
}
