import { Element, parse } from "ltx";
import { Envelope, Flag } from "../../envelope/envelope.js";
import { bareOf } from "../../address/address.js";
import { StanzaCondition } from "../errors.js";
import { Ev, type Hooks, type StanzaEvent } from "../hooks.js";
import { bounce } from "../replies.js";
import { priorityOf } from "../stanza.js";
import type { XmppContext } from "../context.js";
import type { ClientSession } from "../client-session.js";
import { subscription, type SubscriptionType } from "./subscription.js";
import { withRoster } from "./roster-cache.js";
import { held } from "./roster-items.js";
import type { RosterItem } from "../../store/xmpp-store.js";
import { blocks } from "./blocklist.js";

/** Directed presence remembered per session; past it, still sent but not undone on logout. */
const MAX_DIRECTED = 1000;

const SUBSCRIPTION_TYPES = new Set(["subscribe", "subscribed", "unsubscribe", "unsubscribed"]);

/** This session's presence to `to`. */
function presenceTo(s: ClientSession, to: string, stanza: Element | null, flags = 0): void {
  s.submit(Envelope.presence({ from: s.address, to, protocol: "xmpp", payload: stanza, flags }));
}

/** From the roster kept on the session (roster-cache.ts): no store read per presence. */
function toSubscribers(s: ClientSession, roster: ReadonlyMap<string, RosterItem>, stanza: Element): void {
  const blocked = s.blocked;
  for (const item of roster.values()) {
    // XEP-0191 §3.3: a blocked contact sees the user as unavailable.
    if ((item.subscription === "from" || item.subscription === "both") && (blocked === null || !blocks(blocked, item.jid, s.bare))) presenceTo(s, item.jid, stanza);
  }
  // RFC 6121 §4.2.2, §4.5.2: the user's own available resources see it too.
  presenceTo(s, s.bare, stanza);
}

/** Unavailable to everyone who could see this session (§4.5.2), directed presence included (§4.6.3). */
function goUnavailable(x: XmppContext, s: ClientSession, stanza: Element): void {
  s.available = false;
  s.presence = null;
  s.presenceChanged();
  const directed = [...s.directed];
  s.directed.clear();
  withRoster(x, s, (roster) => {
    toSubscribers(s, roster, stanza);
    for (const to of directed) presenceTo(s, to, stanza);
  });
}

/** RFC 6121 §4: presence broadcast, probes, directed presence; §3 subscriptions go to subscription.ts. */
export function presenceModule(hooks: Hooks, x: XmppContext): void {
  hooks.on(Ev.PresenceBroadcast, ({ session: s, stanza }) => {
    const type = stanza.attrs.type;
    if (type === "unavailable") {
      if (s.available) goUnavailable(x, s, stanza);
      return true;
    }
    if (type !== undefined) return true;
    withRoster(x, s, (roster) => {
      const initial = !s.available;
      s.available = true;
      s.priority = priorityOf(stanza);
      s.presence = stanza;
      s.presenceChanged();
      toSubscribers(s, roster, stanza);
      if (initial) hooks.fire(Ev.InitialPresence, { session: s });
    });
    return true;
  });

  const directed = ({ session: s, stanza, to }: StanzaEvent) => {
    const type = stanza.attrs.type;
    if (type !== undefined && SUBSCRIPTION_TYPES.has(type)) {
      // §3: subscription stanzas are about bare JIDs and are stamped with the user's bare JID.
      const contact = bareOf(to);
      stanza.attrs.from = s.bare;
      if (contact === s.bare) return true;
      held(x, s, subscription(x, s, s.user, contact, type as SubscriptionType, stanza), (ok) => {
        if (!ok) bounce(s, stanza, StanzaCondition.ResourceConstraint, "roster full");
      });
      return true;
    }
    // §4.3: probes are the server's business; a client's is ignored.
    if (type === "probe") return true;
    presenceTo(s, to, stanza);
    if (type === undefined && s.directed.size < MAX_DIRECTED) s.directed.add(to);
    else if (type === "unavailable") s.directed.delete(to);
    return true;
  };
  hooks.on(Ev.PresenceBare, directed);
  hooks.on(Ev.PresenceFull, directed);
  hooks.on(Ev.PresenceHost, () => true);

  hooks.on(Ev.InitialPresence, ({ session: s }) => {
    // §4.3.2: probe the contacts this user is subscribed to, and the user's own other resources.
    withRoster(x, s, (roster) => {
      for (const item of roster.values()) {
        if ((item.subscription === "to" || item.subscription === "both") && (s.blocked === null || !blocks(s.blocked, item.jid, s.bare))) presenceTo(s, item.jid, null, Flag.Probe);
      }
    });
    presenceTo(s, s.bare, null, Flag.Probe);
    // §3.1.3: subscription requests not yet answered are shown again at each login.
    held(x, s, x.store.subscriptionRequests(s.user), (requests) => {
      for (const r of requests) {
        // XEP-0191: a request from a blocked address stays stored, unseen, until it is unblocked.
        if (s.blocked !== null && blocks(s.blocked, r.from, s.bare)) continue;
        try {
          const el = parse(r.stanza);
          el.attrs.to = s.bare;
          s.send(el);
        } catch {
          void x.store.removeSubscriptionRequest(s.user, r.from).catch(() => {});
        }
      }
    });
  });

  // The socket may just have died: the user still goes unavailable (RFC 6121 §4.5.3.1).
  hooks.on(Ev.SessionClosing, ({ session: s }) => {
    if (s.available) goUnavailable(x, s, new Element("presence", { type: "unavailable" }));
  });
}
