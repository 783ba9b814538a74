import { NS } from "../ns.js";
import { iqResultFor } from "../replies.js";
import type { Hooks, IqEvent } from "../hooks.js";

/** XEP-0199: the server answers pings to itself and, on the user's behalf, to the bare JID. */
export function pingModule(hooks: Hooks): void {
  const pong = (e: IqEvent) => {
    if (e.type !== "get") return false;
    iqResultFor(e.session, e.stanza);
    return true;
  };
  hooks.iq("host", NS.PING, pong);
  hooks.iq("self", NS.PING, pong);
}
