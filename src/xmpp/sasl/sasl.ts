import { StreamCondition, StreamError } from "../errors.js";
import { Ev, type Hooks } from "../hooks.js";
import { NS } from "../ns.js";
import { encryptionRequired } from "../policy.js";
import { Phase, type ClientSession } from "../client-session.js";
import type { XmppContext } from "../context.js";
import { bindingTypes } from "./channel-binding.js";
import { SaslCondition, SaslFailure } from "./scram.js";
import { admit, advance, authFailed, decode, mechanisms, passwordExchange, type Exchange, type Outcome } from "./exchange.js";
import { handOff } from "../handoff.js";

/** SASL (RFC 6120 §6) with SCRAM (RFC 5802, 7677; -PLUS per RFC 5929/9266) and PLAIN (RFC 4616); the mechanisms are in exchange.ts. */
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
    const failed = (e: SaslFailure) => authFailed(session, e, x, NS.SASL);
    const done = (o: Outcome) => outcome(session, o, x);
    try {
      switch (stanza.name) {
        case "abort":
          session.sasl = null;
          throw new SaslFailure(SaslCondition.Aborted);
        case "auth": {
          const mech = stanza.attrs.mechanism ?? "";
          admit(session, x, mech, mechanisms(session, x), (xml) => session.send(xml), NS.SASL);
          const initial = decode(stanza.getText());
          const ex = passwordExchange(session, mech, x);
          session.sasl = ex;
          advance(session, ex, initial, done, failed);
          break;
        }
        case "response": {
          const ex = session.sasl as Exchange | null;
          if (ex === null || typeof ex !== "object" || typeof ex.step !== "function") throw new SaslFailure(SaslCondition.MalformedRequest, "no exchange in progress");
          advance(session, ex, decode(stanza.getText()), done, failed);
          break;
        }
        default:
          throw new SaslFailure(SaslCondition.MalformedRequest, `unexpected <${stanza.name}>`);
      }
    } catch (e) {
      if (!(e instanceof SaslFailure)) throw e;
      failed(e);
    }
    return true;
  });
}

const b64 = (d: Buffer) => d.toString("base64");

function outcome(s: ClientSession, o: Outcome, x: XmppContext): void {
  if (o.kind === "challenge") {
    s.send(o.data.length === 0 ? `<challenge xmlns='${NS.SASL}'/>` : `<challenge xmlns='${NS.SASL}'>${b64(o.data)}</challenge>`);
    return;
  }
  s.sasl = null;
  s.send(o.data === null || o.data.length === 0 ? `<success xmlns='${NS.SASL}'/>` : `<success xmlns='${NS.SASL}'>${b64(o.data)}</success>`);
  s.authenticated(o.user);
  s.restartStream();
  if (x.debug) x.log.debug("xmpp authenticated", { user: o.user, remote: s.conn.remoteAddress });
  // The new stream may go on on the worker that owns the user (cluster.handoff).
  handOff(s, x);
}
