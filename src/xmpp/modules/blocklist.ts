import { Element } from "ltx";
import { Envelope, Flag, Kind } from "../../envelope/envelope.js";
import { bareOf } from "../../address/address.js";
import { NS } from "../ns.js";
import { StanzaCondition, StreamCondition, StreamError, stanzaError } from "../errors.js";
import type { XmppContext } from "../context.js";
import type { ClientSession } from "../client-session.js";

/**
 * The user's XEP-0191 block list, kept on each session so that filtering a
 * stanza costs a few Set lookups and no store read: read once at bind, and
 * kept current by the block and unblock pushes (§3.3, §3.4) that reach every
 * bound session of the user, on whichever worker, like roster pushes
 * (roster-cache.ts).
 */

/** Shared by every session whose list is empty (nearly all); replaced at its first push. */
const EMPTY: Set<string> = new Set();
const NOBODY: Map<string, Set<string>> = new Map();

/** A read in progress: pushes that arrive meanwhile are newer than what it may return, and go on top. */
const loading = new WeakMap<ClientSession, Element[]>();

/** At bind: the list is read before the client's next stanza is handled. A store that cannot be read ends the stream. */
export function loadBlocklist(x: XmppContext, s: ClientSession): void {
  if (s.blocked !== null || loading.has(s)) return;
  const pushes: Element[] = [];
  loading.set(s, pushes);
  s.hold();
  x.profile.blockingAtLogin(s.user, s.bare).then(
    ({ items, blockers }) => {
      loading.delete(s);
      s.blocked = items.length === 0 ? EMPTY : new Set(items);
      s.blockedBy = NOBODY;
      for (const b of blockers) blockedBy(s, `${b.user}@${s.domain}`, b.jid, true);
      for (const p of pushes) apply(x, s, p);
      s.release();
    },
    (e: Error) => {
      loading.delete(s);
      x.log.warn("block list not read", { user: s.user, error: e.message });
      s.fail(new StreamError(StreamCondition.InternalServerError, "block list unavailable"));
      s.release();
    },
  );
}

/** The <block/> or <unblock/> of a push from the server (or our <blocked-by/> notice), or undefined. */
export function blockingChild(iq: Element): Element | undefined {
  const c = iq.children[0];
  if (typeof c === "string" || c === undefined) return undefined;
  if (c.attrs.xmlns === NS.BLOCKING) return c.name === "block" || c.name === "unblock" ? c : undefined;
  return c.attrs.xmlns === NS.BLOCKED_BY && c.name === "blocked-by" ? c : undefined;
}

/** Whether a server push is written to this client (outbound.ts): block list pushes to those that asked for the list, notices never. */
export function pushWritten(s: { rosterRequested: boolean; blocklistRequested: boolean }, iq: Element): boolean {
  const c = blockingChild(iq);
  return c === undefined ? s.rosterRequested : c.attrs.xmlns === NS.BLOCKING && s.blocklistRequested;
}

/**
 * The notice a block or unblock by `blocker` sends to the sessions of the user
 * its `jid` names (an item with that user's bare or full JID): so that they
 * drop the presence the core answers to their probes (ChannelOwner.answerProbe
 * does not know block lists), and probe again when unblocked.
 */
export function blockedByNotice(blocker: string, jid: string, on: boolean): Element {
  const iq = new Element("iq", { type: "set" });
  iq.c("blocked-by", { xmlns: NS.BLOCKED_BY, user: blocker, jid, on: on ? "1" : "0" });
  return iq;
}

function blockedBy(s: ClientSession, blocker: string, jid: string, on: boolean): void {
  if (s.blockedBy === NOBODY || s.blockedBy === null) s.blockedBy = new Map();
  const by = s.blockedBy!;
  const items = by.get(blocker);
  if (on) {
    if (items === undefined) by.set(blocker, new Set([jid]));
    else items.add(jid);
    return;
  }
  if (items === undefined) return;
  items.delete(jid);
  if (items.size === 0) by.delete(blocker);
}

/** A push reached this session (XmppSession.deliver): the list it keeps follows it. */
export function blocklistPushed(x: XmppContext, s: ClientSession, iq: Element): void {
  const child = blockingChild(iq);
  if (child === undefined) return;
  const pending = loading.get(s);
  if (pending !== undefined) pending.push(child);
  else if (s.blocked !== null) apply(x, s, child);
}

function apply(x: XmppContext, s: ClientSession, child: Element): void {
  if (child.name === "blocked-by") {
    const { user, jid, on } = child.attrs as Record<string, string>;
    const mine = jid === s.bare || jid === s.address;
    blockedBy(s, user, jid, on === "1");
    // Unblocked: what the blocker's resources sent meanwhile may have been dropped here; a probe asks for it again.
    const item = s.roster?.get(user);
    if (on !== "1" && mine && s.available && !hiddenFrom(s, user) && item !== undefined && (item.subscription === "to" || item.subscription === "both")) {
      queueMicrotask(() => s.submit(Envelope.presence({ from: s.address, to: user, protocol: "xmpp", payload: null, flags: Flag.Probe })));
    }
    return;
  }
  if (s.blocked === EMPTY) s.blocked = new Set();
  const list = s.blocked!;
  const jids = child.getChildren("item").map((i) => i.attrs.jid as string);
  if (child.name === "block") {
    const fresh = new Set(jids.filter((j) => !list.has(j)));
    for (const j of fresh) list.add(j);
    // §3.3: whoever could see this resource's presence and is now blocked sees it go unavailable; directed presence is forgotten.
    const gone = new Set<string>();
    if (s.available) {
      for (const item of s.roster?.values() ?? []) if (subscriber(item.subscription) && blocks(fresh, item.jid, s.bare)) gone.add(item.jid);
      // A full-JID item of a subscribed contact: that resource only.
      for (const j of fresh) if (j.indexOf("/") > 0 && j.indexOf("@") > 0 && subscriber(s.roster?.get(bareOf(j))?.subscription)) gone.add(j);
    }
    for (const d of [...s.directed]) {
      if (!blocks(fresh, d, s.bare)) continue;
      if (s.available) gone.add(d);
      s.directed.delete(d);
    }
    if (gone.size > 0) queueMicrotask(() => {
      for (const j of gone) s.submit(Envelope.presence({ from: s.address, to: j, protocol: "xmpp", payload: new Element("presence", { type: "unavailable" }) }));
    });
    return;
  }
  // §3.4, §3.5: an empty <unblock/> clears the list.
  const removed = jids.length === 0 ? [...list] : jids.filter((j) => list.has(j));
  if (jids.length === 0) list.clear();
  else for (const j of removed) list.delete(j);
  // Unblocked contacts that may see the user's presence get it again, and the user learns theirs (a probe).
  const back = removed.filter((j) => j.indexOf("@") > 0 && !blocks(list, j, s.bare));
  if (back.length > 0 && s.available) queueMicrotask(() => {
    for (const j of back) {
      if (subscriber(s.roster?.get(bareOf(j))?.subscription) && s.presence !== null) s.submit(Envelope.presence({ from: s.address, to: j, protocol: "xmpp", payload: s.presence as Element }));
      const item = s.roster?.get(bareOf(j));
      if (item !== undefined && (item.subscription === "to" || item.subscription === "both")) s.submit(Envelope.presence({ from: s.address, to: bareOf(j), protocol: "xmpp", payload: null, flags: Flag.Probe }));
    }
  });
}

/** RFC 6121 §4: a contact with this subscription receives the user's presence. */
function subscriber(sub: string | undefined): boolean {
  return sub === "from" || sub === "both";
}

/**
 * XEP-0191 §6 (XEP-0016 §2.1 JID matching): `jid` is blocked by an item equal
 * to it, to its bare JID, to its domain/resource or to its domain. The user's
 * own addresses (`own`: the bare JID) are never blocked, and neither is the
 * server (empty `jid`). `jid` is canonical (stamped by the server).
 */
export function blocks(list: ReadonlySet<string>, jid: string, own: string): boolean {
  if (list.size === 0 || jid === "") return false;
  if (list.has(jid)) return !sameBare(jid, own);
  const slash = jid.indexOf("/");
  const bare = slash < 0 ? jid : jid.slice(0, slash);
  if (bare === own) return false;
  if (slash >= 0 && list.has(bare)) return true;
  const at = bare.indexOf("@");
  if (at < 0) return false;
  const domain = bare.slice(at + 1);
  return list.has(domain) || (slash >= 0 && list.has(domain + jid.slice(slash)));
}

function sameBare(jid: string, bare: string): boolean {
  return jid.startsWith(bare) && (jid.length === bare.length || jid.charCodeAt(bare.length) === 0x2f);
}

/**
 * Whether the session refuses what the core delivers, from someone the user
 * blocked (XEP-0191 §3.3): presence and iq answers dropped without a word; a
 * message dropped, and answered with <service-unavailable/> when it was
 * addressed to this resource (a message to the bare JID reaches every
 * available resource, and each would answer); a request refused by the
 * caller (XmppSession.deliver returns false: the core answers
 * <service-unavailable/>). Copies of messages (carbons) from them are dropped too.
 */
export function refused(s: ClientSession, env: Envelope): boolean {
  if (env.from === "") return false;
  // Blocked by the sender: its available presence reaches here only as the core's answer to a probe.
  if (env.kind === Kind.Presence && s.blockedBy !== null && s.blockedBy.size !== 0 && hidden(s, env)) return true;
  const list = s.blocked;
  if (list === null || list.size === 0) return false;
  if (env.kind !== Kind.Message && env.kind !== Kind.Presence && env.kind !== Kind.Request) return false;
  // A copy of a message the user sent (XEP-0280 <sent/>) is judged by where it went, which was checked when it was sent.
  if ((env.flags & Flag.SentCopy) !== 0) return false;
  if (!blocks(list, env.from, s.bare)) return false;
  if (env.kind === Kind.Message && env.to === s.address && (env.flags & Flag.Copy) === 0 && env.payload instanceof Element) {
    const type = env.payload.attrs.type;
    if (type !== "error" && type !== "groupchat") {
      // A message error rides the core like a message (type error: to that resource only, never stored).
      const reply = stanzaError(env.payload, StanzaCondition.ServiceUnavailable, s.address, env.from);
      // After this delivery: the core is in the middle of it.
      queueMicrotask(() => s.submit(Envelope.message({ from: s.address, to: env.from, protocol: "xmpp", payload: reply })));
    }
  }
  return true;
}

/** Available presence from a user who blocked this session's user (or this resource) by name. */
function hidden(s: ClientSession, env: Envelope): boolean {
  const el = env.payload;
  // The unavailable presence §3.3 sends on a block must get through.
  if (!(el instanceof Element) || el.attrs.type !== undefined) return false;
  return hiddenFrom(s, bareOf(env.from));
}

function hiddenFrom(s: ClientSession, blocker: string): boolean {
  if (blocker === s.bare) return false;
  const items = s.blockedBy?.get(blocker);
  return items !== undefined && (items.has(s.bare) || items.has(s.address));
}
