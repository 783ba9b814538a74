import { Envelope, Flag, Kind } from "../../envelope/envelope.js";
import { Ev, type Hooks, type StanzaEvent } from "../hooks.js";

/** RFC 6121 §8.5.2/§8.5.3: what the type of a message asks of delivery. */
function flagsFor(type: string | undefined, full: boolean): number {
  switch (type) {
    case undefined:
    case "normal":
    case "chat":
      // To an unavailable resource as if to the bare JID; with nobody online, stored.
      return (full ? Flag.BareFallback : 0) | Flag.Offline;
    case "headline":
      // Never stored; to a bare JID it still reaches every available resource.
      return 0;
    default:
      // groupchat and error: only to the resource addressed, else dropped (errors are never answered).
      return 0;
  }
}

/** Messages between users go through the core; the UserChannel applies the bare-JID rules. */
export function messageModule(hooks: Hooks): void {
  const send = (full: boolean) => ({ session: s, stanza, to }: StanzaEvent) => {
    const env = new Envelope(Kind.Message, stanza.attrs.id ?? "", "", s.address, to, "xmpp", stanza, 0, flagsFor(stanza.attrs.type, full));
    s.x.proxy.submit(s, env);
    return true;
  };
  hooks.on(Ev.MessageBare, send(false));
  hooks.on(Ev.MessageFull, send(true));
  // To the server itself: nothing here reads them (RFC 6121 §8.5.1 lets a server drop them).
  hooks.on(Ev.MessageHost, () => true);
}
