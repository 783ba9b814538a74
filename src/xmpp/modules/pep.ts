import { randomUUID } from "node:crypto";
import { Element } from "ltx";
import { StanzaCondition, stanzaError } from "../errors.js";
import { NS } from "../ns.js";
import { bounce, iqResultFor } from "../replies.js";
import type { Hooks, IqEvent } from "../hooks.js";
import type { XmppContext } from "../context.js";
import type { ClientSession } from "../client-session.js";
import type { NodeConfig, PepItem } from "../../store/pep-store.js";
import { held } from "./roster-items.js";
import { blocks } from "./blocklist.js";
import type { Disco } from "./disco.js";
import { Caps, capsHooks } from "./caps.js";
import { configForm, DEFAULT_CONFIG, readConfigForm } from "./pep-forms.js";
import { eventMessage, filterEvent, notify, payloadElement, sendLastItems } from "./pep-events.js";
import { pepDisco } from "./pep-disco.js";
import { avatarPublished, ownAvatarEvent } from "./avatar.js";

/** XEP-0163 §9 / XEP-0060 §10: what the account's PEP service does, advertised once it all works. */
export const PEP_FEATURES = [
  "access-open",
  "access-presence",
  "access-whitelist",
  "auto-create",
  "auto-subscribe",
  "config-node",
  "create-nodes",
  "delete-items",
  "delete-nodes",
  "filtered-notifications",
  "item-ids",
  "last-published",
  "persistent-items",
  "publish",
  "publish-options",
  "retract-items",
  "retrieve-items",
].map((f) => `${NS.PUBSUB}#${f}`);

/** An XEP-0060 error: the stanza condition and, where §7 names one, the pubsub#errors condition (with the feature for <unsupported/>). */
function fail(s: ClientSession, stanza: Element, cond: StanzaCondition, app = "", text = "", feature = ""): true {
  if (app === "") return bounce(s, stanza, cond, text), true;
  const to = stanza.attrs.to;
  const reply = stanzaError(stanza, cond, to === undefined || to === "" ? s.domain : to, s.address, text);
  const attrs: Record<string, string> = { xmlns: NS.PUBSUB_ERRORS };
  if (feature !== "") attrs.feature = feature;
  reply.getChild("error")!.c(app, attrs);
  s.send(reply);
  return true;
}

const storeFailed = (s: ClientSession, stanza: Element) => () => bounce(s, stanza, StanzaCondition.InternalServerError);

function pubsubResult(name: string, attrs: Record<string, string>): [Element, Element] {
  const p = new Element("pubsub", { xmlns: NS.PUBSUB });
  return [p, p.c(name, attrs)];
}

/**
 * XEP-0163 Personal Eventing Protocol on the account's bare JID: the XEP-0060
 * subset it needs (publish with auto-create and XEP-0223 publish-options,
 * retract, items, create, delete and configure on the owner namespace),
 * notifications filtered by XEP-0115 caps (caps.ts, pep-events.ts), and the
 * last item of each node sent to a contact's resource that comes online.
 * Handled where the request arrives: the state is the store's (component
 * "pep", shared by every worker and host), so no worker holds it alone.
 */
export function pepModule(hooks: Hooks, x: XmppContext, disco: Disco): void {
  const caps = new Caps(x, (s, nodes) => sendLastItems(x, s, nodes));
  capsHooks(hooks, caps);
  x.pepEvent = (s, env) => filterEvent(x, caps, s, env, ownAvatarEvent);
  hooks.iq("self", NS.PUBSUB, (e) => own(e, x));
  hooks.iq("self", NS.PUBSUB_OWNER, (e) => owner(e, x));
  hooks.iq("bare", NS.PUBSUB, (e) => other(e, x));
  hooks.iq("bare", NS.PUBSUB_OWNER, (e) => fail(e.session, e.stanza, StanzaCondition.Forbidden, "", "only the owner manages a PEP node"));
  pepDisco(hooks, x, disco, PEP_FEATURES);
}

/** The one action element of a <pubsub/> (and publish-options or configure beside it). */
function action(child: Element): [Element | undefined, Element | undefined] {
  const kids = child.getChildElements();
  const main = kids.find((k) => k.name !== "publish-options" && k.name !== "configure") ?? kids.find((k) => k.name === "configure");
  const extra = kids.find((k) => k !== main && (k.name === "publish-options" || k.name === "configure"));
  return [main, extra];
}

function own(e: IqEvent, x: XmppContext): boolean {
  const { session: s, stanza, child, type } = e;
  const [main, extra] = action(child);
  if (main === undefined) return fail(s, stanza, StanzaCondition.BadRequest, "", "empty <pubsub/>");
  if (type === "get") {
    if (main.name === "items") return items(e, x, s.user, main);
    return fail(s, stanza, StanzaCondition.FeatureNotImplemented, "unsupported", "", main.name === "subscriptions" || main.name === "affiliations" ? `retrieve-${main.name}` : main.name);
  }
  switch (main.name) {
    case "publish":
      return publish(e, x, main, extra);
    case "retract":
      return retract(e, x, main);
    case "create":
      return create(e, x, main, extra);
    default:
      // PEP subscriptions are implicit (presence and +notify, XEP-0163 §4.2); explicit ones are not offered.
      return fail(s, stanza, StanzaCondition.FeatureNotImplemented, "unsupported", "", main.name === "subscribe" ? "subscribe" : main.name);
  }
}

function nodeOf(s: ClientSession, stanza: Element, el: Element): string | null {
  const node = el.attrs.node;
  if (typeof node !== "string" || node === "") return fail(s, stanza, StanzaCondition.BadRequest, "nodeid-required"), null;
  return node;
}

/** XEP-0223 §4 publish-options, or XEP-0060 §8.1.3 configure at create: null when refused (the error is sent). */
function options(x: XmppContext, s: ClientSession, stanza: Element, holder: Element | undefined, formType: string): Partial<NodeConfig> | null | undefined {
  const form = holder?.getChild("x", NS.DATA);
  if (form === undefined) return undefined;
  const r = readConfigForm(form, formType, x.config.xmpp.pep.maxItemsPerNode);
  if (typeof r === "string") return fail(s, stanza, StanzaCondition.BadRequest, "invalid-options", r), null;
  return r;
}

/** XEP-0060 §7.1: one item with one payload; the node is made on first publish (XEP-0163 §3). */
function publish({ session: s, stanza }: IqEvent, x: XmppContext, el: Element, extra: Element | undefined): boolean {
  const node = nodeOf(s, stanza, el);
  if (node === null) return true;
  const items = el.getChildren("item");
  if (items.length !== 1) return fail(s, stanza, StanzaCondition.BadRequest, items.length === 0 ? "item-required" : "invalid-payload", "one <item/> per publish");
  const payloads = items[0].getChildElements();
  if (payloads.length !== 1) return fail(s, stanza, StanzaCondition.BadRequest, payloads.length === 0 ? "payload-required" : "invalid-payload", "one payload element per item");
  const payload = payloads[0].toString();
  const max = x.config.xmpp.pep.maxItemBytes;
  if (Buffer.byteLength(payload) > max) return fail(s, stanza, StanzaCondition.NotAcceptable, "payload-too-big", `item payload larger than ${max} bytes`);
  const require = options(x, s, stanza, extra?.name === "publish-options" ? extra : undefined, NS.PUBSUB_PUBLISH_OPTIONS);
  if (require === null) return true;
  const id = typeof items[0].attrs.id === "string" && items[0].attrs.id !== "" ? items[0].attrs.id : randomUUID();
  const item: PepItem = { id, payload };
  const work = x.pep.publish(s.user, { node, item, create: { ...DEFAULT_CONFIG, ...require }, require: require ?? null, maxNodes: x.config.xmpp.pep.maxNodes });
  held(x, s, work, ({ outcome, config }) => {
    if (outcome === "too-many-nodes") return void fail(s, stanza, StanzaCondition.NotAllowed, "", `at most ${x.config.xmpp.pep.maxNodes} nodes per account`);
    if (outcome === "precondition-not-met") return void fail(s, stanza, StanzaCondition.Conflict, "precondition-not-met", "the node's configuration differs from publish-options");
    const [p, pub] = pubsubResult("publish", { node });
    pub.c("item", { id });
    iqResultFor(s, stanza, p);
    // XEP-0398 §3: a new avatar is the vCard's photo too.
    if (node === NS.AVATAR_METADATA && payloads[0].name === "metadata") avatarPublished(x, s, payloads[0]);
    const out = new Element("items", { node });
    out.c("item", { id }).cnode(payloads[0]);
    notify(x, s, config.accessModel, eventMessage(s.bare, out));
  }, storeFailed(s, stanza));
  return true;
}

/** XEP-0060 §7.2: one item by id; subscribers are told when notify is asked. */
function retract({ session: s, stanza }: IqEvent, x: XmppContext, el: Element): boolean {
  const node = nodeOf(s, stanza, el);
  if (node === null) return true;
  const ids = el.getChildren("item").map((i) => i.attrs.id);
  if (ids.length !== 1 || typeof ids[0] !== "string" || ids[0] === "") return fail(s, stanza, StanzaCondition.BadRequest, "item-required", "one <item id=''/> per retract");
  const id = ids[0];
  const tell = el.attrs.notify === "1" || el.attrs.notify === "true";
  held(x, s, Promise.all([x.pep.node(s.user, node), x.pep.retract(s.user, node, id)]), ([config, removed]) => {
    if (config === null || removed === null) return void fail(s, stanza, StanzaCondition.ItemNotFound, "", "no such node");
    if (!removed) return void fail(s, stanza, StanzaCondition.ItemNotFound, "", "no such item");
    iqResultFor(s, stanza);
    if (tell) {
      const out = new Element("items", { node });
      out.c("retract", { id });
      notify(x, s, config.accessModel, eventMessage(s.bare, out));
    }
  }, storeFailed(s, stanza));
  return true;
}

/** XEP-0060 §8.1: a node made explicitly, with an optional configuration; instant nodes (no name) are not offered. */
function create({ session: s, stanza }: IqEvent, x: XmppContext, el: Element, extra: Element | undefined): boolean {
  const node = nodeOf(s, stanza, el);
  if (node === null) return true;
  const conf = options(x, s, stanza, extra?.name === "configure" ? extra : undefined, NS.PUBSUB_NODE_CONFIG);
  if (conf === null) return true;
  const max = x.config.xmpp.pep.maxNodes;
  held(x, s, x.pep.create(s.user, node, { ...DEFAULT_CONFIG, ...conf }, max), (r) => {
    if (r === "exists") return void fail(s, stanza, StanzaCondition.Conflict, "", "the node exists");
    if (r === "too-many-nodes") return void fail(s, stanza, StanzaCondition.NotAllowed, "", `at most ${max} nodes per account`);
    iqResultFor(s, stanza);
  }, storeFailed(s, stanza));
  return true;
}

/** XEP-0060 §6.5: all items, the newest max_items, or some by id; `user` is the owner, access already checked. */
function items({ session: s, stanza }: IqEvent, x: XmppContext, user: string, el: Element): boolean {
  const node = nodeOf(s, stanza, el);
  if (node === null) return true;
  const q: { max?: number; ids?: string[] } = {};
  const raw = el.attrs.max_items;
  if (raw !== undefined) {
    if (!/^[0-9]{1,9}$/.test(String(raw)) || Number(raw) < 1) return fail(s, stanza, StanzaCondition.BadRequest, "", "max_items must be a positive integer");
    q.max = Number(raw);
  }
  const ids = el.getChildren("item").map((i) => i.attrs.id);
  if (ids.length > 0) {
    if (ids.some((i) => typeof i !== "string" || i === "")) return fail(s, stanza, StanzaCondition.BadRequest, "item-required", "an <item/> without id");
    q.ids = ids as string[];
  }
  held(x, s, x.pep.items(user, node, q), (list) => {
    if (list === null) return void fail(s, stanza, StanzaCondition.ItemNotFound, "", "no such node");
    const [p, out] = pubsubResult("items", { node });
    for (const it of list) {
      const payload = payloadElement(it.payload);
      if (payload !== null) out.c("item", { id: it.id }).cnode(payload);
    }
    iqResultFor(s, stanza, p);
  }, storeFailed(s, stanza));
  return true;
}

/**
 * Another user's node: only items may be read (XEP-0060 §6.5.3), as its access
 * model allows: presence needs a subscription from the owner ('from' or
 * 'both'), whitelist is the owner's alone; an owner who blocked the asker
 * (XEP-0191) gives nothing away.
 */
function other(e: IqEvent, x: XmppContext): boolean {
  const { session: s, stanza, child, to, type } = e;
  const [main] = action(child);
  if (main === undefined) return fail(s, stanza, StanzaCondition.BadRequest, "", "empty <pubsub/>");
  if (type !== "get" || main.name !== "items") return fail(s, stanza, StanzaCondition.Forbidden, "", "only the owner publishes to a PEP node");
  const node = nodeOf(s, stanza, main);
  if (node === null) return true;
  const user = to.slice(0, to.indexOf("@"));
  const work = Promise.all([x.profile.blocklist(user), x.pep.node(user, node), x.store.rosterItem(user, s.bare)]);
  held(x, s, work, ([list, config, item]) => {
    if (blocks(new Set(list), s.address, to)) return void bounce(s, stanza, StanzaCondition.ServiceUnavailable);
    if (config === null) return void fail(s, stanza, StanzaCondition.ItemNotFound, "", "no such node");
    if (config.accessModel === "whitelist") return void fail(s, stanza, StanzaCondition.NotAllowed, "closed-node");
    const subscribed = item !== undefined && (item.subscription === "from" || item.subscription === "both");
    if (config.accessModel === "presence" && !subscribed) return void fail(s, stanza, StanzaCondition.NotAuthorized, "presence-subscription-required");
    items(e, x, user, main);
  }, storeFailed(s, stanza));
  return true;
}

/** XEP-0060 §8: the owner namespace: delete a node, get or set its configuration. */
function owner({ session: s, stanza, child, type }: IqEvent, x: XmppContext): boolean {
  const el = child.getChildElements()[0];
  if (el === undefined) return fail(s, stanza, StanzaCondition.BadRequest, "", "empty <pubsub/>");
  const node = el.name === "delete" || el.name === "configure" ? nodeOf(s, stanza, el) : "";
  if (node === null) return true;
  if (el.name === "delete" && type === "set") {
    held(x, s, x.pep.node(s.user, node), (config) => {
      if (config === null) return void fail(s, stanza, StanzaCondition.ItemNotFound, "", "no such node");
      held(x, s, x.pep.deleteNode(s.user, node), () => {
        iqResultFor(s, stanza);
        notify(x, s, config.accessModel, eventMessage(s.bare, new Element("delete", { node })));
      }, storeFailed(s, stanza));
    }, storeFailed(s, stanza));
    return true;
  }
  if (el.name === "configure" && type === "get") {
    held(x, s, x.pep.node(s.user, node), (config) => {
      if (config === null) return void fail(s, stanza, StanzaCondition.ItemNotFound, "", "no such node");
      const p = new Element("pubsub", { xmlns: NS.PUBSUB_OWNER });
      p.c("configure", { node }).cnode(configForm(config));
      iqResultFor(s, stanza, p);
    }, storeFailed(s, stanza));
    return true;
  }
  if (el.name === "configure" && type === "set") {
    const form = el.getChild("x", NS.DATA);
    if (form?.attrs.type === "cancel") return iqResultFor(s, stanza), true;
    const conf = options(x, s, stanza, el, NS.PUBSUB_NODE_CONFIG);
    if (conf === null) return true;
    if (conf === undefined) return fail(s, stanza, StanzaCondition.BadRequest, "invalid-options", "a configuration form is required");
    held(x, s, x.pep.node(s.user, node), (config) => {
      if (config === null) return void fail(s, stanza, StanzaCondition.ItemNotFound, "", "no such node");
      held(x, s, x.pep.configure(s.user, node, { ...config, ...conf }), (ok) => {
        if (!ok) return void fail(s, stanza, StanzaCondition.ItemNotFound, "", "no such node");
        iqResultFor(s, stanza);
      }, storeFailed(s, stanza));
    }, storeFailed(s, stanza));
    return true;
  }
  return fail(s, stanza, StanzaCondition.FeatureNotImplemented, "unsupported", "", el.name);
}
