import { Element } from "ltx";
import { bareOf, normalizeAddress } from "../../address/address.js";
import { NS } from "../ns.js";
import { StanzaCondition } from "../errors.js";
import { AFF_RANK } from "./occupants.js";
import type { Room } from "./room.js";

/**
 * XEP-0045 §7.8.2 mediated invitations and their declines: a message to the room with
 * <x xmlns=muc#user><invite to/></x> goes on from the room to the invitee (to its bare JID, on
 * whatever worker it is), naming the inviter; a <decline to/> goes back to the inviter. True when
 * the message was one of them (answered or refused); false: an ordinary message for the room.
 */
export function mediatedInvite(room: Room, el: Element, jid: string, at: string): boolean {
  const x = el.getChild("x", NS.MUC_USER);
  if (x === undefined) return false;
  const invites = x.getChildren("invite");
  const declines = x.getChildren("decline");
  if (invites.length === 0 && declines.length === 0) return false;
  const from = { address: jid, at };
  for (const d of declines) {
    const to = d.attrs.to === undefined ? null : normalizeAddress(d.attrs.to);
    if (to === null) {
      room.error(el, from, StanzaCondition.JidMalformed, "a decline names the inviter (to)");
      return true;
    }
    const m = new Element("message");
    const dx = m.c("x", { xmlns: NS.MUC_USER }).c("decline", { from: bareOf(jid) });
    const reason = d.getChildText("reason");
    if (reason !== null) dx.c("reason").t(reason);
    room.out.send("message", room.jid, m, [{ address: to, at: "" }]);
  }
  if (invites.length === 0) return true;
  const sender = room.occupantOf(jid);
  if (sender === undefined) {
    room.error(el, from, StanzaCondition.NotAcceptable, "only occupants invite");
    return true;
  }
  const privileged = AFF_RANK[room.affiliationOf(sender.bare)] >= AFF_RANK.admin;
  // §7.8.2: in a members-only room only those the configuration lets invite may, and the invitee becomes a member.
  if (room.config.membersOnly && !room.config.allowInvites && !privileged) {
    room.error(el, from, StanzaCondition.Forbidden, "occupants may not invite to this room");
    return true;
  }
  let added = false;
  for (const inv of invites) {
    const to = inv.attrs.to === undefined ? null : normalizeAddress(inv.attrs.to);
    if (to === null) {
      room.error(el, from, StanzaCondition.JidMalformed, "an invitation names the invitee (to)");
      return true;
    }
    if (room.config.membersOnly && room.affiliationOf(bareOf(to)) === "none") {
      room.affiliations.set(bareOf(to), "member");
      added = true;
    }
    const m = new Element("message");
    const ux = m.c("x", { xmlns: NS.MUC_USER });
    const ix = ux.c("invite", { from: jid });
    const reason = inv.getChildText("reason");
    if (reason !== null) ix.c("reason").t(reason);
    if (room.config.password !== "") ux.c("password").t(room.config.password);
    room.out.send("message", room.jid, m, [{ address: to, at: "" }]);
  }
  if (added) room.out.changed(room);
  return true;
}
