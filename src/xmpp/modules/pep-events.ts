import { Element, parse } from "ltx";
import { Envelope, Flag } from "../../envelope/envelope.js";
import { NS } from "../ns.js";
import { Phase, type ClientSession } from "../client-session.js";
import type { XmppContext } from "../context.js";
import { serializeWith, serverId } from "../stanza.js";
import { toWire } from "../outbound.js";
import type { AccessModel } from "../../store/pep-store.js";
import { blocks } from "./blocklist.js";
import { withRoster } from "./roster-cache.js";
import type { Caps } from "./caps.js";

/** An event message (XEP-0060 §7.1.2.1) from the owner's bare JID; `inner` is the child of <event/> (items, delete). */
export function eventMessage(owner: string, inner: Element): Element {
  const m = new Element("message", { type: "headline", from: owner, id: serverId("pep") });
  m.c("event", { xmlns: NS.PUBSUB_EVENT }).cnode(inner);
  return m;
}

/** A stored payload as an element; a damaged row counts as none. */
export function payloadElement(text: string): Element | null {
  try {
    const el = parse(text);
    return el instanceof Element ? el : null;
  } catch {
    return null;
  }
}

/**
 * XEP-0163 §4.3: an event goes to the owner's own resources and, unless the
 * node is whitelist (only the owner), to each contact with a subscription
 * from the owner ('from' or 'both', §4.5 the presence access model; open
 * nodes notify the same people) that the owner has not blocked. One envelope
 * per bare JID, to every bound session (Flag.EveryResource, never stored):
 * each session writes it only when it is available and its own caps say
 * `<node>+notify` (filterEvent below, on the recipient's worker).
 */
export function notify(x: XmppContext, s: ClientSession, access: AccessModel, event: Element): void {
  const send = (to: string) => s.submit(Envelope.message({ from: s.bare, to, protocol: "xmpp", payload: event, flags: Flag.EveryResource }));
  send(s.bare);
  if (access === "whitelist") return;
  withRoster(x, s, (roster) => {
    for (const item of roster.values()) {
      if (item.subscription !== "from" && item.subscription !== "both") continue;
      if (!item.jid.endsWith(`@${s.domain}`) || (s.blocked !== null && blocks(s.blocked, item.jid, s.bare))) continue;
      send(item.jid);
    }
  });
}

/**
 * On the recipient's side (XmppSession.deliver): what a PEP event becomes on
 * this session's stream, or null when it is not wanted here. Any other
 * message sent to every resource goes the usual way (toWire). `ownEvent` sees
 * the user's own events first (avatar.ts: XEP-0398's hash in presence), passed
 * in so that avatar.ts, which sends events through this file, is not imported here.
 */
export function filterEvent(x: XmppContext, caps: Caps, s: ClientSession, env: Envelope, ownEvent: (x: XmppContext, s: ClientSession, event: Element) => void): string | null {
  const el = env.payload as Element | null;
  const ev = el?.name === "message" ? el.getChild("event", NS.PUBSUB_EVENT) : undefined;
  if (el == null || ev === undefined) return toWire(s, env);
  // The user's own events reach every session of the user: a new avatar changes the hash its presence carries (XEP-0398).
  if (env.from === s.bare) ownEvent(x, s, ev);
  if (!s.available) return null;
  const node = ev.getChildElements()[0]?.attrs.node;
  if (typeof node !== "string" || !caps.notifyNodes(s).has(node)) return null;
  return serializeWith(el, { from: env.from, to: s.address });
}

/**
 * XEP-0163 §4.3.4 (and XEP-0060 §4.3.4's on_sub_and_presence): a session that
 * became available, or now says `+notify` for more nodes, gets the newest
 * item of each of these nodes of its own account and of every contact it has
 * a subscription to ('to' or 'both': it is in their roster as 'from' or
 * 'both'), except whitelist nodes of others and users who blocked it.
 */
export function sendLastItems(x: XmppContext, s: ClientSession, nodes: ReadonlySet<string>): void {
  withRoster(x, s, (roster) => {
    const users = [s.user];
    const suffix = `@${s.domain}`;
    for (const item of roster.values()) {
      if (item.subscription !== "to" && item.subscription !== "both") continue;
      if (!item.jid.endsWith(suffix) || (s.blockedBy !== null && s.blockedBy.has(item.jid))) continue;
      users.push(item.jid.slice(0, -suffix.length));
    }
    x.pep.lastItems(users, [...nodes]).then(
      (rows) => {
        if (s.phase !== Phase.Bound || !s.available) return;
        for (const r of rows) {
          if (r.accessModel === "whitelist" && r.user !== s.user) continue;
          const payload = payloadElement(r.payload);
          if (payload === null) continue;
          const items = new Element("items", { node: r.node });
          items.c("item", { id: r.id }).cnode(payload);
          const m = eventMessage(`${r.user}${suffix}`, items);
          m.attrs.to = s.address;
          s.send(m);
        }
      },
      (e: Error) => x.log.warn("xmpp: PEP last items not read", { user: s.user, error: e.message }),
    );
  });
}
