import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { Authenticator } from "../../auth/authenticator.js";
import type { FastStore, FastToken } from "../../store/fast-store.js";
import type { Exchange, Outcome } from "./exchange.js";
import { SaslCondition, SaslFailure } from "./scram.js";

/**
 * The HT-SHA-256-* mechanisms (draft-schmaus-kitten-sasl-ht), XEP-0484's FAST
 * mechanisms: one message each way. The client sends authcid NUL
 * HMAC(token, "Initiator" || cb-data); the server answers HMAC(token,
 * "Responder" || cb-data). -NONE has no channel binding; -ENDP binds to our
 * certificate (RFC 5929 tls-server-end-point), -EXPR to the TLS 1.3 exporter (RFC 9266).
 */
export const HT_MECHANISMS = { "HT-SHA-256-ENDP": "tls-server-end-point", "HT-SHA-256-EXPR": "tls-exporter", "HT-SHA-256-NONE": null } as const;
export type HtMechanism = keyof typeof HT_MECHANISMS;

/**
 * Tokens are longer than SHA-256's 64-byte block, so RFC 2104 keys the HMAC
 * with SHA-256(token): the server keeps only that hash and computes the same
 * HMACs as a client holding the token. The hash still authenticates as the
 * token does (any HT verifier must): the table is as sensitive as the tokens.
 */
const TOKEN_BYTES = 72;

export function newToken(): { token: string; hash: Buffer } {
  const token = randomBytes(TOKEN_BYTES).toString("base64url");
  return { token, hash: tokenHash(token) };
}

export function tokenHash(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

/** HMAC-SHA-256 keyed with a token's hash (equal to keying it with the token), over `label` || cb-data. */
export function htMac(hash: Buffer, label: "Initiator" | "Responder", cb: Buffer): Buffer {
  return createHmac("sha256", hash).update(label).update(cb).digest();
}

export interface HtOptions {
  mechanism: HtMechanism;
  /** The channel binding data (empty for -NONE). */
  cb: Buffer;
  /** The client's XEP-0388 user-agent id: tokens are bound to it. */
  agent: string;
  /** XEP-0484 §3.3 replay counter from <fast count/>; 0: none sent. */
  count: number;
  store: FastStore;
  /** A store that did not answer: logged, the client told temporary-auth-failure. */
  unavailable(e: Error): void;
  now?: () => number;
}

/** The server side of one HT exchange: verifies the token against the client's two slots (XEP-0484 §5.1). */
export class HtExchange implements Exchange {
  /** The token that authenticated, once one did. */
  used: FastToken | null = null;
  private stepped = false;

  constructor(private readonly o: HtOptions) {}

  step(data: Buffer | null): Outcome | Promise<Outcome> {
    if (this.stepped) throw new SaslFailure(SaslCondition.MalformedRequest, "HT takes one message");
    this.stepped = true;
    if (data === null) throw new SaslFailure(SaslCondition.MalformedRequest, "HT needs an initial response");
    const nul = data.indexOf(0);
    if (nul <= 0) throw new SaslFailure(SaslCondition.MalformedRequest, "expected authcid NUL hmac");
    const user = Authenticator.normalizeUser(data.subarray(0, nul).toString("utf8"));
    const mac = data.subarray(nul + 1);
    if (user === null) throw new SaslFailure(SaslCondition.NotAuthorized);
    // XEP-0484 §4.1: tokens belong to one client, named by its user-agent id.
    if (this.o.agent === "") throw new SaslFailure(SaslCondition.NotAuthorized, "FAST needs a user-agent id");
    return this.verify(user, mac);
  }

  private async verify(user: string, mac: Buffer): Promise<Outcome> {
    const { store, agent, mechanism, cb, count } = this.o;
    const tokens = await this.guard(store.fastTokens(user, agent));
    const now = (this.o.now ?? Date.now)();
    let hit: FastToken | null = null;
    // "new" first: a client that got the newest token uses it (§5.1).
    for (const slot of ["new", "current"] as const) {
      const t = tokens.find((x) => x.slot === slot);
      // Bound to the mechanism it was issued for (§3.3): -NONE cannot use an -ENDP token.
      if (t === undefined || t.mechanism !== mechanism || t.expiresAt <= now) continue;
      const expected = htMac(t.hash, "Initiator", cb);
      if (expected.length === mac.length && timingSafeEqual(expected, mac)) {
        hit = t;
        break;
      }
    }
    if (hit === null) throw new SaslFailure(SaslCondition.NotAuthorized);
    // §3.3: a count not above the last one processed for this token is a replay.
    if (count > 0 && count <= hit.count) throw new SaslFailure(SaslCondition.NotAuthorized, "count already used");
    if (!(await this.guard(store.useFastToken(user, agent, hit.slot, count)))) throw new SaslFailure(SaslCondition.NotAuthorized, "count already used");
    this.used = hit;
    return { kind: "success", user, data: htMac(hit.hash, "Responder", cb) };
  }

  private guard<T>(p: Promise<T>): Promise<T> {
    return p.catch((e) => {
      this.o.unavailable(e as Error);
      throw new SaslFailure(SaslCondition.TemporaryAuthFailure, "token store unavailable");
    });
  }
}
