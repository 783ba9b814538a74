import { Envelope, Flag } from "../../envelope/envelope.js";
import { StanzaCondition } from "../errors.js";
import { Ev, type Hooks, type StanzaEvent } from "../hooks.js";
import { bounce } from "../replies.js";

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

/** Messages between users go through the core; the UserChannel applies the bare-JID rules. */
export function messageModule(hooks: Hooks): void {
  const send = (full: boolean) => ({ session: s, stanza, to }: StanzaEvent) => {
    const type = stanza.attrs.type;
    // §8.5.2.1.1, §8.5.2.2.1: a groupchat message to a bare JID is delivered to no resource.
    if (!full && type === "groupchat") return bounce(s, stanza, StanzaCondition.ServiceUnavailable), true;
    s.submit(Envelope.message({ from: s.address, to, protocol: "xmpp", payload: stanza, flags: flagsFor(type, full), id: stanza.attrs.id ?? "" }));
    return true;
  };
  hooks.on(Ev.MessageBare, send(false));
  hooks.on(Ev.MessageFull, send(true));
  // To the server itself: nothing here reads them (RFC 6121 §8.5.1 lets a server drop them).
  hooks.on(Ev.MessageHost, () => true);
}
