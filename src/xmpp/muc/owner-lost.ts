import { Element } from "ltx";
import { bareOf, resourceOf } from "../../address/address.js";
import { NS } from "../ns.js";
import type { ClientSession } from "../client-session.js";
import { nickOf } from "./room.js";

/**
 * The rooms a worker's sessions are in, by nick, so that they can be told when a room's worker dies
 * (docs/xmpp.md, "Multi-user chat"). A room moved by a ring change while its worker lives goes on with
 * its occupants (src/proxy/service-moves.ts); one whose worker died is gone with its occupants, history
 * and, for a temporary room, everything else: the occupants on the other workers are told that they are
 * out (XEP-0045 status 333, with 110: their own presence), so that they join again (a persistent room is
 * read from the store by its new owner; a temporary one starts afresh). Only the sessions that joined on
 * this worker are known here: one resumed here from another worker (XEP-0198) finds out by self-ping
 * (XEP-0410), as before.
 */
export class RoomNicks {
  /** Sessions in rooms → room → the nick it asked for there (as the room keeps it: nickOf). */
  private readonly bySession = new Map<ClientSession, Map<string, string>>();
  private joins = 0;

  /** Available presence to room/nick from `s`: a join, or a nick change. */
  joined(s: ClientSession, to: string): void {
    const nick = nickOf(resourceOf(to));
    if (nick === null) return;
    // A session that continued on another worker (XEP-0198) ends here without closing: forgotten now and then.
    if (++this.joins % 1024 === 0) for (const o of [...this.bySession.keys()]) if (gone(o)) this.bySession.delete(o);
    let rooms = this.bySession.get(s);
    if (rooms === undefined) this.bySession.set(s, (rooms = new Map()));
    rooms.set(bareOf(to), nick);
  }

  left(s: ClientSession, room: string): void {
    const rooms = this.bySession.get(s);
    if (rooms === undefined) return;
    rooms.delete(room);
    if (rooms.size === 0) this.bySession.delete(s);
  }

  ended(s: ClientSession): void {
    this.bySession.delete(s);
  }

  /** The workers of the rooms for which `lost` holds died: each session here still in one is told it is out. */
  ownerLost(lost: (room: string) => boolean): void {
    for (const [s, rooms] of [...this.bySession]) {
      if (gone(s)) {
        this.bySession.delete(s);
        continue;
      }
      for (const [room, nick] of [...rooms]) {
        if (!lost(room) || !s.directed.has(room)) continue;
        rooms.delete(room);
        s.directed.delete(room);
        const p = new Element("presence", { from: `${room}/${nick}`, to: s.address, type: "unavailable" });
        const x = p.c("x", { xmlns: NS.MUC_USER });
        x.c("item", { affiliation: "none", role: "none" }).c("reason").t("the room's server went away; join again");
        x.c("status", { code: "110" });
        x.c("status", { code: "333" });
        s.send(p);
      }
      if (rooms.size === 0) this.bySession.delete(s);
    }
  }
}

/** Ended here, or continued on another worker. */
const gone = (s: ClientSession): boolean => s.coreSession.closed || s.coreSession.movedTo !== null;
