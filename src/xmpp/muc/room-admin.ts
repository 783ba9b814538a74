import { Element } from "ltx";
import { normalizeAddress, bareOf } from "../../address/address.js";
import { NS } from "../ns.js";
import { StanzaCondition } from "../errors.js";
import { applyForm, configFeatures, configForm, FormError } from "./room-config.js";
import { AFF_RANK, AFFILIATIONS, ROLES, item, occupantPresence, target, type Affiliation, type Occupant, type Role } from "./occupants.js";
import type { Room } from "./room.js";

/** An iq's answer: a result (with its child, or none), or an error. */
export type IqReply = { ok: Element | null } | { error: StanzaCondition; text: string };

const ok = (child: Element | null = null): IqReply => ({ ok: child });
const fail = (error: StanzaCondition, text: string): IqReply => ({ error, text });

/** XEP-0410 §6: the room answers an occupant's ping to its own occupant JID itself. */
export const SELF_PING = "http://jabber.org/protocol/muc#self-ping-optimization";

/** An iq get or set from `jid` to the room (`nick` ""), or to one of its occupants. */
export function roomIq(room: Room, iq: Element, jid: string, nick: string): IqReply {
  const child = iq.getChildElements()[0];
  const ns = child?.attrs.xmlns ?? "";
  const type = iq.attrs.type;
  const actor = room.occupantOf(jid);
  if (nick !== "") {
    // XEP-0410: a self-ping is answered here; other iqs to occupants are passed on before this (occupant-iq.ts).
    if (actor === undefined) return fail(StanzaCondition.NotAcceptable, "not an occupant");
    if (ns === NS.PING && type === "get" && actor.nick === nick) return ok();
    return fail(StanzaCondition.ServiceUnavailable, "not passed on to the occupant");
  }
  if (ns === NS.DISCO_INFO && type === "get") return ok(info(room));
  if (ns === NS.DISCO_ITEMS && type === "get") return ok(new Element("query", { xmlns: NS.DISCO_ITEMS }));
  if (ns === NS.PING && type === "get") return ok();
  if (ns === NS.MUC_ADMIN) return type === "get" ? adminGet(room, child, jid) : adminSet(room, child, jid);
  if (ns === NS.MUC_OWNER) return type === "get" ? ownerGet(room, child, jid) : ownerSet(room, child, jid);
  return fail(StanzaCondition.ServiceUnavailable, "");
}

function info(room: Room): Element {
  const q = new Element("query", { xmlns: NS.DISCO_INFO });
  q.c("identity", { category: "conference", type: "text", name: room.config.name || room.jid.slice(0, room.jid.indexOf("@")) });
  // XEP-0313 §MUC, XEP-0359: only while the room archives.
  const mam = room.out.archiving === true && room.config.logging ? [NS.MAM, NS.SID] : [];
  for (const f of [NS.DISCO_INFO, NS.MUC, NS.OCCUPANT_ID, SELF_PING, ...configFeatures(room.config), ...mam]) q.c("feature", { var: f });
  // §15.5.4: muc#roominfo, with what clients show.
  const x = q.c("x", { xmlns: NS.DATA, type: "result" });
  x.c("field", { var: "FORM_TYPE", type: "hidden" }).c("value").t(NS.MUC_ROOMINFO);
  x.c("field", { var: "muc#roominfo_description", label: "Description" }).c("value").t(room.config.description);
  x.c("field", { var: "muc#roominfo_subject", label: "Subject" }).c("value").t(room.subject);
  x.c("field", { var: "muc#roominfo_occupants", label: "Occupants" }).c("value").t(String(room.occupants.size));
  return q;
}

/** §9.5, §8.5: lists by affiliation (admins and owners) or by role (moderators). */
function adminGet(room: Room, q: Element, jid: string): IqReply {
  const items = q.getChildren("item");
  if (items.length !== 1) return fail(StanzaCondition.BadRequest, "one <item/> with an affiliation or a role");
  const want = items[0].attrs;
  const actorAff = room.affiliationOf(bareOf(jid));
  const actor = room.occupantOf(jid);
  const out = new Element("query", { xmlns: NS.MUC_ADMIN });
  if (want.affiliation !== undefined) {
    const a = want.affiliation as Affiliation;
    if (!AFFILIATIONS.includes(a) || a === "none") return fail(StanzaCondition.BadRequest, "unknown affiliation");
    if (AFF_RANK[actorAff] < AFF_RANK.admin) return fail(StanzaCondition.Forbidden, "only admins and owners see affiliation lists");
    for (const [who, aff] of room.affiliations) if (aff === a) item(out, aff, "none", {}).attrs.jid = who;
    for (const it of out.getChildren("item")) delete it.attrs.role;
    return ok(out);
  }
  if (want.role !== undefined) {
    const r = want.role as Role;
    if (!ROLES.includes(r) || r === "none") return fail(StanzaCondition.BadRequest, "unknown role");
    if (actor?.role !== "moderator") return fail(StanzaCondition.Forbidden, "only moderators see role lists");
    for (const o of room.occupants.values()) if (o.role === r) item(out, room.affiliationOf(o.bare), o.role, { nick: o.nick, jid: o.jid });
    return ok(out);
  }
  return fail(StanzaCondition.BadRequest, "an <item/> with an affiliation or a role");
}

interface Change {
  el: Element;
  nick?: string;
  jid?: string;
  role?: Role;
  affiliation?: Affiliation;
  reason: string;
}

/** §8.2-§8.6, §9.1-§9.8, §10.3-§10.7: all the items are checked first; then applied together (§9: atomically). */
function adminSet(room: Room, q: Element, jid: string): IqReply {
  const items = q.getChildren("item");
  if (items.length === 0) return fail(StanzaCondition.BadRequest, "no <item/>");
  const actorBare = bareOf(jid);
  const actorAff = room.affiliationOf(actorBare);
  const actor = room.occupantOf(jid);
  const changes: Change[] = [];
  for (const it of items) {
    const c: Change = { el: it, reason: it.getChildText("reason") ?? "" };
    const role = it.attrs.role;
    const aff = it.attrs.affiliation;
    if ((role === undefined) === (aff === undefined)) return fail(StanzaCondition.BadRequest, "each <item/> sets a role or an affiliation");
    if (role !== undefined) {
      if (!ROLES.includes(role as Role)) return fail(StanzaCondition.BadRequest, `unknown role ${role}`);
      c.role = role as Role;
      c.nick = it.attrs.nick;
      const target = c.nick === undefined ? undefined : room.occupants.get(c.nick);
      if (target === undefined) return fail(StanzaCondition.ItemNotFound, `no occupant ${c.nick ?? "(no nick)"}`);
      // §8: moderators change roles; granting or taking moderator is for admins and owners (§9.6, §9.7).
      if (actor?.role !== "moderator") return fail(StanzaCondition.Forbidden, "only moderators change roles");
      const tAff = room.affiliationOf(target.bare);
      if ((c.role === "moderator" || target.role === "moderator") && AFF_RANK[actorAff] < AFF_RANK.admin) return fail(StanzaCondition.NotAllowed, "only admins and owners grant or revoke moderator");
      // §8.2, §8.4: nobody kicks or silences an admin or owner, nor someone of their own affiliation or higher.
      if ((c.role === "none" || c.role === "visitor") && AFF_RANK[tAff] >= AFF_RANK.admin) return fail(StanzaCondition.NotAllowed, "admins and owners cannot be kicked or silenced");
    } else {
      if (!AFFILIATIONS.includes(aff as Affiliation)) return fail(StanzaCondition.BadRequest, `unknown affiliation ${aff}`);
      c.affiliation = aff as Affiliation;
      const j = it.attrs.jid === undefined ? null : normalizeAddress(it.attrs.jid);
      if (j === null) return fail(StanzaCondition.BadRequest, "an affiliation is set on a jid");
      c.jid = bareOf(j);
      if (AFF_RANK[actorAff] < AFF_RANK.admin) return fail(StanzaCondition.Forbidden, "only admins and owners change affiliations");
      const cur = room.affiliationOf(c.jid);
      // §9: admins change none, member and outcast of users below admin; owners change everything (§10).
      if (actorAff === "admin" && (AFF_RANK[cur] >= AFF_RANK.admin || AFF_RANK[c.affiliation] >= AFF_RANK.admin)) return fail(StanzaCondition.NotAllowed, "admins do not change admins or owners");
    }
    changes.push(c);
  }
  // §10.9: a room keeps at least one owner.
  const owners = new Set([...room.affiliations].filter(([, a]) => a === "owner").map(([j]) => j));
  for (const c of changes) if (c.jid !== undefined) c.affiliation === "owner" ? owners.add(c.jid) : owners.delete(c.jid);
  if (owners.size === 0) return fail(StanzaCondition.Conflict, "a room keeps at least one owner");
  for (const c of changes) apply(room, c, actor);
  if (changes.some((c) => c.jid !== undefined)) room.out.changed(room);
  return ok();
}

function apply(room: Room, c: Change, actor: Occupant | undefined): void {
  const actorNick = actor?.nick;
  if (c.role !== undefined) {
    const o = room.occupants.get(c.nick!);
    if (o === undefined) return;
    // §8.2: kicked, with 307.
    if (c.role === "none") return room.leave(o, null, [307], { reason: c.reason, actor: actorNick });
    o.role = c.role;
    return room.broadcastPresence(o, [110], [], { reason: c.reason, actor: actorNick });
  }
  const jid = c.jid!;
  const aff = c.affiliation!;
  if (aff === "none") room.affiliations.delete(jid);
  else room.affiliations.set(jid, aff);
  for (const o of [...room.occupants.values()]) {
    if (o.bare !== jid) continue;
    // §9.1: banned, with 301; §9.4: removed from a members-only room, with 321.
    if (aff === "outcast") room.leave(o, null, [301], { reason: c.reason, actor: actorNick });
    else if (aff === "none" && room.config.membersOnly) room.leave(o, null, [321], { reason: c.reason, actor: actorNick });
    else {
      // §5.1.2: the default role follows the new affiliation.
      o.role = aff === "owner" || aff === "admin" ? "moderator" : o.role === "moderator" ? "participant" : aff === "member" && o.role === "visitor" ? "participant" : o.role;
      room.broadcastPresence(o, [110], [], { reason: c.reason });
    }
  }
}

/** §10.2: the configuration form, to owners. */
function ownerGet(room: Room, q: Element, jid: string): IqReply {
  if (room.affiliationOf(bareOf(jid)) !== "owner") return fail(StanzaCondition.Forbidden, "only owners configure the room");
  if (q.getChildElements().length > 0) return fail(StanzaCondition.BadRequest, "a configuration request is an empty query");
  const out = new Element("query", { xmlns: NS.MUC_OWNER });
  out.cnode(configForm(room.config, room.limits.maxOccupants, room.out.archiving === true));
  return ok(out);
}

/** §10.1.2 instant room (an empty submit), §10.1.3 cancel, §10.2 submit, §10.9 destroy. */
function ownerSet(room: Room, q: Element, jid: string): IqReply {
  if (room.affiliationOf(bareOf(jid)) !== "owner") return fail(StanzaCondition.Forbidden, "only owners configure or destroy the room");
  const kids = q.getChildElements();
  if (kids.length !== 1) return fail(StanzaCondition.BadRequest, "one <x/> form or <destroy/>");
  const k = kids[0];
  if (k.name === "destroy") {
    destroy(room, k);
    return ok();
  }
  if (k.name !== "x" || k.attrs.xmlns !== NS.DATA) return fail(StanzaCondition.BadRequest, "a jabber:x:data form or <destroy/>");
  if (k.attrs.type === "cancel") {
    // §10.1.3: cancelling the first configuration destroys the new room; later ones leave it as it was.
    if (room.fresh) destroy(room, new Element("destroy"));
    return ok();
  }
  if (k.attrs.type !== "submit") return fail(StanzaCondition.BadRequest, "the form's type must be submit or cancel");
  try {
    const before = room.config;
    room.config = applyForm(room.config, k, room.limits.maxOccupants);
    room.locked = false;
    room.fresh = false;
    if (before.whois !== room.config.whois) for (const o of room.occupants.values()) room.broadcastPresence(o, [], []);
  } catch (e) {
    if (e instanceof FormError) return fail(StanzaCondition.NotAcceptable, e.message);
    throw e;
  }
  room.out.changed(room);
  return ok();
}

/** §10.9: every occupant leaves with the <destroy/> (its reason and alternate venue), and the room ends. */
export function destroy(room: Room, d: Element): void {
  const el = new Element("destroy");
  if (d.attrs.jid !== undefined) {
    const alt = normalizeAddress(d.attrs.jid);
    if (alt !== null) el.attrs.jid = alt;
  }
  const reason = d.getChildText("reason");
  if (reason !== null) el.c("reason").t(reason);
  room.destroyed = true;
  // Example 211: each occupant is told of its own removal, with the <destroy/>.
  for (const o of room.occupants.values()) {
    room.out.send("presence", `${room.jid}/${o.nick}`, occupantPresence(o, "none", { jid: true, codes: [], unavailable: true, destroy: el }), [target(o)]);
  }
  room.occupants.clear();
  room.nickOf.clear();
  room.out.gone(room);
}
