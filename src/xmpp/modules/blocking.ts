import { Element } from "ltx";
import { Envelope, Flag } from "../../envelope/envelope.js";
import { normalizeAddress } from "../../address/address.js";
import { StanzaCondition, stanzaError } from "../errors.js";
import { NS } from "../ns.js";
import { bounce, iqResultFor } from "../replies.js";
import { serverId } from "../stanza.js";
import { Ev, type Hooks, type IqEvent, type StanzaEvent } from "../hooks.js";
import type { XmppContext } from "../context.js";
import type { ClientSession } from "../client-session.js";
import { held } from "./roster-items.js";
import { blockedByNotice, blocks, loadBlocklist } from "./blocklist.js";
import type { Disco } from "./disco.js";

/** Ahead of the modules that send a stanza on: a stanza to a blocked JID goes no further. */
const BEFORE_SENDING = 100;

/**
 * XEP-0191 Blocking Command: the block list (get, block, unblock, unblock
 * all), persisted (ProfileStore) and pushed to every resource of the user,
 * and enforced both ways: what the user sends to a blocked JID is refused
 * here (§3.3: <not-acceptable/> with <blocked/>), what a blocked JID sends
 * the user is refused where it is delivered (blocklist.ts, refused()).
 */
export function blockingModule(hooks: Hooks, x: XmppContext, disco: Disco): void {
  hooks.on(Ev.SessionBound, ({ session }) => loadBlocklist(x, session));
  hooks.iq("self", NS.BLOCKING, (e) => (e.type === "get" ? get(e) : set(e, x)));

  const outgoing = ({ session: s, stanza, to }: StanzaEvent) => {
    if (s.blocked === null || !blocks(s.blocked, to, s.bare)) return false;
    refuseOutgoing(s, stanza);
    return true;
  };
  for (const ev of [Ev.MessageBare, Ev.MessageFull, Ev.PresenceBare, Ev.PresenceFull, Ev.IqBare, Ev.IqFull, Ev.IqAnswer] as const) {
    hooks.on(ev, outgoing, BEFORE_SENDING);
  }
  disco.serverFeature(NS.BLOCKING);
}

/**
 * §3.3: not routed; a message or an iq request is answered with
 * <not-acceptable/> and <blocked xmlns='urn:xmpp:blocking:errors'/>; presence
 * and answers (iq result or error, message error) are dropped without a word.
 */
function refuseOutgoing(s: ClientSession, stanza: Element): void {
  const type = stanza.attrs.type;
  if (stanza.name === "presence" || type === "error" || (stanza.name === "iq" && type === "result")) return;
  const reply = stanzaError(stanza, StanzaCondition.NotAcceptable, stanza.attrs.to ?? s.domain, s.address, "you have blocked this address");
  reply.getChild("error")!.c("blocked", { xmlns: NS.BLOCKING_ERRORS });
  s.send(reply);
}

/** §3.2: the list as kept on the session (read at bind): no store read. Asking makes the session one that gets pushes. */
function get({ session: s, stanza, child }: IqEvent): boolean {
  if (child.name !== "blocklist") return bounce(s, stanza, StanzaCondition.BadRequest), true;
  s.blocklistRequested = true;
  const q = new Element("blocklist", { xmlns: NS.BLOCKING });
  for (const jid of s.blocked ?? []) q.c("item", { jid });
  iqResultFor(s, stanza, q);
  return true;
}

function set({ session: s, stanza, child }: IqEvent, x: XmppContext): boolean {
  const block = child.name === "block";
  if (!block && child.name !== "unblock") return bounce(s, stanza, StanzaCondition.BadRequest), true;
  const jids: string[] = [];
  for (const el of child.getChildElements()) {
    if (el.name !== "item") return bounce(s, stanza, StanzaCondition.BadRequest, "only <item/> children"), true;
    const jid = typeof el.attrs.jid === "string" ? normalizeAddress(el.attrs.jid) : null;
    if (jid === null) return bounce(s, stanza, StanzaCondition.JidMalformed, `not a JID: ${String(el.attrs.jid ?? "(none)").slice(0, 64)}`), true;
    if (!jids.includes(jid)) jids.push(jid);
  }
  const cap = x.config.xmpp.maxBlocklistItems;
  // §3.3: a block names at least one JID; an empty unblock clears the list (§3.5).
  if (block && jids.length === 0) return bounce(s, stanza, StanzaCondition.BadRequest, "no item to block"), true;
  if (block && jids.length > cap) return bounce(s, stanza, StanzaCondition.PolicyViolation, `at most ${cap} blocked addresses`), true;
  // Resolves to the items whose state changed (null: refused, the cap).
  const work = block
    ? x.profile.block(s.user, jids, cap).then((ok) => (ok ? jids : null))
    : x.profile.unblock(s.user, jids.length === 0 ? null : jids);
  held(x, s, work, (changed) => {
    if (changed === null) return bounce(s, stanza, StanzaCondition.PolicyViolation, `at most ${cap} blocked addresses`);
    iqResultFor(s, stanza);
    // The blocked users' sessions first: their notice leaves before anything the push makes this user's sessions send.
    for (const jid of changed) {
      const local = localUser(jid, s.domain);
      if (local !== null && local !== s.bare) s.submit(Envelope.message({ from: "", to: local, protocol: "xmpp", payload: blockedByNotice(s.bare, jid, block), flags: Flag.EveryResource }));
    }
    push(s, child.name, jids);
  }, () => bounce(s, stanza, StanzaCondition.InternalServerError));
  return true;
}

/**
 * §3.3, §3.4: the change goes to every resource of the user, available or
 * not, on any worker: to the bare JID with the core's EveryResource rule,
 * like a roster push. Each session updates the list it keeps (XmppSession.deliver);
 * only those that asked for the list write it to their client (outbound.ts).
 */
function push(s: ClientSession, name: string, jids: readonly string[]): void {
  const iq = new Element("iq", { type: "set", id: serverId("block") });
  const c = iq.c(name, { xmlns: NS.BLOCKING });
  for (const jid of jids) c.c("item", { jid });
  s.submit(Envelope.message({ from: "", to: s.bare, protocol: "xmpp", payload: iq, flags: Flag.EveryResource }));
}

/** The bare JID of the account on this server that `jid` (canonical) names, or null (a domain item, another domain). */
function localUser(jid: string, domain: string): string | null {
  const slash = jid.indexOf("/");
  const bare = slash < 0 ? jid : jid.slice(0, slash);
  const at = bare.indexOf("@");
  return at > 0 && bare.slice(at + 1) === domain ? bare : null;
}
