import { Envelope } from "../../envelope/envelope.js";
import { Ev, type Hooks } from "../hooks.js";
import type { XmppContext } from "../context.js";
import { codeForError } from "../errors.js";

/**
 * IQ between clients through the core's pending-response machinery (seed
 * 004): a get or set to a full JID is a Request; its id passes through
 * unchanged and the recipient's result or error is matched to it by
 * (requester, id), then sent back to the requester's worker in one hop.
 */
export function iqModule(hooks: Hooks, x: XmppContext): void {
  hooks.on(Ev.IqFull, ({ session: s, stanza, to }) => {
    const ns = stanza.getChildElements()[0]?.attrs.xmlns ?? "";
    const ttl = x.config.timeouts.xmpp.byNamespace[ns] ?? 0;
    s.submit(Envelope.request({ from: s.address, to, protocol: "xmpp", id: stanza.attrs.id, payload: stanza, ttl }));
    return true;
  });

  hooks.on(Ev.IqAnswer, ({ session: s, stanza, to }) => {
    // Answers to the server itself (our pings, roster pushes) end here.
    if (to === "" || to === s.bare || to.indexOf("@") < 0) return true;
    const answer = { from: s.address, to, protocol: "xmpp", responseFor: stanza.attrs.id, payload: stanza };
    // An XMPP requester reads the stanza itself; the code is for requesters in other protocols.
    s.submit(stanza.attrs.type === "result" ? Envelope.response(answer) : Envelope.error({ ...answer, code: codeForError(stanza) }));
    return true;
  });
}
