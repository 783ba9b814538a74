import { Element } from "ltx";
import { Envelope, Flag } from "../../envelope/envelope.js";
import { bareOf } from "../../address/address.js";
import type { RosterItem, Subscription } from "../../store/xmpp-store.js";
import type { XmppContext } from "../context.js";
import type { ClientSession } from "../client-session.js";
import { emptyItem, inTurn, pushRoster } from "./roster-items.js";

export type SubscriptionType = "subscribe" | "subscribed" | "unsubscribe" | "unsubscribed";

const addTo = (s: Subscription): Subscription => (s === "none" ? "to" : s === "from" ? "both" : s);
const addFrom = (s: Subscription): Subscription => (s === "none" ? "from" : s === "to" ? "both" : s);
const dropTo = (s: Subscription): Subscription => (s === "to" ? "none" : s === "both" ? "from" : s);
const dropFrom = (s: Subscription): Subscription => (s === "from" ? "none" : s === "both" ? "to" : s);

/**
 * The presence subscription state machine of RFC 6121 §3, for both ends at
 * once: every account lives on this server, so the user's outbound stanza and
 * the contact's inbound handling happen here, persisted in the store.
 * Resolves to false when the user's roster is full. `s` is the session whose
 * stanza started it: what the server sends because of it goes through it.
 * Changes of this process run one at a time (inTurn); the caller holds the
 * session's input until it is done.
 */
export function subscription(x: XmppContext, s: ClientSession, user: string, contact: string, type: SubscriptionType, stanza: Element): Promise<boolean> {
  return inTurn(() => change(x, s, user, contact, type, stanza));
}

/** subscription() for a caller already in turn (roster.ts's remove). */
export async function change(x: XmppContext, s: ClientSession, user: string, contact: string, type: SubscriptionType, stanza: Element): Promise<boolean> {
  const { store, config } = x;
  const userBare = `${user}@${config.domain}`;
  const contactUser = contact.slice(0, contact.indexOf("@"));
  const contactExists = contact.indexOf("@") > 0 && bareOf(contact).endsWith(`@${config.domain}`) && (await x.accounts.hasUser(contactUser));
  const mine = await store.rosterItem(user, contact);
  const theirs = contactExists ? await store.rosterItem(contactUser, userBare) : undefined;
  // The push follows the write: every session of `owner` updates the roster it keeps (roster-cache.ts).
  const save = async (owner: string, item: RosterItem) => {
    await store.putRosterItem(owner, item);
    pushRoster(x, s, owner, item);
  };
  const presence = (type: string, from: string, to: string, flags = 0) => {
    const payload = flags & Flag.Probe ? null : new Element("presence", { type });
    s.submit(Envelope.presence({ from, to, protocol: "xmpp", payload, flags }));
  };

  switch (type) {
    case "subscribe": {
      if (mine === undefined && (await store.rosterSize(user)) >= config.xmpp.maxRosterItems) return false;
      const item = mine ?? emptyItem(contact);
      if (item.subscription === "none" || item.subscription === "from") {
        if (!item.ask || mine === undefined) await save(user, { ...item, ask: true });
      }
      if (!contactExists) {
        // §3.1.3: no such contact: the request is refused on its behalf (already in turn: called directly).
        return (await change(x, s, contactUser, userBare, "unsubscribed", stanza)) || true;
      }
      // §3.1.3: already approved: the contact's server answers at once.
      if (theirs !== undefined && (theirs.subscription === "from" || theirs.subscription === "both")) {
        const now = (await store.rosterItem(user, contact))!;
        await save(user, { ...now, subscription: addTo(now.subscription), ask: false });
        presence("subscribed", contact, userBare);
        presence("probe", userBare, contact, Flag.Probe);
        return true;
      }
      if ((await store.subscriptionRequestCount(contactUser)) < config.xmpp.maxRosterItems || (await store.hasSubscriptionRequest(contactUser, userBare))) {
        const request = new Element("presence", { type: "subscribe", from: userBare, to: contact });
        for (const c of stanza.children) if (typeof c !== "string") request.cnode(c);
        await store.putSubscriptionRequest(contactUser, userBare, request.toString());
        s.submit(Envelope.presence({ from: userBare, to: contact, protocol: "xmpp", payload: request }));
      }
      return true;
    }
    case "subscribed": {
      // §3.1.5: only an answer to a pending request (no pre-approval).
      if (!(await store.removeSubscriptionRequest(user, contact))) return true;
      const item = mine ?? emptyItem(contact);
      await save(user, { ...item, subscription: addFrom(item.subscription) });
      if (theirs !== undefined && theirs.ask) {
        await save(contactUser, { ...theirs, subscription: addTo(theirs.subscription), ask: false });
      }
      presence("subscribed", userBare, contact);
      // §3.1.5: the new subscriber receives the user's current presence (answered by the core as to a probe).
      presence("probe", contact, userBare, Flag.Probe);
      return true;
    }
    case "unsubscribe": {
      if (mine !== undefined) await save(user, { ...mine, subscription: dropTo(mine.subscription), ask: false });
      if (theirs !== undefined) await save(contactUser, { ...theirs, subscription: dropFrom(theirs.subscription) });
      if (contactExists) {
        await store.removeSubscriptionRequest(contactUser, userBare);
        presence("unsubscribe", userBare, contact);
        // §3.3.3: the user stops seeing the contact.
        presence("unavailable", contact, userBare);
      }
      return true;
    }
    case "unsubscribed": {
      await store.removeSubscriptionRequest(user, contact);
      if (mine !== undefined) await save(user, { ...mine, subscription: dropFrom(mine.subscription) });
      if (theirs !== undefined) await save(contactUser, { ...theirs, subscription: dropTo(theirs.subscription), ask: false });
      if (contactExists || contact.endsWith(`@${config.domain}`)) {
        presence("unsubscribed", userBare, contact);
        presence("unavailable", userBare, contact);
      }
      return true;
    }
  }
}
