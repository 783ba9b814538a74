import type { Element } from "ltx";
import type { Hooks, IqEvent } from "../hooks.js";
import { NS } from "../ns.js";
import { bounce, iqResultFor } from "../replies.js";
import { StanzaCondition } from "../errors.js";

/**
 * XEP-0280 Message Carbons 1.0 (with XEP-0334's <no-copy/>), on the core's
 * copies: enabling sets the session's wantsCopies, which the owner of the bare
 * JID learns like a presence change. The message module marks each eligible
 * message with Flag.Copies; the core then hands one copy to every other session
 * of the recipient (§7) and of the sender (§8) that wants copies and did not
 * get the original, and makes none when nobody wants one; outbound.ts writes a
 * copy as <received/> or <sent/> from the user's bare JID.
 */
export function carbonsModule(hooks: Hooks): void {
  // §4, §5: enable/disable, addressed to the server or to the own bare JID (or without `to`).
  const toggle = (e: IqEvent) => {
    if (e.type !== "set") return false;
    const name = e.child.name;
    if (name !== "enable" && name !== "disable") return bounce(e.session, e.stanza, StanzaCondition.BadRequest), true;
    const on = name === "enable";
    // §10.1: enabling twice is no error; the owner is told only of a change.
    if (e.session.wantsCopies !== on) {
      e.session.wantsCopies = on;
      e.session.presenceChanged();
    }
    iqResultFor(e.session, e.stanza);
    return true;
  };
  hooks.iq("host", NS.CARBONS, toggle);
  hooks.iq("self", NS.CARBONS, toggle);
}

/**
 * XEP-0280 §6: chat messages, normal ones with a body; not errors, groupchat,
 * headlines, what is marked <private/> (§9) or XEP-0334 <no-copy/>, nor carbons themselves.
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
