import { Element } from "ltx";
import { randomBytes } from "node:crypto";
import { bareOf, resourceOf } from "../../address/address.js";
import { Envelope, Flag, Kind, type WireText } from "../../envelope/envelope.js";
import type { Core } from "../../session/core.js";
import type { FanoutTarget, OwnedService, ServiceLink } from "../../session/service.js";
import type { Logger } from "../../log/logger.js";
import { codeForError, errorElement, StanzaCondition } from "../errors.js";
import { Room, type RoomLimits, type RoomOut, type RoomState } from "./room.js";
import { roomIq, type IqReply } from "./room-admin.js";
import { mediatedInvite } from "./invite.js";
import type { RoomArchive } from "./room-mam.js";
import type { RoomDirectory } from "./directory.js";
import { OccupantIqs } from "./occupant-iq.js";
import type { Occupant } from "./occupants.js";
import { NS } from "../ns.js";
import { roomFrom, roomText } from "./room-state.js";
import { serializedOnce } from "./broadcast.js";

/** Where persistent rooms are kept (src/store/muc-store.ts); the service never waits for it on a room it holds. */
export interface MucRooms {
  load(room: string): Promise<RoomState | null>;
  save(room: string, state: RoomState): Promise<void>;
  remove(room: string): Promise<void>;
}

/** Stanzas to a room being read from the store wait for it; past this many, the newest are dropped. */
const MAX_WAITING = 1000;

/**
 * The rooms this worker owns (by the ring: src/session/service.ts), each in memory here. A stanza for
 * a room not here is for a room to read from the store (persistent), or to make (a join), or nobody's.
 */
export class MucService implements OwnedService, RoomOut {
  readonly rooms = new Map<string, Room>();
  private readonly link: ServiceLink;
  private readonly waiting = new Map<string, [Envelope, string][]>();
  /** Per worker: occupant ids are stable while the rooms live here (XEP-0421 asks no more of a temporary room). */
  private readonly secret = randomBytes(16).toString("hex");
  /** XEP-0313 room archives (muc.mam.enabled; room-mam.ts); null: rooms keep none. */
  archives: RoomArchive | null = null;
  /** XEP-0045 §6.3 public rooms of every worker (directory.ts); null: the service lists none. */
  directory: RoomDirectory | null = null;
  /** Presences serialized (send): an element sent again (Room.listed) is not serialized again. */
  private readonly texts = new WeakMap<Element, WireText>();
  /** §7.5: iqs passed on to occupants, not answered yet (occupant-iq.ts). */
  private readonly iqs: OccupantIqs;

  constructor(
    readonly domain: string,
    private readonly limits: RoomLimits & { maxRooms: number },
    core: Core,
    private readonly store: MucRooms | null,
    private readonly log: Logger,
  ) {
    this.link = core.serve(domain, this);
    this.iqs = new OccupantIqs(this.link);
  }

  // ---- OwnedService ------------------------------------------------------------------

  receive(env: Envelope, at: string): void {
    if (env.kind === Kind.Response || env.kind === Kind.Error) return;
    const el = env.payload;
    if (!(el instanceof Element)) return;
    const bare = bareOf(env.to);
    const room = this.rooms.get(bare);
    if (room !== undefined) return this.toRoom(room, env, el, at);
    const queue = this.waiting.get(bare);
    if (queue !== undefined) {
      if (queue.length < MAX_WAITING) queue.push([env, at]);
      return;
    }
    if (this.store === null) return this.noRoom(bare, env, el, at);
    // A persistent room is read on its owner at its first stanza (after a restart, or a ring change).
    this.waiting.set(bare, [[env, at]]);
    this.store.load(bare).then(
      (state) => this.loaded(bare, state),
      (e: Error) => {
        this.log.warn("muc: room not read from the store", { room: bare, error: e.message });
        this.loaded(bare, null);
      },
    );
  }

  holds(bare: string): boolean {
    return this.rooms.has(bare) || this.waiting.has(bare);
  }

  /** The ring changed: rooms owned elsewhere now leave with their whole state; their occupants are told nothing (room-state.ts). */
  handOff(owns: (bare: string) => boolean): [string, string][] {
    const out: [string, string][] = [];
    for (const [jid, room] of this.rooms) {
      if (owns(jid)) continue;
      out.push([jid, roomText(room)]);
      this.rooms.delete(jid);
    }
    return out;
  }

  /** A room handed off by its previous owner: it goes on here as it was there. */
  adopt(bare: string, state: string): boolean {
    if (this.rooms.has(bare)) {
      this.log.warn("muc: a room moved here lives here already; the one here is kept", { room: bare });
      return false;
    }
    const room = roomFrom(state, bare, this, this.limits);
    if (room === null) {
      this.log.warn("muc: a room moved here is unreadable; it starts afresh", { room: bare });
      return false;
    }
    this.rooms.set(bare, room);
    // The directory's row (a public room's lease) is this worker's now.
    this.directory?.update(room);
    return true;
  }

  /** Set by the module: rooms whose worker died, for the sessions here that were in them (owner-lost.ts). */
  onOwnerLost: ((lost: (room: string) => boolean) => void) | null = null;

  ownerLost(lost: (bare: string) => boolean): void {
    this.onOwnerLost?.(lost);
  }

  /** XEP-0045 status 333: occupants whose sessions died with their worker are removed, everyone told. */
  lost(lost: (at: string) => boolean): void {
    for (const room of [...this.rooms.values()]) {
      for (const o of [...room.occupants.values()]) if (lost(o.at)) room.leave(o, null, [333], { reason: "the occupant's server went away" });
    }
  }

  private loaded(bare: string, state: RoomState | null): void {
    const queue = this.waiting.get(bare) ?? [];
    this.waiting.delete(bare);
    if (state !== null && !this.rooms.has(bare)) {
      const room = new Room(bare, this, this.limits, this.secret);
      room.restore(state);
      room.stored = true;
      this.rooms.set(bare, room);
    }
    for (const [env, at] of queue) {
      const room = this.rooms.get(bare);
      const el = env.payload as Element;
      if (room !== undefined) this.toRoom(room, env, el, at);
      else this.noRoom(bare, env, el, at);
    }
  }

  /** No such room: a join makes it (§10.1.1), its joiner its owner; anything else is answered item-not-found. */
  private noRoom(bare: string, env: Envelope, el: Element, at: string): void {
    const nick = resourceOf(env.to);
    const from = { address: env.from, at };
    if (env.kind === Kind.Request) return this.answer(env, { error: StanzaCondition.ItemNotFound, text: "no such room" });
    if (env.kind === Kind.Presence && el.attrs.type === undefined && nick !== "") {
      if (this.rooms.size >= this.limits.maxRooms) return this.refuse(env, el, from, StanzaCondition.ResourceConstraint, "this service holds as many rooms as it may");
      const room = new Room(bare, this, this.limits, this.secret);
      room.affiliations.set(bareOf(env.from), "owner");
      room.locked = true;
      room.fresh = true;
      this.rooms.set(bare, room);
      room.presence(el, env.from, at, nick, Date.now());
      // A join refused at once (a bad nick): nobody is in it, and nobody owns it yet.
      if (room.occupants.size === 0) this.rooms.delete(bare);
      return;
    }
    if (env.kind === Kind.Message && el.attrs.type !== "error") this.refuse(env, el, from, StanzaCondition.ItemNotFound, "no such room");
  }

  private refuse(env: Envelope, el: Element, to: FanoutTarget, cond: StanzaCondition, text: string): void {
    const reply = new Element(el.name, { type: "error", ...(el.attrs.id !== undefined ? { id: el.attrs.id } : {}) });
    reply.cnode(errorElement(cond, text));
    this.send(el.name === "presence" ? "presence" : "message", env.to, reply, [to]);
  }

  private toRoom(room: Room, env: Envelope, el: Element, at: string): void {
    const nick = resourceOf(env.to);
    const now = Date.now();
    try {
      if (env.kind === Kind.Presence) return room.presence(el, env.from, at, nick, now);
      if (env.kind === Kind.Message) {
        if (nick === "" && mediatedInvite(room, el, env.from, at)) return;
        return room.message(el, env.from, at, nick, now, (env.flags & Flag.Resent) !== 0);
      }
      if (env.kind === Kind.Request) {
        const q = el.getChildElements()[0];
        if (nick === "" && this.archives !== null && q?.attrs.xmlns === NS.MAM) return this.archives.request(room, env, q, at, this);
        if (nick !== "" && this.iqs.forward(room, env, el, nick)) return;
        return this.answer(env, roomIq(room, el, env.from, nick));
      }
    } catch (e) {
      // A bug must cost the stanza, not the worker.
      this.log.error("muc: stanza failed", { room: room.jid, error: (e as Error)?.stack ?? String(e) });
      if (env.kind === Kind.Request) this.answer(env, { error: StanzaCondition.InternalServerError, text: "" });
    }
  }

  answer(req: Envelope, r: IqReply): void {
    const route = { from: req.to, to: req.from, protocol: "xmpp", responseFor: req.ref };
    if ("ok" in r) {
      const iq = new Element("iq", { type: "result" });
      if (r.ok !== null) iq.cnode(r.ok);
      return this.link.answer(Envelope.response({ ...route, payload: iq }));
    }
    const iq = new Element("iq", { type: "error" });
    iq.cnode(errorElement(r.error, r.text));
    this.link.answer(Envelope.error({ ...route, payload: iq, code: codeForError(iq) }));
  }

  // ---- RoomOut -----------------------------------------------------------------------

  send(kind: "message" | "presence", from: string, el: Element, to: readonly FanoutTarget[]): void {
    if (to.length === 0) return;
    // A stanza to several occupants, and every occupant presence: serialized once for all of them
    // (broadcast.ts); a newcomer's occupant list then crosses the bus as one message of known size. An
    // occupant's presence to newcomers is the same element join after join (Room.listed): its text too.
    let payload: unknown = el;
    if (kind === "presence") {
      let t = this.texts.get(el);
      if (t === undefined) this.texts.set(el, (t = serializedOnce(el)));
      payload = t;
    } else if (to.length > 1) payload = serializedOnce(el);
    const env = kind === "message" ? Envelope.message({ from, to: "", protocol: "xmpp", payload }) : Envelope.presence({ from, to: "", protocol: "xmpp", payload });
    this.link.fanout(env, to);
  }

  /** Written off the path (the store queues writes per room and logs a failure); the room goes on either way. */
  changed(room: Room): void {
    this.directory?.update(room);
    if (this.store === null) return;
    if (!room.config.persistent) {
      // Made temporary: it leaves the store.
      if (room.stored) void this.store.remove(room.jid);
      room.stored = false;
      return;
    }
    room.stored = true;
    void this.store.save(room.jid, room.state());
  }

  get archiving(): boolean {
    return this.archives !== null;
  }

  archive(room: Room, m: Element, sender: Occupant, now: number): void {
    this.archives?.mark(room, m, sender, now);
  }

  left(room: Room, o: Occupant): void {
    this.iqs.left(room, o);
  }

  gone(room: Room): void {
    this.rooms.delete(room.jid);
    // Ended (not merely leaving this worker): what was passed on to its occupants fails, it is no longer
    // listed, and its archive ends with it, so that a room made again under its name starts with none.
    if (room.destroyed || (!room.config.persistent && room.occupants.size === 0)) {
      this.iqs.gone(room);
      this.archives?.forget(room.jid, Date.now());
      this.directory?.gone(room);
    }
    if (room.destroyed && room.stored && this.store !== null) void this.store.remove(room.jid);
  }
}
