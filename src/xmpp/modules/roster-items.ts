import { Element } from "ltx";
import { Envelope, Flag, Kind } from "../../envelope/envelope.js";
import type { RosterItem } from "../../store/xmpp-store.js";
import type { XmppContext } from "../context.js";
import { NS } from "../ns.js";
import { serializeWith, serverId } from "../stanza.js";
import type { XmppSession } from "../xmpp-session.js";

export function itemElement(item: RosterItem): Element {
  const attrs: Record<string, string> = { jid: item.jid, subscription: item.subscription };
  if (item.name) attrs.name = item.name;
  if (item.ask) attrs.ask = "subscribe";
  const el = new Element("item", attrs);
  for (const g of item.groups) el.c("group").t(g);
  return el;
}

/**
 * RFC 6121 §2.1.6 roster push to every interested resource of `user`. It rides
 * the core to the bare JID (so it reaches resources on any worker); sessions
 * that never asked for the roster drop it. `removed` pushes subscription='remove'.
 */
export function pushRoster(x: XmppContext, user: string, item: RosterItem | string, acting?: XmppSession): void {
  const iq = new Element("iq", { type: "set", id: serverId("push") });
  const el = typeof item === "string" ? new Element("item", { jid: item, subscription: "remove" }) : itemElement(item);
  iq.c("query", { xmlns: NS.ROSTER }).cnode(el);
  x.proxy.route(new Envelope(Kind.Message, "", "", "", `${user}@${x.config.domain}`, "xmpp", iq, 0, Flag.AllResources));
  // The core reaches available resources only; one that fetched the roster before its presence is told directly.
  if (acting !== undefined && !acting.available && acting.rosterRequested) acting.send(serializeWith(iq, { to: acting.address }));
}

export function emptyItem(jid: string): RosterItem {
  return { jid, name: "", subscription: "none", ask: false, groups: [] };
}
