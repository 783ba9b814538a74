import { Envelope, Kind } from "../../envelope/envelope.js";
import { Ev, type Hooks } from "../hooks.js";

/**
 * IQ between clients through the core's pending-response machinery: a get or
 * set to a full JID is a Request (the proxy id travels, the asker's id comes
 * back); a result or error is the answer to the proxy id it carries.
 */
export function iqModule(hooks: Hooks): void {
  hooks.on(Ev.IqFull, ({ session: s, stanza, to }) => {
    const ns = stanza.getChildElements()[0]?.attrs.xmlns ?? "";
    const ttl = s.x.config.timeouts.xmpp.byNamespace[ns] ?? 0;
    s.x.proxy.submit(s, new Envelope(Kind.Request, stanza.attrs.id, "", s.address, to, "xmpp", stanza, ttl));
    return true;
  });

  hooks.on(Ev.IqAnswer, ({ session: s, stanza, to }) => {
    // Answers to the server itself (our pings, roster pushes) end here.
    if (to === "" || to === s.bare || to.indexOf("@") < 0) return true;
    const kind = stanza.attrs.type === "result" ? Kind.Response : Kind.Error;
    s.x.proxy.submit(s, new Envelope(kind, "", stanza.attrs.id, s.address, to, "xmpp", stanza));
    return true;
  });
}
