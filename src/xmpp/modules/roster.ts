import { Element } from "ltx";
import { normalizeAddress, bareOf } from "../../address/address.js";
import { StanzaCondition } from "../errors.js";
import { NS } from "../ns.js";
import { bounce, iqResultFor } from "../replies.js";
import { Ev, type Hooks, type IqEvent } from "../hooks.js";
import type { XmppContext } from "../context.js";
import { emptyItem, held, inTurn, itemElement, pushRoster } from "./roster-items.js";
import { change } from "./subscription.js";
import { loadRoster } from "./roster-cache.js";

const MAX_TEXT = 1023;
const MAX_GROUPS = 64;

/** RFC 6121 §2: roster get, set and remove, with pushes to every interested resource. No versioning. */
export function rosterModule(hooks: Hooks, x: XmppContext): void {
  hooks.iq("self", NS.ROSTER, (e) => (e.type === "get" ? get(e, x) : set(e, x)));
  // Read once per session, before its initial presence: presence routing uses it (roster-cache.ts).
  hooks.on(Ev.SessionBound, ({ session }) => loadRoster(x, session));
}

function get({ session: s, stanza }: IqEvent, x: XmppContext): boolean {
  s.rosterRequested = true;
  held(x, s, x.store.roster(s.user), (items) => {
    const q = new Element("query", { xmlns: NS.ROSTER });
    for (const item of items) q.cnode(itemElement(item));
    iqResultFor(s, stanza, q);
  }, () => bounce(s, stanza, StanzaCondition.InternalServerError));
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
  const remove = el.attrs.subscription === "remove";
  const name = el.attrs.name ?? "";
  const groups = [...new Set(el.getChildren("group").map((g) => g.getText()))];
  if (!remove && (name.length > MAX_TEXT || groups.length > MAX_GROUPS || groups.some((g) => g === "" || g.length > MAX_TEXT))) {
    return bounce(s, stanza, StanzaCondition.NotAcceptable), true;
  }
  const work = inTurn(async (): Promise<StanzaCondition | null> => {
    const existing = await x.store.rosterItem(s.user, contact);
    if (remove) {
      if (existing === undefined) return StanzaCondition.ItemNotFound;
      // §2.5.2: removing a contact cancels the subscriptions both ways.
      if (existing.subscription === "to" || existing.subscription === "both" || existing.ask) await change(x, s, s.user, contact, "unsubscribe", stanza);
      if (existing.subscription === "from" || existing.subscription === "both") await change(x, s, s.user, contact, "unsubscribed", stanza);
      await x.store.removeRosterItem(s.user, contact);
      iqResultFor(s, stanza);
      pushRoster(x, s, s.user, contact);
      return null;
    }
    if (existing === undefined && (await x.store.rosterSize(s.user)) >= x.config.xmpp.maxRosterItems) return StanzaCondition.PolicyViolation;
    // §2.1.2.5: subscription and ask are the server's; whatever the client put there is ignored.
    const item = { ...(existing ?? emptyItem(contact)), name, groups };
    await x.store.putRosterItem(s.user, item);
    iqResultFor(s, stanza);
    pushRoster(x, s, s.user, item);
    return null;
  });
  held(x, s, work, (refused) => {
    if (refused !== null) bounce(s, stanza, refused, refused === StanzaCondition.PolicyViolation ? "roster full" : "");
  }, () => bounce(s, stanza, StanzaCondition.InternalServerError));
  return true;
}
