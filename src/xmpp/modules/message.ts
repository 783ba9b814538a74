import { Envelope, Flag } from "../../envelope/envelope.js";
import { monotonicMs } from "../../timer/clock.js";
import { StanzaCondition } from "../errors.js";
import { Ev, type Hooks, type StanzaEvent } from "../hooks.js";
import { bounce } from "../replies.js";
import { eligible } from "./carbons.js";
import type { StanzaIds } from "./stanza-id.js";
import type { ClientSession } from "../client-session.js";

/** RFC 6121 §8.5.2/§8.5.3: what the type of a message asks of delivery. */
function flagsFor(type: string | undefined, full: boolean): number {
  switch (type) {
    case undefined:
    case "normal":
    case "chat":
      // To an unavailable resource as if to the bare JID; with nobody online, stored.
      return (full ? Flag.BareFallback : 0) | Flag.Offline;
    case "groupchat":
      // §8.5.3.2.1: to a resource that is not online, an error to the sender.
      return Flag.Bounce;
    default:
      // headline: never stored, and to a bare JID it still reaches every available resource;
      // error: only to the resource addressed, else dropped (errors are never answered).
      return 0;
  }
}

/** Flag.Resent just after a resumption: the message is perhaps sent again, and delivered already (Session.recent drops it then). */
export function resentFlag(s: ClientSession): number {
  return s.resentUntil !== 0 && monotonicMs() < s.resentUntil ? Flag.Resent : 0;
}

/** `to` is the bare JID or a full JID of the user `bare` (both canonical), without slicing a string per message. */
function ownAddress(to: string, bare: string): boolean {
  return to.startsWith(bare) && (to.length === bare.length || to.charCodeAt(bare.length) === 0x2f);
}

/**
 * Messages between users go through the core; the UserChannel applies the bare-JID rules.
 * With archives on (`ids`), an archived message gets its XEP-0359 stanza-id here and Flag.Archive.
 */
export function messageModule(hooks: Hooks, ids: StanzaIds | null = null): void {
  const send = (full: boolean) => ({ session: s, stanza, to }: StanzaEvent) => {
    const type = stanza.attrs.type;
    // §8.5.2.1.1, §8.5.2.2.1: a groupchat message to a bare JID is delivered to no resource.
    if (!full && type === "groupchat") return bounce(s, stanza, StanzaCondition.ServiceUnavailable), true;
    // XEP-0280: the core copies it to other resources that enabled carbons (none: no cost); not between one's own resources.
    const copies = eligible(stanza) && !ownAddress(to, s.bare) ? Flag.Copies : 0;
    // XEP-0313: the owners of both users archive it (ChannelOwner, ProxyDaemon.copyToOwner).
    const archive = ids !== null && ids.mark(stanza, s.bare, to) ? Flag.Archive : 0;
    s.submit(Envelope.message({ from: s.address, to, protocol: "xmpp", payload: stanza, flags: flagsFor(type, full) | copies | archive | resentFlag(s), id: stanza.attrs.id ?? "" }));
    return true;
  };
  hooks.on(Ev.MessageBare, send(false));
  hooks.on(Ev.MessageFull, send(true));
  // To the server itself: nothing here reads them (RFC 6121 §8.5.1 lets a server drop them).
  hooks.on(Ev.MessageHost, () => true);
}
