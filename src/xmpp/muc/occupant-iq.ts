import { Element } from "ltx";
import { Envelope, Kind } from "../../envelope/envelope.js";
import type { ServiceLink } from "../../session/service.js";
import { NS } from "../ns.js";
import { codeForError, errorElement, StanzaCondition } from "../errors.js";
import { target, type Occupant } from "./occupants.js";
import type { Room } from "./room.js";

/** One iq passed on to an occupant and not answered yet. */
interface Forwarded {
  /** The asker's request, as the room received it (its ref names the asker's pending request). */
  req: Envelope;
  /** The occupant JID the asker wrote to (room/nick), which the answer comes from. */
  from: string;
  /** Forgets the room's own pending request (its answer, if any, then counts as late). */
  cancel: () => void;
}

/**
 * XEP-0045 §7.5 for iqs: an iq get or set to `room@service/nick` from an occupant is passed on to the
 * real full JID of the occupant holding `nick`, from the asker's occupant JID (`room@service/asker`: the
 * asker's real JID is never shown, in semi-anonymous and non-anonymous rooms alike), with the asker's id.
 * The room's worker makes it a request of its own (ServiceLink.request: pending, with the asker's
 * timeout), and the answer — the occupant's result or error, or the core's timeout or unavailable — goes
 * back to the asker as the answer to its request, from `room@service/nick`. When the occupant leaves
 * (or is kicked, or the room ends) first, the asker gets `item-not-found` at once.
 */
export class OccupantIqs {
  /** Per room, per occupant's real JID: what was passed on to it and is not answered. */
  private readonly open = new Map<string, Map<string, Set<Forwarded>>>();

  constructor(private readonly link: ServiceLink) {}

  /**
   * An iq from `jid` to `nick` in `room`. False: not one to pass on (a self-ping, answered by the room,
   * room-admin.ts); true: passed on, or refused with an answer.
   */
  forward(room: Room, req: Envelope, iq: Element, nick: string): boolean {
    const asker = room.occupantOf(req.from);
    const child = iq.getChildElements()[0];
    if (asker !== undefined && asker.nick === nick && child?.attrs.xmlns === NS.PING) return false;
    const from = `${room.jid}/${nick}`;
    if (asker === undefined) return this.refuse(req, from, StanzaCondition.NotAcceptable, "only occupants send iqs to occupants"), true;
    const to = room.occupants.get(nick);
    if (to === undefined) return this.refuse(req, from, StanzaCondition.ItemNotFound, "no such occupant"), true;
    const f: Forwarded = { req, from, cancel: () => undefined };
    const out = Envelope.request({ from: `${room.jid}/${asker.nick}`, to: to.jid, protocol: "xmpp", id: req.id, payload: iq, ttl: req.ttl });
    let set = this.open.get(room.jid)?.get(to.jid);
    let answered = false;
    f.cancel = this.link.request(out, target(to), (a) => {
      answered = true;
      this.forget(room.jid, to.jid, f);
      this.reply(f, a);
    });
    // Answered at once (the occupant's session was not found): nothing to remember.
    if (answered) return true;
    if (set === undefined) {
      let byJid = this.open.get(room.jid);
      if (byJid === undefined) this.open.set(room.jid, (byJid = new Map()));
      byJid.set(to.jid, (set = new Set()));
    }
    set.add(f);
    return true;
  }

  /** The occupant left the room (or was removed): what was passed on to it fails now. */
  left(room: Room, o: Occupant): void {
    const byJid = this.open.get(room.jid);
    const set = byJid?.get(o.jid);
    if (set === undefined) return;
    byJid!.delete(o.jid);
    if (byJid!.size === 0) this.open.delete(room.jid);
    for (const f of set) this.abandon(f);
  }

  /** The room ended: everything passed on from it fails now. */
  gone(room: Room): void {
    const byJid = this.open.get(room.jid);
    if (byJid === undefined) return;
    this.open.delete(room.jid);
    for (const set of byJid.values()) for (const f of set) this.abandon(f);
  }

  private abandon(f: Forwarded): void {
    f.cancel();
    this.refuse(f.req, f.from, StanzaCondition.ItemNotFound, "the occupant left the room");
  }

  private forget(room: string, jid: string, f: Forwarded): void {
    const byJid = this.open.get(room);
    const set = byJid?.get(jid);
    if (set === undefined || !set.delete(f)) return;
    if (set.size > 0) return;
    byJid!.delete(jid);
    if (byJid!.size === 0) this.open.delete(room);
  }

  /** The occupant's answer (or the core's error) to the asker, from the occupant JID it asked. */
  private reply(f: Forwarded, a: Envelope): void {
    const route = { from: f.from, to: f.req.from, protocol: "xmpp", responseFor: f.req.ref };
    if (a.kind === Kind.Response) this.link.answer(Envelope.response({ ...route, payload: a.payload }));
    else this.link.answer(Envelope.error({ ...route, payload: a.payload, code: a.code }));
  }

  private refuse(req: Envelope, from: string, cond: StanzaCondition, text: string): void {
    const iq = new Element("iq", { type: "error" });
    iq.cnode(errorElement(cond, text));
    this.link.answer(Envelope.error({ from, to: req.from, protocol: "xmpp", responseFor: req.ref, payload: iq, code: codeForError(iq) }));
  }
}
