import { Element } from "ltx";
import { normalizeAddress, bareOf } from "../../address/address.js";
import { StanzaCondition } from "../errors.js";
import { NS } from "../ns.js";
import { bounce, iqResultFor } from "../replies.js";
import type { Hooks, IqEvent } from "../hooks.js";
import type { XmppContext } from "../context.js";
import { emptyItem, itemElement, pushRoster } from "./roster-items.js";
import { subscription } from "./subscription.js";

const MAX_TEXT = 1023;
const MAX_GROUPS = 64;

/** RFC 6121 §2: roster get, set and remove, with pushes to every interested resource. No versioning. */
export function rosterModule(hooks: Hooks, x: XmppContext): void {
  hooks.iq("self", NS.ROSTER, (e) => (e.type === "get" ? get(e, x) : set(e, x)));
}

function get({ session: s, stanza }: IqEvent, x: XmppContext): boolean {
  s.rosterRequested = true;
  const q = new Element("query", { xmlns: NS.ROSTER });
  for (const item of x.store.roster(s.user)) q.cnode(itemElement(item));
  iqResultFor(s, stanza, q);
  return true;
}

function set({ session: s, stanza, child }: IqEvent, x: XmppContext): boolean {
  // §2.3.3: exactly one item, with a valid JID.
  const items = child.getChildElements();
  const el = items[0];
  if (items.length !== 1 || el.name !== "item") return bounce(s, stanza, StanzaCondition.BadRequest), true;
  const jid = el.attrs.jid === undefined ? null : normalizeAddress(el.attrs.jid);
  if (jid === null) return bounce(s, stanza, StanzaCondition.JidMalformed), true;
  const contact = bareOf(jid);
  const existing = x.store.rosterItem(s.user, contact);

  if (el.attrs.subscription === "remove") {
    if (existing === undefined) return bounce(s, stanza, StanzaCondition.ItemNotFound), true;
    // §2.5.2: removing a contact cancels the subscriptions both ways.
    if (existing.subscription === "to" || existing.subscription === "both" || existing.ask) subscription(x, s, s.user, contact, "unsubscribe", stanza);
    if (existing.subscription === "from" || existing.subscription === "both") subscription(x, s, s.user, contact, "unsubscribed", stanza);
    x.store.removeRosterItem(s.user, contact);
    iqResultFor(s, stanza);
    pushRoster(x, s, s.user, contact);
    return true;
  }

  const name = el.attrs.name ?? "";
  const groups = [...new Set(el.getChildren("group").map((g) => g.getText()))];
  if (name.length > MAX_TEXT || groups.length > MAX_GROUPS || groups.some((g) => g === "" || g.length > MAX_TEXT)) {
    return bounce(s, stanza, StanzaCondition.NotAcceptable), true;
  }
  if (existing === undefined && x.store.rosterSize(s.user) >= x.config.xmpp.maxRosterItems) {
    return bounce(s, stanza, StanzaCondition.PolicyViolation, "roster full"), true;
  }
  // §2.1.2.5: subscription and ask are the server's; whatever the client put there is ignored.
  const item = { ...(existing ?? emptyItem(contact)), name, groups };
  x.store.putRosterItem(s.user, item);
  iqResultFor(s, stanza);
  pushRoster(x, s, s.user, item);
  return true;
}
