import { Element } from "ltx";
import { Envelope, Flag } from "../../envelope/envelope.js";
import type { RosterItem } from "../../store/xmpp-store.js";
import type { XmppContext } from "../context.js";
import { NS } from "../ns.js";
import { serverId } from "../stanza.js";
import type { ClientSession } from "../client-session.js";

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
 * the core to the bare JID and reaches every bound session, available or not,
 * on any worker; sessions that never asked for the roster drop it.
 * A string `item` pushes subscription='remove'. `s` is the session whose action caused it.
 */
export function pushRoster(x: XmppContext, s: ClientSession, user: string, item: RosterItem | string): void {
  const iq = new Element("iq", { type: "set", id: serverId("push") });
  const el = typeof item === "string" ? new Element("item", { jid: item, subscription: "remove" }) : itemElement(item);
  iq.c("query", { xmlns: NS.ROSTER }).cnode(el);
  s.submit(Envelope.message({ from: "", to: `${user}@${x.config.domain}`, protocol: "xmpp", payload: iq, flags: Flag.EveryResource }));
}

export function emptyItem(jid: string): RosterItem {
  return { jid, name: "", subscription: "none", ask: false, groups: [] };
}
