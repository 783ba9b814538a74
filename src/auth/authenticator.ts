import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { validLocal } from "../address/address.js";
import type { AccountStore } from "../store/store.js";
import { deriveCredentials, verifyPassword, type Credentials } from "../store/scram.js";

/**
 * Password and token checks shared by every protocol. SASL SCRAM (XMPP) reads
 * the stored keys itself; everything that receives a plain password comes here.
 */
export class Authenticator {
  // Unknown users cost the same PBKDF2 as known ones: timing must not tell which exist.
  private decoy: Promise<Credentials> | null = null;

  constructor(
    readonly store: AccountStore,
    private readonly iterations: number,
    private readonly tokenSecret: string | null,
  ) {}

  static normalizeUser(user: unknown): string | null {
    if (typeof user !== "string") return null;
    const u = user.toLowerCase();
    return validLocal(u) ? u : null;
  }

  /** Rejects when the store cannot answer: that is no wrong password, and callers say so. */
  async checkPassword(user: string, password: string): Promise<boolean> {
    const creds = await this.store.credentials(user);
    if (creds === undefined) {
      this.decoy ??= deriveCredentials(randomBytes(16).toString("hex"), this.iterations);
      await verifyPassword(await this.decoy, password);
      return false;
    }
    return verifyPassword(creds, password);
  }

  get tokensEnabled(): boolean {
    return this.tokenSecret !== null;
  }

  /**
   * A JWT (RFC 7519) signed with HS256 by the configured secret, naming the
   * user in `sub` and expiring at `exp`. Resolves to the user, or null; rejects
   * when the store cannot say whether the account exists.
   */
  async checkToken(token: unknown, nowSec = Math.floor(Date.now() / 1000)): Promise<string | null> {
    if (this.tokenSecret === null || typeof token !== "string" || token.length > 4096) return null;
    const parts = token.split(".");
    if (parts.length !== 3) return null;
    const expected = createHmac("sha256", this.tokenSecret).update(`${parts[0]}.${parts[1]}`).digest();
    const given = Buffer.from(parts[2], "base64url");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    let user: string | null;
    try {
      const header = JSON.parse(Buffer.from(parts[0], "base64url").toString("utf8"));
      const claims = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
      if (header?.alg !== "HS256") return null;
      if (typeof claims?.exp !== "number" || claims.exp <= nowSec) return null;
      user = Authenticator.normalizeUser(claims.sub);
    } catch {
      return null;
    }
    return user !== null && (await this.store.hasUser(user)) ? user : null;
  }

  /** Issues a token as checkToken expects (for the CLI and for tests). */
  static mintToken(secret: string, user: string, ttlSec: number, nowSec = Math.floor(Date.now() / 1000)): string {
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const body = `${enc({ alg: "HS256", typ: "JWT" })}.${enc({ sub: user, exp: nowSec + ttlSec })}`;
    return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
  }
}
