import { Element } from "ltx";
import { NS } from "../ns.js";
import { iqResultFor, bounce } from "../replies.js";
import { StanzaCondition } from "../errors.js";
import type { Hooks, IqEvent } from "../hooks.js";

/** What the server implements, and nothing more (clients act on it). */
// XEP-0280 §3: clients ask the server (not the account) whether it does carbons.
const SERVER_FEATURES = [NS.DISCO_INFO, NS.DISCO_ITEMS, NS.PING, NS.CARBONS];
const ACCOUNT_FEATURES = [NS.DISCO_INFO, NS.DISCO_ITEMS, NS.PING, NS.ROSTER];

function info(identity: Record<string, string>, features: readonly string[]): Element {
  const q = new Element("query", { xmlns: NS.DISCO_INFO });
  q.c("identity", identity);
  for (const f of features) q.c("feature", { var: f });
  return q;
}

/** XEP-0030 service discovery of the server and of the user's own account. No nodes, no items. `account`: features other modules add to the account's. */
export function discoModule(hooks: Hooks, account: readonly string[] = []): void {
  const answer = (identity: Record<string, string>, features: readonly string[]) => (e: IqEvent) => {
    if (e.type !== "get") return false;
    if (e.child.attrs.node !== undefined) return bounce(e.session, e.stanza, StanzaCondition.ItemNotFound), true;
    iqResultFor(e.session, e.stanza, info(identity, features));
    return true;
  };
  hooks.iq("host", NS.DISCO_INFO, answer({ category: "server", type: "im", name: "Switchboard" }, SERVER_FEATURES));
  hooks.iq("self", NS.DISCO_INFO, answer({ category: "account", type: "registered" }, [...ACCOUNT_FEATURES, ...account]));

  const items = (e: IqEvent) => {
    if (e.type !== "get") return false;
    iqResultFor(e.session, e.stanza, new Element("query", { xmlns: NS.DISCO_ITEMS }));
    return true;
  };
  hooks.iq("host", NS.DISCO_ITEMS, items);
  hooks.iq("self", NS.DISCO_ITEMS, items);
}
