import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { digest, hmac, type Credentials, type ScramHash, type ScramKeys } from "../../store/scram.js";
import { XmppError } from "../errors.js";

/** RFC 6120 §6.5 SASL failure conditions. */
export const SaslCondition = {
  Aborted: "aborted",
  EncryptionRequired: "encryption-required",
  IncorrectEncoding: "incorrect-encoding",
  InvalidAuthzid: "invalid-authzid",
  InvalidMechanism: "invalid-mechanism",
  MalformedRequest: "malformed-request",
  MechanismTooWeak: "mechanism-too-weak",
  NotAuthorized: "not-authorized",
  TemporaryAuthFailure: "temporary-auth-failure",
} as const;
export type SaslCondition = (typeof SaslCondition)[keyof typeof SaslCondition];

/** A SASL exchange that failed with a condition of RFC 6120 §6.5. */
export class SaslFailure extends XmppError<SaslCondition> {}

export interface ScramOptions {
  hash: ScramHash;
  /** The -PLUS variant: channel binding is required. */
  plus: boolean;
  /** We offered -PLUS on this connection: a client saying "y" (it could bind, thinks we cannot) is being downgraded (RFC 5802 §6). */
  plusOffered: boolean;
  /** The channel binding data of this connection for a type (tls-exporter, tls-unique), or null when unavailable. */
  channelBinding(type: string): Buffer | null;
  /** Stored keys of a user (already normalized), or undefined; a rejection fails the exchange with it. */
  lookup(user: string): Promise<Credentials | undefined>;
  /** Normalizes the SASL username; null when it cannot be one of ours. */
  normalize(user: string): string | null;
  /** Whether `authzid` names the user itself (we allow no one to act as another). */
  authzOk(authzid: string, user: string): boolean;
  /** Fake salts for unknown users come from this key, so that repeated tries see the same salt. */
  saltSecret: Buffer;
  iterations: number;
  /** Tests only: the server's nonce part. */
  nonce?: string;
}

/**
 * The server side of SCRAM (RFC 5802, RFC 7677). Verifies a proof against the
 * stored keys; never sees a password. Unknown users go through the same
 * exchange with a fake salt and fail at the proof, so nothing tells which exist.
 */
export class ScramServer {
  private gs2Header = "";
  private cbData: Buffer | null = null;
  private clientFirstBare = "";
  private serverFirst = "";
  private nonce = "";
  private user: string | null = null;
  private keys: ScramKeys | null = null;

  constructor(private readonly o: ScramOptions) {}

  /** The client-first message has been seen. */
  get started(): boolean {
    return this.serverFirst !== "";
  }

  /** client-first-message → server-first-message, once the user's keys are read. */
  async first(msg: string): Promise<string> {
    const c1 = msg.indexOf(",");
    const c2 = c1 < 0 ? -1 : msg.indexOf(",", c1 + 1);
    if (c2 < 0) throw new SaslFailure(SaslCondition.MalformedRequest, "no GS2 header");
    const flag = msg.slice(0, c1);
    const authz = msg.slice(c1 + 1, c2);
    this.gs2Header = msg.slice(0, c2 + 1);
    this.clientFirstBare = msg.slice(c2 + 1);

    if (this.o.plus) {
      if (!flag.startsWith("p=")) throw new SaslFailure(SaslCondition.MalformedRequest, "-PLUS needs channel binding");
      this.cbData = this.o.channelBinding(flag.slice(2));
      if (this.cbData === null) throw new SaslFailure(SaslCondition.MalformedRequest, `channel binding ${flag.slice(2)} not available`);
    } else if (flag === "y") {
      if (this.o.plusOffered) throw new SaslFailure(SaslCondition.NotAuthorized, "channel binding downgrade");
    } else if (flag !== "n") {
      throw new SaslFailure(SaslCondition.MalformedRequest, "bad channel binding flag");
    }

    const attrs = this.clientFirstBare.split(",");
    if (attrs.length < 2 || !attrs[0].startsWith("n=") || !attrs[1].startsWith("r=")) {
      throw new SaslFailure(SaslCondition.MalformedRequest, "expected n= and r=");
    }
    const name = decodeName(attrs[0].slice(2));
    const clientNonce = attrs[1].slice(2);
    if (name === null || clientNonce.length === 0 || clientNonce.length > 256) throw new SaslFailure(SaslCondition.MalformedRequest, "bad username or nonce");

    this.user = this.o.normalize(name);
    if (authz !== "") {
      const authzid = authz.startsWith("a=") ? decodeName(authz.slice(2)) : null;
      if (authzid === null || this.user === null || !this.o.authzOk(authzid, this.user)) throw new SaslFailure(SaslCondition.InvalidAuthzid);
    }

    const creds = this.user === null ? undefined : await this.o.lookup(this.user);
    const salt = creds?.salt ?? createHmac("sha256", this.o.saltSecret).update(name).digest().subarray(0, 16);
    const iterations = creds?.iterations ?? this.o.iterations;
    this.keys = creds === undefined ? null : creds[this.o.hash];
    this.nonce = clientNonce + (this.o.nonce ?? randomBytes(18).toString("base64"));
    this.serverFirst = `r=${this.nonce},s=${salt.toString("base64")},i=${iterations}`;
    return this.serverFirst;
  }

  /** client-final-message → server-final-message (v=…) and the authenticated user. */
  final(msg: string): { serverFinal: string; user: string } {
    const p = msg.lastIndexOf(",p=");
    if (p < 0) throw new SaslFailure(SaslCondition.MalformedRequest, "no proof");
    const withoutProof = msg.slice(0, p);
    const attrs = withoutProof.split(",");
    if (attrs.length < 2 || !attrs[0].startsWith("c=") || !attrs[1].startsWith("r=")) throw new SaslFailure(SaslCondition.MalformedRequest, "expected c= and r=");
    const expectedC = Buffer.concat([Buffer.from(this.gs2Header), this.cbData ?? Buffer.alloc(0)]).toString("base64");
    if (attrs[0].slice(2) !== expectedC) throw new SaslFailure(SaslCondition.NotAuthorized, "channel binding mismatch");
    if (attrs[1].slice(2) !== this.nonce) throw new SaslFailure(SaslCondition.NotAuthorized, "nonce mismatch");

    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const proof = Buffer.from(msg.slice(p + 3), "base64");
    const keys = this.keys;
    if (keys === null || this.user === null || proof.length !== keys.storedKey.length) throw new SaslFailure(SaslCondition.NotAuthorized);
    const signature = hmac(this.o.hash, keys.storedKey, authMessage);
    for (let i = 0; i < proof.length; i++) proof[i] ^= signature[i];
    if (!timingSafeEqual(digest(this.o.hash, proof), keys.storedKey)) throw new SaslFailure(SaslCondition.NotAuthorized);
    return { serverFinal: `v=${hmac(this.o.hash, keys.serverKey, authMessage).toString("base64")}`, user: this.user };
  }
}

/** RFC 5802 §5.1 saslname: "," and "=" arrive as =2C and =3D; any other "=" is malformed. */
function decodeName(s: string): string | null {
  if (s.length === 0 || /=(?!2C|3D)/.test(s)) return null;
  return s.replace(/=2C/g, ",").replace(/=3D/g, "=");
}
