import { StreamCondition, StreamError } from "../errors.js";
import { Ev, type Hooks } from "../hooks.js";
import { NS } from "../ns.js";
import { encryptionRequired } from "../policy.js";
import { Phase, type ClientSession } from "../client-session.js";
import type { XmppContext } from "../context.js";

function offered(s: ClientSession): boolean {
  return s.phase === Phase.Negotiating && !s.secure && s.starttls !== null && s.conn.canStartTls;
}

/** STARTTLS (RFC 6120 §5), offered on tcp listeners that have a certificate. */
export function starttlsModule(hooks: Hooks, x: XmppContext): void {
  const c = x.config.xmpp;
  hooks.on(Ev.StreamFeatures, ({ session, features }) => {
    if (offered(session)) {
      const tls = features.c("starttls", { xmlns: NS.TLS });
      if (encryptionRequired(c, session)) tls.c("required");
    } else if (session.phase === Phase.Negotiating && encryptionRequired(c, session)) {
      // Nothing this client could do would be allowed: say so instead of offering an empty list.
      throw new StreamError(StreamCondition.PolicyViolation, "encryption is required and this listener has no TLS");
    }
  }, 10);

  hooks.on(Ev.Negotiation, ({ session, stanza }) => {
    if (stanza.attrs.xmlns !== NS.TLS || stanza.name !== "starttls") return false;
    if (!offered(session)) {
      // RFC 6120 §5.4.2.2: failure, then close.
      session.send(`<failure xmlns='${NS.TLS}'/>`);
      session.close("starttls refused");
      return true;
    }
    session.send(`<proceed xmlns='${NS.TLS}'/>`);
    session.restartStream();
    session.conn.startTls(session.starttls!);
    return true;
  });
}
