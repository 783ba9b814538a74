import { Element } from "ltx";
import { NS } from "../ns.js";
import type { FanoutTarget } from "../../session/service.js";

/** XEP-0045 §5.2: long-lived, per bare JID. */
export type Affiliation = "owner" | "admin" | "member" | "outcast" | "none";
/** XEP-0045 §5.1: per visit. */
export type Role = "moderator" | "participant" | "visitor" | "none";

export const AFFILIATIONS: readonly Affiliation[] = ["owner", "admin", "member", "outcast", "none"];
export const ROLES: readonly Role[] = ["moderator", "participant", "visitor", "none"];

/** Rank for privilege comparisons (§8, §9): an actor acts only on lower ranks. */
export const AFF_RANK: Record<Affiliation, number> = { outcast: 0, none: 1, member: 2, admin: 3, owner: 4 };

/** One occupant: a nick in the room, held by one session of a user (no multi-session nicks yet). */
export interface Occupant {
  nick: string;
  /** The real full JID. */
  jid: string;
  bare: string;
  /** Where its session is (the core's locator, opaque here). */
  at: string;
  role: Role;
  /** Its last presence as it sent it (show, status...), without the MUC elements. */
  shown: Element;
  /** XEP-0421 occupant id: stable per room and bare JID, opaque. */
  id: string;
  /** Presence flood control: stanzas counted in the current second. */
  windowStart: number;
  inWindow: number;
  /** Its presence as newcomers are shown it (Room.listed), made once while nothing in it changes. */
  listed?: Listed;
}

/** An occupant's §7.2.3 presence to newcomers, for what it was made from; with and without the real JID. */
export interface Listed {
  shown: Element;
  nick: string;
  role: Role;
  affiliation: Affiliation;
  withJid: Element | null;
  withoutJid: Element | null;
}

export const target = (o: Occupant): FanoutTarget => ({ address: o.jid, at: o.at });

/** The occupant's own presence without any MUC element (what others are shown of it). */
export function shownOf(el: Element): Element {
  const p = new Element("presence");
  for (const c of el.children) {
    if (typeof c === "string") continue;
    const ns = c.attrs.xmlns;
    if (ns === NS.MUC || ns === NS.MUC_USER || ns === NS.OCCUPANT_ID) continue;
    if (c.name === "show" || c.name === "status" || c.name === "priority" || ns !== undefined) p.cnode(c);
  }
  return p;
}

export interface ItemOptions {
  /** The real JID, shown to moderators in semi-anonymous rooms, to everyone in non-anonymous ones. */
  jid?: string;
  /** The new nick (303) or the affected nick in admin lists. */
  nick?: string;
  reason?: string;
  /** The nick of who kicked or banned. */
  actor?: string;
}

export function item(x: Element, affiliation: Affiliation, role: Role, o: ItemOptions = {}): Element {
  const attrs: Record<string, string> = { affiliation, role };
  if (o.jid !== undefined) attrs.jid = o.jid;
  if (o.nick !== undefined) attrs.nick = o.nick;
  const it = x.c("item", attrs);
  if (o.actor !== undefined) it.c("actor", { nick: o.actor });
  if (o.reason !== undefined && o.reason !== "") it.c("reason").t(o.reason);
  return it;
}

/** An occupant's presence as one class of viewers sees it: `codes` are the §15.6 status codes. */
export function occupantPresence(o: Occupant, affiliation: Affiliation, opts: { jid: boolean; codes: readonly number[]; unavailable?: boolean; newNick?: string; reason?: string; actor?: string; occupantIds?: boolean; destroy?: Element }): Element {
  const p = new Element("presence", opts.unavailable === true ? { type: "unavailable" } : {});
  if (opts.unavailable !== true) for (const c of o.shown.children) p.cnode(c as Element);
  else for (const c of o.shown.children) if (typeof c !== "string" && c.name === "status") p.cnode(c);
  const x = p.c("x", { xmlns: NS.MUC_USER });
  item(x, affiliation, opts.unavailable === true ? "none" : o.role, { jid: opts.jid ? o.jid : undefined, nick: opts.newNick, reason: opts.reason, actor: opts.actor });
  if (opts.destroy !== undefined) x.cnode(opts.destroy);
  for (const c of opts.codes) x.c("status", { code: String(c) });
  if (opts.occupantIds === true) p.c("occupant-id", { xmlns: NS.OCCUPANT_ID, id: o.id });
  return p;
}
