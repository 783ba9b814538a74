import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";

/**
 * The client side of SCRAM-SHA-1 (RFC 5802 §3), just what a load generator
 * needs. `salted` is a cached SaltedPassword for `salt`/`iterations`; any
 * other salt falls back to PBKDF2 here.
 */
export class ScramSha1Client {
  private readonly cnonce = randomBytes(12).toString("base64");
  private readonly firstBare: string;

  constructor(
    private readonly user: string,
    private readonly password: string,
    private readonly cached: { salt: Buffer; iterations: number; salted: Buffer } | null,
  ) {
    this.firstBare = `n=${user},r=${this.cnonce}`;
  }

  first(): string {
    return Buffer.from(`n,,${this.firstBare}`).toString("base64");
  }

  /** The answer to the server-first-message (base64 in, base64 out). */
  final(challengeB64: string): string {
    const serverFirst = Buffer.from(challengeB64, "base64").toString();
    const attrs = new Map(serverFirst.split(",").map((kv) => [kv[0], kv.slice(2)] as [string, string]));
    const nonce = attrs.get("r") ?? "";
    if (!nonce.startsWith(this.cnonce)) throw new Error("SCRAM: server nonce does not extend ours");
    const salt = Buffer.from(attrs.get("s") ?? "", "base64");
    const iterations = Number(attrs.get("i"));
    const c = this.cached;
    const salted = c !== null && c.iterations === iterations && c.salt.equals(salt) ? c.salted : pbkdf2Sync(this.password, salt, iterations, 20, "sha1");
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.firstBare},${serverFirst},${withoutProof}`;
    const clientKey = createHmac("sha1", salted).update("Client Key").digest();
    const storedKey = createHash("sha1").update(clientKey).digest();
    const signature = createHmac("sha1", storedKey).update(authMessage).digest();
    for (let i = 0; i < clientKey.length; i++) clientKey[i] ^= signature[i];
    return Buffer.from(`${withoutProof},p=${clientKey.toString("base64")}`).toString("base64");
  }
}
