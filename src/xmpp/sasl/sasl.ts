import { Element } from "ltx";
import { Authenticator } from "../../auth/authenticator.js";
import type { ScramHash } from "../../store/scram.js";
import { StreamCondition, StreamError } from "../errors.js";
import { Ev, type Hooks } from "../hooks.js";
import { NS } from "../ns.js";
import { encryptionRequired } from "../policy.js";
import { Phase, type ClientSession } from "../client-session.js";
import type { XmppContext } from "../context.js";
import { bindingData, bindingTypes } from "./channel-binding.js";
import { SaslCondition, SaslFailure, ScramServer } from "./scram.js";
import { parsePlain } from "./plain.js";
import { handOff } from "../handoff.js";

const SCRAM: Record<string, { hash: ScramHash; plus: boolean }> = {
  "SCRAM-SHA-256-PLUS": { hash: "sha256", plus: true },
  "SCRAM-SHA-1-PLUS": { hash: "sha1", plus: true },
  "SCRAM-SHA-256": { hash: "sha256", plus: false },
  "SCRAM-SHA-1": { hash: "sha1", plus: false },
};

/** Strongest first: clients that pick the first they know get the best. */
function mechanisms(s: ClientSession, x: XmppContext): string[] {
  const out: string[] = [];
  if (bindingTypes(s.conn).length > 0) out.push("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS");
  out.push("SCRAM-SHA-256", "SCRAM-SHA-1");
  // RFC 6120 §13.8: PLAIN sends the password; only inside TLS unless configured otherwise.
  if (s.secure || x.config.xmpp.allowPlainWithoutTls) out.push("PLAIN");
  return out;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** RFC 6120 §6.4.2: "=" is an empty response; no text at all is no initial response. */
function decode(el: Element): string | null {
  const text = el.getText().trim();
  if (text === "") return null;
  if (text === "=") return "";
  if (!BASE64.test(text)) throw new SaslFailure(SaslCondition.IncorrectEncoding);
  return Buffer.from(text, "base64").toString("utf8");
}

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

/** SASL (RFC 6120 §6) with SCRAM (RFC 5802, 7677; -PLUS per RFC 5929/9266) and PLAIN (RFC 4616). */
export function saslModule(hooks: Hooks, x: XmppContext): void {
  hooks.on(Ev.StreamFeatures, ({ session, features }) => {
    if (session.phase !== Phase.Negotiating || encryptionRequired(x.config.xmpp, session)) return;
    const mechs = features.c("mechanisms", { xmlns: NS.SASL });
    for (const m of mechanisms(session, x)) mechs.c("mechanism").t(m);
    const types = bindingTypes(session.conn);
    if (types.length > 0) {
      const cb = features.c("sasl-channel-binding", { xmlns: NS.SASL_CB });
      for (const t of types) cb.c("channel-binding", { type: t });
    }
  });

  hooks.on(Ev.Negotiation, ({ session, stanza }) => {
    if (stanza.attrs.xmlns !== NS.SASL) return false;
    if (session.phase !== Phase.Negotiating) throw new StreamError(StreamCondition.PolicyViolation, "already authenticated");
    try {
      step(session, stanza, x);
    } catch (e) {
      if (!(e instanceof SaslFailure)) throw e;
      failed(session, e, x);
    }
    return true;
  });
}

function step(s: ClientSession, el: Element, x: XmppContext): void {
  const ip = s.conn.remoteAddress;
  switch (el.name) {
    case "abort":
      s.sasl = null;
      throw new SaslFailure(SaslCondition.Aborted);
    case "auth": {
      if (x.ipFailures.blocked(ip)) {
        s.send(failureXml(SaslCondition.TemporaryAuthFailure, "too many failed attempts from this address"));
        throw new StreamError(StreamCondition.PolicyViolation, "too many failed authentication attempts");
      }
      if (encryptionRequired(x.config.xmpp, s)) throw new SaslFailure(SaslCondition.EncryptionRequired);
      const mech = el.attrs.mechanism ?? "";
      if (!mechanisms(s, x).includes(mech)) throw new SaslFailure(SaslCondition.InvalidMechanism);
      const initial = decode(el);
      if (mech === "PLAIN") {
        if (initial === null) {
          s.sasl = "PLAIN";
          return s.send(`<challenge xmlns='${NS.SASL}'/>`);
        }
        return void plain(s, initial, x);
      }
      const { hash, plus } = SCRAM[mech];
      const scram = new ScramServer({
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
      });
      s.sasl = scram;
      if (initial === null) return s.send(`<challenge xmlns='${NS.SASL}'/>`);
      return scramFirst(s, scram, initial, x);
    }
    case "response": {
      const state = s.sasl;
      const data = decode(el) ?? "";
      if (state === "PLAIN") return void plain(s, data, x);
      if (!(state instanceof ScramServer)) throw new SaslFailure(SaslCondition.MalformedRequest, "no exchange in progress");
      if (!state.started) return scramFirst(s, state, data, x);
      const { serverFinal, user } = state.final(data);
      return succeed(s, user, b64(serverFinal), x);
    }
    default:
      throw new SaslFailure(SaslCondition.MalformedRequest, `unexpected <${el.name}>`);
  }
}

/** SCRAM's first step reads the user's keys from the store: input waits meanwhile (RFC 6120 §6.4: one exchange at a time). */
function scramFirst(s: ClientSession, scram: ScramServer, data: string, x: XmppContext): void {
  s.hold();
  scram.first(data).then(
    (serverFirst) => {
      if (s.phase === Phase.Negotiating && s.sasl === scram) s.send(`<challenge xmlns='${NS.SASL}'>${b64(serverFirst)}</challenge>`);
      s.release();
    },
    (e) => {
      if (s.phase === Phase.Negotiating && s.sasl === scram) {
        if (e instanceof SaslFailure) failed(s, e, x);
        else s.fail(e);
      }
      s.release();
    },
  );
}

async function plain(s: ClientSession, message: string, x: XmppContext): Promise<void> {
  s.sasl = null;
  const creds = parsePlain(message);
  const user = creds === null ? null : Authenticator.normalizeUser(creds.authcid);
  if (creds === null || user === null) return failed(s, new SaslFailure(SaslCondition.NotAuthorized), x);
  if (creds.authzid !== "" && creds.authzid !== user && creds.authzid.toLowerCase() !== `${user}@${s.domain}`) {
    return failed(s, new SaslFailure(SaslCondition.InvalidAuthzid), x);
  }
  s.hold();
  let ok: boolean | null = false;
  try {
    ok = await x.auth.checkPassword(user, creds.password);
  } catch (e) {
    // The store did not answer: no verdict on the password (RFC 6120 §6.5.12).
    x.log.warn("xmpp auth: account store unavailable", { error: (e as Error).message });
    ok = null;
  }
  if (s.phase === Phase.Closing) return;
  if (ok === true) succeed(s, user, "", x);
  else failed(s, new SaslFailure(ok === null ? SaslCondition.TemporaryAuthFailure : SaslCondition.NotAuthorized), x);
  s.release();
}

function succeed(s: ClientSession, user: string, data: string, x: XmppContext): void {
  s.sasl = null;
  s.send(data === "" ? `<success xmlns='${NS.SASL}'/>` : `<success xmlns='${NS.SASL}'>${data}</success>`);
  s.authenticated(user);
  s.restartStream();
  if (x.debug) x.log.debug("xmpp authenticated", { user, remote: s.conn.remoteAddress });
  // The new stream may go on on the worker that owns the user (cluster.handoff).
  handOff(s, x);
}

function failureXml(cond: SaslCondition, text = ""): string {
  const t = new Element("failure", { xmlns: NS.SASL });
  t.c(cond);
  if (text) t.c("text").t(text);
  return t.toString();
}

/** RFC 6120 §6.4.5: <failure/>, and after too many tries on this connection a stream error. */
function failed(s: ClientSession, e: SaslFailure, x: XmppContext): void {
  s.sasl = null;
  s.send(failureXml(e.condition));
  // Not a wrong credential: nothing counted against the client or its address.
  if (e.condition === SaslCondition.Aborted || e.condition === SaslCondition.InvalidMechanism || e.condition === SaslCondition.EncryptionRequired || e.condition === SaslCondition.TemporaryAuthFailure) return;
  x.ipFailures.fail(s.conn.remoteAddress);
  x.metrics.xmpp.authFailures++;
  x.log.info("xmpp authentication failed", { remote: s.conn.remoteAddress, condition: e.condition });
  if (++s.authFailures >= x.config.limits.maxAuthAttempts) s.fail(new StreamError(StreamCondition.PolicyViolation, "too many failed authentication attempts"));
}
