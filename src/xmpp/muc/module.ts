import { Element } from "ltx";
import { bareOf } from "../../address/address.js";
import { Envelope, Flag } from "../../envelope/envelope.js";
import { Ev, type Hooks, type StanzaEvent } from "../hooks.js";
import { NS } from "../ns.js";
import { codeForError, StanzaCondition } from "../errors.js";
import { bounce, iqResultFor } from "../replies.js";
import type { Disco } from "../modules/disco.js";
import type { XmppContext } from "../context.js";
import type { ClientSession } from "../client-session.js";
import { MucService, type MucRooms } from "./service.js";
import { SELF_PING } from "./room-admin.js";
import { RoomArchive } from "./room-mam.js";
import type { ArchiveStore } from "../../store/archive-store.js";
import type { MucDirectory } from "../../store/muc-directory.js";
import { RoomDirectory } from "./directory.js";
import { RoomNicks } from "./owner-lost.js";
import { resentFlag } from "../modules/message.js";

/** Rooms one session may be in at once (each is told when the session goes); directed presence is capped at 1000 too. */
const MAX_ROOMS_PER_SESSION = 500;

/**
 * XEP-0045 on the client's side: stanzas to room@service[/nick] go into the core marked Flag.Service,
 * which routes them to the room's owner worker like any address (the room lives there: service.ts).
 * The service's own address is answered here (disco). A session's rooms are told when it goes
 * unavailable or its connection ends, as directed presence is (RFC 6121 §4.6.3).
 */
export function mucModule(hooks: Hooks, x: XmppContext, disco: Disco, rooms: MucRooms | null, archiveStore: ArchiveStore | null = null, directory: MucDirectory | null = null): MucService {
  const c = x.config.muc;
  const domain = c.domain as string;
  const service = new MucService(domain, { maxRooms: c.maxRoomsPerWorker, maxOccupants: c.maxOccupants, historyMessages: c.historyMessages, maxNickLength: c.maxNickLength, maxPresencePerSecond: c.maxPresencePerSecond }, x.core, rooms, x.log);
  // XEP-0313 on rooms (muc.mam.enabled): written in batches like the users' archives, whose queue sizes it takes.
  if (c.mam.enabled && archiveStore !== null) service.archives = new RoomArchive(archiveStore, { maxQueued: x.config.xmpp.mam.maxQueued, maxBatch: x.config.xmpp.mam.maxBatch, maxPageSize: c.mam.maxPageSize }, x.log);
  if (directory !== null) service.directory = new RoomDirectory(directory, x.log);
  disco.serverItem({ jid: domain, name: "Chatrooms" });
  const suffix = `@${domain}`;
  /** The session's rooms: kept among its directed presence (RFC 6121 §4.6), which moves with it to another worker (XEP-0198) and its resume record. */
  const roomsOf = (s: ClientSession): string[] => [...s.directed].filter((j) => j.endsWith(suffix));
  // Rooms whose worker died: their occupants here are told (owner-lost.ts).
  const nicks = new RoomNicks();
  service.onOwnerLost = (lost) => nicks.ownerLost(lost);

  const toService = ({ session: s, stanza, to }: StanzaEvent): boolean => {
    if (to.slice(to.indexOf("@") + 1, to.indexOf("/") < 0 ? undefined : to.indexOf("/")) !== domain) return false;
    if (to.indexOf("@") < 0) return serviceItself(s, stanza);
    const kind = stanza.name;
    if (kind === "iq") {
      const type = stanza.attrs.type;
      // An occupant's answer to an iq its room passed on from another occupant (§7.5, occupant-iq.ts): matched by
      // the core to that request (asker's occupant JID, id), and back to the room's worker. Others end here.
      if (type === "result" || type === "error") {
        if (to.indexOf("/") < 0 || stanza.attrs.id === undefined) return true;
        const answer = { from: s.address, to, protocol: "xmpp", responseFor: stanza.attrs.id, payload: stanza };
        s.submit(type === "result" ? Envelope.response(answer) : Envelope.error({ ...answer, code: codeForError(stanza) }));
        return true;
      }
      const kids = stanza.getChildElements();
      if ((type !== "get" && type !== "set") || stanza.attrs.id === undefined || kids.length !== 1) return bounce(s, stanza, StanzaCondition.BadRequest), true;
      const ttl = x.config.timeouts.xmpp.byNamespace[kids[0].attrs.xmlns ?? ""] ?? 0;
      s.submit(Envelope.request({ from: s.address, to, protocol: "xmpp", id: stanza.attrs.id, payload: stanza, ttl }).flagged(Flag.Service));
      return true;
    }
    if (kind === "message") {
      s.submit(Envelope.message({ from: s.address, to, protocol: "xmpp", payload: stanza, flags: Flag.Service | resentFlag(s), id: stanza.attrs.id ?? "" }));
      return true;
    }
    const type = stanza.attrs.type;
    if (type !== undefined && type !== "unavailable" && type !== "error") return true;
    const room = bareOf(to);
    if (type === undefined) {
      if (!s.directed.has(room) && roomsOf(s).length >= MAX_ROOMS_PER_SESSION) return bounce(s, stanza, StanzaCondition.ResourceConstraint, "in too many rooms"), true;
      s.directed.add(room);
      nicks.joined(s, to);
    } else if (type === "unavailable") {
      s.directed.delete(room);
      nicks.left(s, room);
    }
    s.submit(Envelope.presence({ from: s.address, to, protocol: "xmpp", payload: stanza, flags: Flag.Service }));
    return true;
  };

  /** XEP-0045 §6.1, §6.2: the service's identity and features; §6.3: its public rooms, from the directory (on any worker). */
  const serviceItself = (s: ClientSession, stanza: Element): boolean => {
    if (stanza.name !== "iq") return true;
    const type = stanza.attrs.type;
    if (type === "result" || type === "error") return true;
    const q = stanza.getChildElements()[0];
    const ns = q?.attrs.xmlns;
    if (type === "get" && ns === NS.DISCO_INFO && q.attrs.node === undefined) {
      const info = new Element("query", { xmlns: NS.DISCO_INFO });
      info.c("identity", { category: "conference", type: "text", name: "Chatrooms" });
      for (const f of [NS.DISCO_INFO, NS.DISCO_ITEMS, NS.MUC, NS.OCCUPANT_ID, SELF_PING]) info.c("feature", { var: f });
      iqResultFor(s, stanza, info);
    } else if (type === "get" && ns === NS.DISCO_ITEMS && q.attrs.node === undefined) {
      if (service.directory === null) return iqResultFor(s, stanza, new Element("query", { xmlns: NS.DISCO_ITEMS })), true;
      service.directory.items(q, domain, Date.now()).then(
        (r) => ("ok" in r ? iqResultFor(s, stanza, r.ok ?? undefined) : bounce(s, stanza, r.error, r.text)),
        (e: Error) => {
          x.log.warn("muc: room directory not read", { error: e.message });
          bounce(s, stanza, StanzaCondition.InternalServerError, "the room list could not be read");
        },
      );
    }
    else if (type === "get" && ns === NS.PING) iqResultFor(s, stanza);
    else bounce(s, stanza, StanzaCondition.ServiceUnavailable);
    return true;
  };

  /** Taken out of the directed presence first: the presence module would send these without Flag.Service. */
  const leaveAll = (s: ClientSession): void => {
    const mine = roomsOf(s);
    nicks.ended(s);
    for (const room of mine) s.directed.delete(room);
    for (const room of mine) s.submit(Envelope.presence({ from: s.address, to: room, protocol: "xmpp", payload: new Element("presence", { type: "unavailable" }), flags: Flag.Service }));
  };

  hooks.on(Ev.Service, toService);
  // Ahead of the presence module, which handles these too (returns false: not taken from it).
  hooks.on(Ev.PresenceBroadcast, ({ session: s, stanza }) => void (stanza.attrs.type === "unavailable" && leaveAll(s)), 10);
  hooks.on(Ev.SessionClosing, ({ session: s }) => void leaveAll(s), 10);
  return service;
}
