import { Element } from "ltx";
import { Envelope, Flag } from "../../envelope/envelope.js";
import type { RosterItem } from "../../store/xmpp-store.js";
import type { XmppContext } from "../context.js";
import { NS } from "../ns.js";
import { serverId } from "../stanza.js";
import { Phase, type ClientSession } from "../client-session.js";

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

/**
 * A store call made for a stanza: the session's input waits until it is done,
 * so that what the client sent next is handled after, in order; then `then`
 * runs with the answer. A store that fails costs this stanza, not the stream:
 * the client gets <internal-server-error/> for it where an answer is due.
 */
export function held<T>(x: XmppContext, s: ClientSession, work: Promise<T>, then: (v: T) => void, failed?: (e: Error) => void): void {
  s.hold();
  work.then(
    (v) => {
      try {
        if (s.phase !== Phase.Closing) then(v);
      } catch (e) {
        s.fail(e);
      }
      s.release();
    },
    (e: Error) => {
      x.log.warn("xmpp: store call failed", { user: s.user, error: e.message });
      if (s.phase !== Phase.Closing) failed?.(e);
      s.release();
    },
  );
}

let tail: Promise<unknown> = Promise.resolve();

/**
 * Roster and subscription changes of this process, one after another: each
 * reads items and writes them back, and two interleaved (a user and a contact
 * answering each other at once) would lose one's update.
 */
export function inTurn<T>(fn: () => Promise<T>): Promise<T> {
  const run = tail.then(fn, fn);
  tail = run.catch(() => {});
  return run;
}
