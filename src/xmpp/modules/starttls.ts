import type { SecureContext } from "node:tls";
import { StreamCondition, StreamError } from "../errors.js";
import { Ev, type Hooks } from "../hooks.js";
import { NS } from "../ns.js";
import { encryptionRequired } from "../policy.js";
import { Phase, type XmppSession } from "../xmpp-session.js";

interface Upgradable {
  startTls(context: SecureContext, onSecure: () => void): void;
}

function offered(s: XmppSession): boolean {
  return s.phase === Phase.Negotiating && !s.secure && s.tls.starttls !== null && "startTls" in s.conn;
}

/** STARTTLS (RFC 6120 §5), offered on tcp listeners that have a certificate. */
export function starttlsModule(hooks: Hooks): void {
  hooks.on(Ev.StreamFeatures, ({ session, features }) => {
    if (offered(session)) {
      const tls = features.c("starttls", { xmlns: NS.TLS });
      if (encryptionRequired(session)) tls.c("required");
    } else if (session.phase === Phase.Negotiating && encryptionRequired(session)) {
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
    (session.conn as unknown as Upgradable).startTls(session.tls.starttls!, () => {});
    return true;
  });
}
