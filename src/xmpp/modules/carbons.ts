import { Element } from "ltx";
import { bareOf } from "../../address/address.js";
import { Envelope, Flag } from "../../envelope/envelope.js";
import { Ev, type Hooks, type IqEvent, type StanzaEvent } from "../hooks.js";
import { NS } from "../ns.js";
import { bounce, iqResultFor } from "../replies.js";
import { StanzaCondition } from "../errors.js";
import type { ClientSession } from "../client-session.js";

/**
 * XEP-0280 Message Carbons (with XEP-0334's <no-copy/>). A copy is an ordinary
 * core envelope to the user's own bare JID with Flag.EveryResource, like a
 * roster push: it reaches every bound session of the user on any worker, and
 * each session writes it only if it enabled carbons and is not the one that
 * sent (sent carbon) or received (received carbon) the original; the envelope's
 * `from` is that session's full JID (outbound.ts, carbonWire).
 */
export function carbonsModule(hooks: Hooks): void {
  // §3: enable/disable, addressed to the server or to the own bare JID (or without `to`).
  const toggle = (e: IqEvent) => {
    if (e.type !== "set") return false;
    const name = e.child.name;
    if (name !== "enable" && name !== "disable") return bounce(e.session, e.stanza, StanzaCondition.BadRequest), true;
    e.session.carbons = name === "enable";
    iqResultFor(e.session, e.stanza);
    return true;
  };
  hooks.iq("host", NS.CARBONS, toggle);
  hooks.iq("self", NS.CARBONS, toggle);

  // §6 sent carbons, before the message module submits the original (higher priority, not handled here).
  const sent = ({ session: s, stanza, to }: StanzaEvent) => {
    if (s.carbons && bareOf(to) !== s.bare && eligible(stanza)) copy(s, "sent", stanza, s.address, to);
    return false;
  };
  hooks.on(Ev.MessageBare, sent, 10);
  hooks.on(Ev.MessageFull, sent, 10);

  /*
   * §6 received carbons, made by the session that received the message at its
   * full JID. It alone knows that the message reached that one resource (the
   * sender cannot tell whether the full JID is online, and when it is not the
   * message goes to every available resource as if to the bare JID, which must
   * not be copied again, §6). The copy then rides the core to the owner of the
   * bare JID, which knows every session of the user on every worker, and also
   * covers senders on other workers or in other protocols' sessions.
   */
  hooks.on(Ev.MessageDelivered, ({ session: s, stanza, from }) => {
    if (bareOf(from) !== s.bare && eligible(stanza)) copy(s, "received", stanza, from, s.address);
  });
}

/** Wraps `original` (as from `from` to `to`) in <sent/> or <received/> and sends it to the user's other resources. */
function copy(s: ClientSession, dir: "sent" | "received", original: Element, from: string, to: string): void {
  // The forwarded stanza is in jabber:client (XEP-0297 §3); its content is shared, not copied.
  const inner = new Element("message", { ...original.attrs, xmlns: NS.CLIENT, from, to });
  inner.children = original.children;
  const attrs: Record<string, string> = {};
  if (original.attrs.type !== undefined) attrs.type = original.attrs.type;
  const outer = new Element("message", attrs);
  outer.c(dir, { xmlns: NS.CARBONS }).c("forwarded", { xmlns: NS.FORWARD }).cnode(inner);
  s.submit(Envelope.message({ from: s.address, to: s.bare, protocol: "xmpp", payload: outer, flags: Flag.EveryResource }));
}

/**
 * XEP-0280 §6: chat messages, normal ones with a body; not errors, groupchat,
 * headlines, what is marked <private/> or XEP-0334 <no-copy/>, nor carbons themselves.
 */
export function eligible(el: Element): boolean {
  const type = el.attrs.type;
  let body = false;
  const kids = el.children;
  for (let i = 0; i < kids.length; i++) {
    const c = kids[i];
    if (typeof c === "string") continue;
    const ns = (c as Element).attrs.xmlns;
    if (ns === NS.CARBONS || (ns === NS.HINTS && (c as Element).name === "no-copy")) return false;
    if ((c as Element).name === "body") body = true;
  }
  if (type === "chat") return true;
  return (type === undefined || type === "normal") && body;
}
