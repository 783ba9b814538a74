import { Element, parse } from "ltx";
import { Envelope, Flag, Kind } from "../../envelope/envelope.js";
import { bareOf } from "../../address/address.js";
import { StanzaCondition } from "../errors.js";
import { Ev, type Hooks, type StanzaEvent } from "../hooks.js";
import { bounce } from "../router.js";
import { priorityOf } from "../stanza.js";
import type { XmppContext } from "../context.js";
import type { XmppSession } from "../xmpp-session.js";
import { subscription, type SubscriptionType } from "./subscription.js";

/** Directed presence remembered per session; past it, still sent but not undone on logout. */
const MAX_DIRECTED = 1000;

const SUBSCRIPTION_TYPES = new Set(["subscribe", "subscribed", "unsubscribe", "unsubscribed"]);

function toSubscribers(s: XmppSession, stanza: Element): void {
  const { store, proxy } = s.x;
  for (const item of store.roster(s.user)) {
    if (item.subscription === "from" || item.subscription === "both") proxy.route(new Envelope(Kind.Presence, "", "", s.address, item.jid, "xmpp", stanza));
  }
  // RFC 6121 §4.2.2, §4.5.2: the user's own available resources see it too.
  proxy.route(new Envelope(Kind.Presence, "", "", s.address, s.bare, "xmpp", stanza));
}

/** Unavailable to everyone who could see this session (§4.5.2), directed presence included (§4.6.3). */
function goUnavailable(s: XmppSession, stanza: Element): void {
  s.available = false;
  s.presence = null;
  s.x.proxy.updatePresence(s);
  toSubscribers(s, stanza);
  for (const to of s.directed) s.x.proxy.route(new Envelope(Kind.Presence, "", "", s.address, to, "xmpp", stanza));
  s.directed.clear();
}

/** RFC 6121 §4: presence broadcast, probes, directed presence; §3 subscriptions go to subscription.ts. */
export function presenceModule(hooks: Hooks, x: XmppContext): void {
  hooks.on(Ev.PresenceBroadcast, ({ session: s, stanza }) => {
    const type = stanza.attrs.type;
    if (type === "unavailable") {
      if (s.available) goUnavailable(s, stanza);
      return true;
    }
    if (type !== undefined) return true;
    const initial = !s.available;
    s.available = true;
    s.priority = priorityOf(stanza);
    s.presence = stanza;
    x.proxy.updatePresence(s);
    toSubscribers(s, stanza);
    if (initial) hooks.fire(Ev.InitialPresence, { session: s });
    return true;
  });

  const directed = ({ session: s, stanza, to }: StanzaEvent) => {
    const type = stanza.attrs.type;
    if (type !== undefined && SUBSCRIPTION_TYPES.has(type)) {
      // §3: subscription stanzas are about bare JIDs and are stamped with the user's bare JID.
      const contact = bareOf(to);
      stanza.attrs.from = s.bare;
      if (contact !== s.bare && !subscription(x, s.user, contact, type as SubscriptionType, stanza)) {
        bounce(s, stanza, StanzaCondition.ResourceConstraint, "roster full");
      }
      return true;
    }
    // §4.3: probes are the server's business; a client's is ignored.
    if (type === "probe") return true;
    x.proxy.route(new Envelope(Kind.Presence, "", "", s.address, to, "xmpp", stanza));
    if (type === undefined && s.directed.size < MAX_DIRECTED) s.directed.add(to);
    else if (type === "unavailable") s.directed.delete(to);
    return true;
  };
  hooks.on(Ev.PresenceBare, directed);
  hooks.on(Ev.PresenceFull, directed);
  hooks.on(Ev.PresenceHost, () => true);

  hooks.on(Ev.InitialPresence, ({ session: s }) => {
    // §4.3.2: probe the contacts this user is subscribed to, and the user's own other resources.
    for (const item of x.store.roster(s.user)) {
      if (item.subscription === "to" || item.subscription === "both") x.proxy.route(new Envelope(Kind.Presence, "", "", s.address, item.jid, "xmpp", null, 0, Flag.Probe));
    }
    x.proxy.route(new Envelope(Kind.Presence, "", "", s.address, s.bare, "xmpp", null, 0, Flag.Probe));
    // §3.1.3: subscription requests not yet answered are shown again at each login.
    for (const r of x.store.subscriptionRequests(s.user)) {
      try {
        const el = parse(r.stanza);
        el.attrs.to = s.bare;
        s.send(el);
      } catch {
        x.store.removeSubscriptionRequest(s.user, r.from);
      }
    }
  });

  // The socket may just have died: the user still goes unavailable (RFC 6121 §4.5.3.1).
  hooks.on(Ev.SessionClosing, ({ session: s }) => {
    if (s.available) goUnavailable(s, new Element("presence", { type: "unavailable" }));
  });
}
