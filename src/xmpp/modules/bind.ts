import { randomBytes } from "node:crypto";
import { Element } from "ltx";
import { StanzaCondition, stanzaError } from "../errors.js";
import { Ev, type Hooks } from "../hooks.js";
import { NS } from "../ns.js";
import { iqResultFor } from "../replies.js";
import { Phase, type ClientSession } from "../client-session.js";

const MAX_RESOURCE = 1023;

/**
 * Resource binding (RFC 6120 §7) and the RFC 3921 session establishment that
 * older clients (and Tsung) still send; advertised as optional (RFC 6121 App. E).
 */
export function bindModule(hooks: Hooks): void {
  hooks.on(Ev.StreamFeatures, ({ session, features }) => {
    if (session.phase !== Phase.Authenticated) return;
    features.c("bind", { xmlns: NS.BIND });
    features.c("session", { xmlns: NS.SESSION }).c("optional");
  });

  hooks.on(Ev.Negotiation, ({ session, stanza }) => {
    if (session.phase !== Phase.Authenticated || stanza.name !== "iq") return false;
    const bind = stanza.getChild("bind", NS.BIND);
    if (bind === undefined || stanza.attrs.type !== "set" || stanza.attrs.id === undefined) return false;
    const asked = (bind.getChildText("resource") ?? "").trim();
    // RFC 7622 §3.4 is not applied in full: control characters and oversized resources are refused.
    if (asked.length > MAX_RESOURCE || /[\u0000-\u001f\u007f]/.test(asked)) {
      session.send(stanzaError(stanza, StanzaCondition.BadRequest, "", "", "resource not acceptable"));
      return true;
    }
    // RFC 6120 §7.7.2.2: asking for a resource in use replaces the old session (it gets <conflict/>).
    session.bind(asked === "" ? randomBytes(9).toString("base64url") : asked);
    const result = new Element("bind", { xmlns: NS.BIND });
    result.c("jid").t(session.address);
    iqResultFor(session, stanza, result);
    return true;
  });

  const sessionIq = (e: { session: ClientSession; stanza: Element; type: string }) => {
    if (e.type !== "set") return false;
    iqResultFor(e.session, e.stanza);
    return true;
  };
  hooks.iq("host", NS.SESSION, sessionIq);
  hooks.iq("self", NS.SESSION, sessionIq);
}
