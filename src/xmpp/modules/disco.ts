import { Element } from "ltx";
import { NS } from "../ns.js";
import { iqResultFor, bounce } from "../replies.js";
import { StanzaCondition } from "../errors.js";
import { Ev, type Hooks, type IqEvent } from "../hooks.js";
import { Phase } from "../client-session.js";
import { capsVer } from "./caps-hash.js";

/** XEP-0115 §4: the URI naming this software in the server's caps. */
export const SERVER_CAPS_NODE = "urn:switchboard:caps";

/** A service of this server (XEP-0030 §4): a component, a MUC service, an upload service. */
export interface DiscoItem {
  jid: string;
  name?: string;
  node?: string;
}

/**
 * What the server tells clients about itself, filled by the modules: each
 * adds its feature when it is registered, so the server advertises what
 * runs and nothing else (clients act on it).
 */
export interface Disco {
  /** A feature of the server's disco#info. */
  serverFeature(ns: string): void;
  /** A service listed in the server's disco#items. */
  serverItem(item: DiscoItem): void;
  /** A feature of the user's own account's disco#info (XEP-0163 §6: PEP's). */
  accountFeature(ns: string): void;
  /** An identity of the account besides account/registered (XEP-0163 §6: pubsub/pep). */
  accountIdentity(identity: Record<string, string>): void;
}

// XEP-0280 §3: clients ask the server (not the account) whether it does carbons.
const SERVER_FEATURES = [NS.DISCO_INFO, NS.DISCO_ITEMS, NS.PING, NS.CARBONS];
const ACCOUNT_FEATURES = [NS.DISCO_INFO, NS.DISCO_ITEMS, NS.PING, NS.ROSTER];

function info(identities: readonly Record<string, string>[], features: readonly string[]): Element {
  const q = new Element("query", { xmlns: NS.DISCO_INFO });
  for (const i of identities) q.c("identity", i);
  for (const f of features) q.c("feature", { var: f });
  return q;
}

/** XEP-0030 service discovery of the server and of the user's own account. No nodes. `account`: features other modules add to the account's. */
export function discoModule(hooks: Hooks, account: readonly string[] = []): Disco {
  const serverFeatures: string[] = [...SERVER_FEATURES];
  const serverItems: DiscoItem[] = [];
  const accountFeatures: string[] = [...ACCOUNT_FEATURES, ...account];
  const accountIdentities: Record<string, string>[] = [{ category: "account", type: "registered" }];
  const answer = (identities: readonly Record<string, string>[], features: readonly string[]) => (e: IqEvent) => {
    if (e.type !== "get") return false;
    if (e.child.attrs.node !== undefined) return bounce(e.session, e.stanza, StanzaCondition.ItemNotFound), true;
    iqResultFor(e.session, e.stanza, info(identities, features));
    return true;
  };
  const serverIdentities = [{ category: "server", type: "im", name: "Switchboard" }];
  // XEP-0115 §6.2: the server's caps ver, computed once every module has added its features (the first time it is asked).
  let ver: string | null = null;
  const serverVer = () => (ver ??= capsVer(info(serverIdentities, serverFeatures))!);
  hooks.on(Ev.IqHost, (e) => {
    if (e.ns !== NS.DISCO_INFO || e.type !== "get" || e.child.attrs.node !== `${SERVER_CAPS_NODE}#${serverVer()}`) return false;
    const q = info(serverIdentities, serverFeatures);
    q.attrs.node = e.child.attrs.node;
    iqResultFor(e.session, e.stanza, q);
    return true;
  });
  hooks.iq("host", NS.DISCO_INFO, answer(serverIdentities, serverFeatures));
  // §6.3: the server's caps in the stream features once the client is authenticated (what it can ask then).
  hooks.on(Ev.StreamFeatures, ({ session, features }) => {
    if (session.phase === Phase.Authenticated) features.c("c", { xmlns: NS.CAPS, hash: "sha-1", node: SERVER_CAPS_NODE, ver: serverVer() });
  });
  hooks.iq("self", NS.DISCO_INFO, answer(accountIdentities, accountFeatures));

  const items = (list: readonly DiscoItem[]) => (e: IqEvent) => {
    if (e.type !== "get") return false;
    if (e.child.attrs.node !== undefined) return bounce(e.session, e.stanza, StanzaCondition.ItemNotFound), true;
    const q = new Element("query", { xmlns: NS.DISCO_ITEMS });
    for (const it of list) {
      const attrs: Record<string, string> = { jid: it.jid };
      if (it.name !== undefined) attrs.name = it.name;
      if (it.node !== undefined) attrs.node = it.node;
      q.c("item", attrs);
    }
    iqResultFor(e.session, e.stanza, q);
    return true;
  };
  // §4.1: the server's items are its services; none are built in (components, MUC and upload add theirs).
  hooks.iq("host", NS.DISCO_ITEMS, items(serverItems));
  hooks.iq("self", NS.DISCO_ITEMS, items([]));

  return {
    serverFeature(ns) {
      ver = null;
      if (!serverFeatures.includes(ns)) serverFeatures.push(ns);
    },
    serverItem(item) {
      if (!serverItems.some((i) => i.jid === item.jid && i.node === item.node)) serverItems.push(item);
    },
    accountFeature(ns) {
      if (!accountFeatures.includes(ns)) accountFeatures.push(ns);
    },
    accountIdentity(identity) {
      accountIdentities.push(identity);
    },
  };
}
