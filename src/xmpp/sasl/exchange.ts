import { Element } from "ltx";
import { Authenticator } from "../../auth/authenticator.js";
import type { ScramHash } from "../../store/scram.js";
import { StreamCondition, StreamError } from "../errors.js";
import { encryptionRequired } from "../policy.js";
import { Phase, type ClientSession } from "../client-session.js";
import type { XmppContext } from "../context.js";
import { bindingData, bindingTypes } from "./channel-binding.js";
import { SaslCondition, SaslFailure, ScramServer } from "./scram.js";
import { parsePlain } from "./plain.js";

/**
 * The mechanisms, apart from the profile that carries them: RFC 6120's <auth/>
 * (sasl.ts) and XEP-0388's <authenticate/> (sasl2.ts) drive the same exchanges
 * and differ only in the elements around the data.
 */

/** What one step of an exchange gives: a challenge to send, or the authenticated user with the mechanism's final data. */
export type Outcome = { kind: "challenge"; data: Buffer } | { kind: "success"; user: string; data: Buffer | null };

/** One SASL exchange of a mechanism; a step throws (or rejects with) a SaslFailure. */
export interface Exchange {
  /** The client's data (null: no initial response). */
  step(data: Buffer | null): Outcome | Promise<Outcome>;
}

const EMPTY = Buffer.alloc(0);

const SCRAM: Record<string, { hash: ScramHash; plus: boolean }> = {
  "SCRAM-SHA-256-PLUS": { hash: "sha256", plus: true },
  "SCRAM-SHA-1-PLUS": { hash: "sha1", plus: true },
  "SCRAM-SHA-256": { hash: "sha256", plus: false },
  "SCRAM-SHA-1": { hash: "sha1", plus: false },
};

/** Password mechanisms on this connection, strongest first: clients that pick the first they know get the best. */
export function mechanisms(s: ClientSession, x: XmppContext): string[] {
  const out: string[] = [];
  if (bindingTypes(s.conn).length > 0) out.push("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS");
  out.push("SCRAM-SHA-256", "SCRAM-SHA-1");
  // RFC 6120 §13.8: PLAIN sends the password; only inside TLS unless configured otherwise.
  if (s.secure || x.config.xmpp.allowPlainWithoutTls) out.push("PLAIN");
  return out;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** RFC 6120 §6.4.2 (and XEP-0388 alike): "=" is an empty response; no text at all is none. */
export function decode(text: string): Buffer | null {
  const t = text.trim();
  if (t === "") return null;
  if (t === "=") return EMPTY;
  if (!BASE64.test(t)) throw new SaslFailure(SaslCondition.IncorrectEncoding);
  return Buffer.from(t, "base64");
}

/** Checks shared by both profiles before an exchange starts; throws what the client is told. */
export function admit(s: ClientSession, x: XmppContext, mech: string, offered: readonly string[], send: (xml: string) => void, ns: string): void {
  if (x.ipFailures.blocked(s.conn.remoteAddress)) {
    send(failureXml(ns, SaslCondition.TemporaryAuthFailure, "too many failed attempts from this address"));
    throw new StreamError(StreamCondition.PolicyViolation, "too many failed authentication attempts");
  }
  if (encryptionRequired(x.config.xmpp, s)) throw new SaslFailure(SaslCondition.EncryptionRequired);
  if (!offered.includes(mech)) throw new SaslFailure(SaslCondition.InvalidMechanism);
}

/** The exchange of a password mechanism this connection offers (admit() checked it). */
export function passwordExchange(s: ClientSession, mech: string, x: XmppContext): Exchange {
  if (mech === "PLAIN") return new PlainExchange(s, x);
  const { hash, plus } = SCRAM[mech];
  return new ScramExchange(
    new ScramServer({
      hash,
      plus,
      plusOffered: bindingTypes(s.conn).length > 0,
      channelBinding: (type) => bindingData(s.conn, type),
      lookup: (u) =>
        x.accounts.credentials(u).catch((e) => {
          x.log.warn("xmpp auth: account store unavailable", { error: (e as Error).message });
          throw new SaslFailure(SaslCondition.TemporaryAuthFailure, "account store unavailable");
        }),
      normalize: (u) => Authenticator.normalizeUser(u),
      authzOk: (authzid, u) => authzid === u || authzid.toLowerCase() === `${u}@${s.domain}`,
      saltSecret: x.saltSecret,
      iterations: x.config.auth.scramIterations,
    }),
  );
}

class ScramExchange implements Exchange {
  private asked = false;
  constructor(private readonly scram: ScramServer) {}

  step(data: Buffer | null): Outcome | Promise<Outcome> {
    if (!this.scram.started) {
      // No initial response: an empty challenge asks for the client-first message (RFC 6120 §6.4.2).
      if (data === null && !this.asked) {
        this.asked = true;
        return { kind: "challenge", data: EMPTY };
      }
      return this.scram.first((data ?? EMPTY).toString("utf8")).then((first) => ({ kind: "challenge", data: Buffer.from(first) }));
    }
    const { serverFinal, user } = this.scram.final((data ?? EMPTY).toString("utf8"));
    return { kind: "success", user, data: Buffer.from(serverFinal) };
  }
}

class PlainExchange implements Exchange {
  private asked = false;
  constructor(
    private readonly s: ClientSession,
    private readonly x: XmppContext,
  ) {}

  step(data: Buffer | null): Outcome | Promise<Outcome> {
    if (data === null && !this.asked) {
      this.asked = true;
      return { kind: "challenge", data: EMPTY };
    }
    const creds = parsePlain((data ?? EMPTY).toString("utf8"));
    const user = creds === null ? null : Authenticator.normalizeUser(creds.authcid);
    if (creds === null || user === null) throw new SaslFailure(SaslCondition.NotAuthorized);
    if (creds.authzid !== "" && creds.authzid !== user && creds.authzid.toLowerCase() !== `${user}@${this.s.domain}`) throw new SaslFailure(SaslCondition.InvalidAuthzid);
    return this.x.auth.checkPassword(user, creds.password).then(
      (ok): Outcome => {
        if (!ok) throw new SaslFailure(SaslCondition.NotAuthorized);
        return { kind: "success", user, data: null };
      },
      (e) => {
        // The store did not answer: no verdict on the password (RFC 6120 §6.5.12).
        this.x.log.warn("xmpp auth: account store unavailable", { error: (e as Error).message });
        throw new SaslFailure(SaslCondition.TemporaryAuthFailure, "account store unavailable");
      },
    );
  }
}

/**
 * Runs one step of `ex`, the session's exchange in progress (s.sasl). A step
 * that reads a store holds input until it is decided (RFC 6120 §6.4: one
 * exchange at a time); the outcome is dropped if the exchange was aborted or
 * the session ended meanwhile (s.sasl is no longer `state`).
 */
export function advance(s: ClientSession, ex: Exchange, data: Buffer | null, done: (o: Outcome) => void, failed: (e: SaslFailure) => void, state: unknown = ex): void {
  let r: Outcome | Promise<Outcome>;
  try {
    r = ex.step(data);
  } catch (e) {
    if (e instanceof SaslFailure) return failed(e);
    throw e;
  }
  if (!(r instanceof Promise)) return done(r);
  s.hold();
  r.then(
    (o) => {
      if (s.phase === Phase.Negotiating && s.sasl === state) {
        try {
          done(o);
        } catch (e) {
          s.fail(e);
        }
      }
      s.release();
    },
    (e) => {
      if (s.phase === Phase.Negotiating && s.sasl === state) {
        if (e instanceof SaslFailure) failed(e);
        else s.fail(e);
      }
      s.release();
    },
  );
}

export function failureXml(ns: string, cond: SaslCondition, text = ""): string {
  // XEP-0388 §2.6.2: the RFC 6120 conditions, in their own namespace, inside SASL2's <failure/>.
  const t = new Element("failure", { xmlns: ns });
  t.c(cond, ns === SASL_NS ? {} : { xmlns: SASL_NS });
  if (text) t.c("text").t(text);
  return t.toString();
}
const SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl";

/** RFC 6120 §6.4.5: <failure/>, and after too many tries on this connection a stream error. Shared by both profiles. */
export function authFailed(s: ClientSession, e: SaslFailure, x: XmppContext, ns: string): void {
  s.sasl = null;
  s.send(failureXml(ns, e.condition, ns !== SASL_NS && e.message !== e.condition ? e.message : ""));
  // Not a wrong credential: nothing counted against the client or its address.
  if (e.condition === SaslCondition.Aborted || e.condition === SaslCondition.InvalidMechanism || e.condition === SaslCondition.EncryptionRequired || e.condition === SaslCondition.TemporaryAuthFailure) return;
  x.ipFailures.fail(s.conn.remoteAddress);
  x.metrics.xmpp.authFailures++;
  x.log.info("xmpp authentication failed", { remote: s.conn.remoteAddress, condition: e.condition });
  if (++s.authFailures >= x.config.limits.maxAuthAttempts) s.fail(new StreamError(StreamCondition.PolicyViolation, "too many failed authentication attempts"));
}
