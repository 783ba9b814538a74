import { Element } from "ltx";
import { StanzaCondition } from "../errors.js";
import { NS } from "../ns.js";
import { bounce, iqResultFor } from "../replies.js";
import { Ev, type Hooks, type IqEvent } from "../hooks.js";
import type { XmppContext } from "../context.js";
import type { NodeConfig } from "../../store/pep-store.js";
import { held } from "./roster-items.js";
import { blocks } from "./blocklist.js";
import type { Disco } from "./disco.js";

const PEP_IDENTITY = { category: "pubsub", type: "pep" };

/** Ahead of the disco module's own (empty) account items. */
const BEFORE_DISCO = 10;

/**
 * XEP-0163 §6 and §9: the account's disco#info has the identity pubsub/pep
 * and PEP's features; disco#items on a bare JID lists the nodes the asker may
 * see (XEP-0060 §5.2: the owner all of them, a contact those whose access
 * model lets them in); disco#info on another account's bare JID tells that
 * it is an account with PEP.
 */
export function pepDisco(hooks: Hooks, x: XmppContext, disco: Disco, features: readonly string[]): void {
  disco.accountIdentity(PEP_IDENTITY);
  disco.accountFeature(NS.PUBSUB);
  for (const f of features) disco.accountFeature(f);

  const list = (e: IqEvent, owner: string, visible: (c: NodeConfig) => boolean) => {
    const user = owner.slice(0, owner.indexOf("@"));
    held(x, e.session, x.pep.nodes(user), (nodes) => {
      const q = new Element("query", { xmlns: NS.DISCO_ITEMS });
      for (const n of nodes) if (visible(n.config)) q.c("item", { jid: owner, node: n.node });
      iqResultFor(e.session, e.stanza, q);
    }, () => bounce(e.session, e.stanza, StanzaCondition.InternalServerError));
    return true;
  };

  hooks.on(
    Ev.IqSelf,
    (e) => {
      if (e.ns !== NS.DISCO_ITEMS || e.type !== "get" || e.child.attrs.node !== undefined) return false;
      return list(e, e.session.bare, () => true);
    },
    BEFORE_DISCO,
  );

  hooks.iq("bare", NS.DISCO_ITEMS, (e) => {
    if (e.type !== "get") return false;
    if (e.child.attrs.node !== undefined) return bounce(e.session, e.stanza, StanzaCondition.ItemNotFound), true;
    const { session: s, to } = e;
    const user = to.slice(0, to.indexOf("@"));
    held(x, s, Promise.all([x.profile.blocklist(user), x.store.rosterItem(user, s.bare)]), ([blocked, item]) => {
      if (blocks(new Set(blocked), s.address, to)) return bounce(s, e.stanza, StanzaCondition.ServiceUnavailable);
      const subscribed = item !== undefined && (item.subscription === "from" || item.subscription === "both");
      list(e, to, (c) => c.accessModel === "open" || (c.accessModel === "presence" && subscribed));
    }, () => bounce(s, e.stanza, StanzaCondition.InternalServerError));
    return true;
  });

  hooks.iq("bare", NS.DISCO_INFO, (e) => {
    if (e.type !== "get") return false;
    if (e.child.attrs.node !== undefined) return bounce(e.session, e.stanza, StanzaCondition.ItemNotFound), true;
    const { session: s, to } = e;
    const user = to.slice(0, to.indexOf("@"));
    held(x, s, Promise.all([x.profile.blocklist(user), x.accounts.hasUser(user)]), ([blocked, exists]) => {
      if (!exists || blocks(new Set(blocked), s.address, to)) return bounce(s, e.stanza, StanzaCondition.ServiceUnavailable);
      const q = new Element("query", { xmlns: NS.DISCO_INFO });
      q.c("identity", { category: "account", type: "registered" });
      q.c("identity", PEP_IDENTITY);
      q.c("feature", { var: NS.DISCO_INFO });
      q.c("feature", { var: NS.DISCO_ITEMS });
      iqResultFor(s, e.stanza, q);
    }, () => bounce(s, e.stanza, StanzaCondition.InternalServerError));
    return true;
  });
}
