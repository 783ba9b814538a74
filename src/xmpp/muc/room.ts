import { Element } from "ltx";
import { createHash } from "node:crypto";
import { bareOf } from "../../address/address.js";
import { NS } from "../ns.js";
import { StanzaCondition, stanzaError } from "../errors.js";
import type { FanoutTarget } from "../../session/service.js";
import { defaultConfig, type RoomConfig } from "./room-config.js";
import { historyAsk, historyFor, type Kept } from "./history.js";
import { RecentMessages } from "../../session/recent-messages.js";

/** Groupchat messages a room remembers by sender and id (a busy room hears many senders between a message and its resend). */
const ROOM_RECENT = 64;
import { type Affiliation, type Occupant, type Role, occupantPresence, shownOf, target } from "./occupants.js";

/** What a room sends through: its service turns these into envelopes and fan-outs (service.ts). */
export interface RoomOut {
  /** One stanza from `from` (the room or room/nick) to each target, one payload for all. */
  send(kind: "message" | "presence", from: string, el: Element, to: readonly FanoutTarget[]): void;
  /** Its configuration, affiliations or subject changed: a persistent room is written to the store. */
  changed(room: Room): void;
  /** The room ends: destroyed, or a temporary room's last occupant left. */
  gone(room: Room): void;
  /** XEP-0313: the service keeps room archives (muc.mam.enabled; room-mam.ts). */
  readonly archiving?: boolean;
  /**
   * A groupchat message with a body from `sender`, before its broadcast: archived if the room archives (with the
   * sender's real JID, for the readers who may see it), given its <stanza-id by=room/> (room-mam.ts).
   */
  archive?(room: Room, m: Element, sender: Occupant, now: number): void;
  /** The occupant left (or was removed): what was forwarded to it and not answered fails now (occupant-iq.ts). */
  left?(room: Room, o: Occupant): void;
}

export interface RoomLimits {
  maxOccupants: number;
  historyMessages: number;
  maxNickLength: number;
  maxPresencePerSecond: number;
}

/** What a room keeps in the store when persistent (src/store/muc-store.ts). */
export interface RoomState {
  config: RoomConfig;
  affiliations: [string, Affiliation][];
  subject: string;
  subjectBy: string;
}

/**
 * One XEP-0045 room, in memory on the worker that owns its address. Everything
 * here is synchronous and local: the occupants' sessions may be anywhere, and
 * what goes to them leaves through RoomOut as one fan-out per stanza.
 */
export class Room {
  config: RoomConfig = defaultConfig();
  readonly affiliations = new Map<string, Affiliation>();
  readonly occupants = new Map<string, Occupant>();
  /** Real full JID → nick. */
  readonly nickOf = new Map<string, string>();
  subject = "";
  subjectBy = "";
  history: Kept[] = [];
  /** The last groupchat messages by sender's full JID and id: a resumed client's resend is not broadcast twice. Made at the first. */
  private recent: RecentMessages | null = null;
  /** §10.1: a new room is locked until its owner accepts the default configuration or submits one. */
  locked = false;
  /** Made for the first joiner, and not configured yet: a <cancel/> of the form destroys it (§10.1.3). */
  fresh = false;
  /** Destroyed by its owner (§10.9): a persistent room leaves the store too. */
  destroyed = false;
  /** In the store (persistent, written or read from there). */
  stored = false;
  /** What its occupant ids are made from (XEP-0421): moves with the room (room-state.ts), so they stay the same. */
  idKey: string;

  constructor(
    readonly jid: string,
    readonly out: RoomOut,
    readonly limits: RoomLimits,
    secret: string,
  ) {
    this.idKey = secret + jid;
  }

  affiliationOf(bare: string): Affiliation {
    return this.affiliations.get(bare) ?? "none";
  }

  /** XEP-0421: the same for a user's every visit of this room, and nothing else can be learned from it. */
  occupantId(bare: string): string {
    return createHash("sha256").update(this.idKey).update("\0").update(bare).digest("base64url").slice(0, 22);
  }

  state(): RoomState {
    return { config: this.config, affiliations: [...this.affiliations], subject: this.subject, subjectBy: this.subjectBy };
  }

  restore(s: RoomState): void {
    this.config = { ...defaultConfig(), ...s.config };
    this.affiliations.clear();
    for (const [jid, a] of s.affiliations) this.affiliations.set(jid, a);
    this.subject = s.subject;
    this.subjectBy = s.subjectBy;
  }

  private from(nick: string): string {
    return `${this.jid}/${nick}`;
  }

  private seesJid(viewer: Occupant): boolean {
    return this.config.whois === "anyone" || viewer.role === "moderator";
  }

  /** An error back to the real JID that sent `el`, from the address it was sent to. */
  error(el: Element, to: FanoutTarget, cond: StanzaCondition, text = "", nick = ""): void {
    if (el.attrs.type === "error") return;
    const reply = stanzaError(el, cond, nick === "" ? this.jid : this.from(nick), "", text);
    // §7.2: a join's error echoes the <x/> it came with.
    if (el.name === "presence") {
      const x = el.getChild("x", NS.MUC);
      if (x !== undefined) reply.children.unshift(new Element("x", { xmlns: NS.MUC }));
    }
    this.out.send(el.name === "presence" ? "presence" : "message", reply.attrs.from, reply, [to]);
  }

  // ---- presence ----------------------------------------------------------------------

  /** Presence from `jid` (at `at`) to room/nick. */
  presence(el: Element, jid: string, at: string, nick: string, now: number): void {
    const type = el.attrs.type;
    const curNick = this.nickOf.get(jid);
    const cur = curNick === undefined ? undefined : this.occupants.get(curNick);
    if (type === "unavailable") {
      if (cur !== undefined) this.leave(cur, el, [], {});
      return;
    }
    // Errors, probes, subscriptions: rooms do not subscribe (§7.2 speaks of available presence only).
    if (type !== undefined) return;
    const to = { address: jid, at };
    if (nick === "") return this.error(el, to, StanzaCondition.JidMalformed, "a nickname is needed (room@service/nick)");
    if (cur !== undefined) {
      cur.at = at;
      // Flood control: an occupant's presence changes are capped per second (muc.maxPresencePerSecond).
      if (now - cur.windowStart >= 1000) {
        cur.windowStart = now;
        cur.inWindow = 0;
      }
      if (++cur.inWindow > this.limits.maxPresencePerSecond) return this.error(el, to, StanzaCondition.PolicyViolation, "too many presence changes", cur.nick);
      if (nick === cur.nick) return this.update(cur, el);
      return this.changeNick(cur, el, nick);
    }
    this.join(el, jid, at, nick, now);
  }

  /** §7.2: the checks in the order §7.2.6-§7.2.10 and §7.2.16 give, then the occupant enters. */
  private join(el: Element, jid: string, at: string, asked: string, now: number): void {
    const to = { address: jid, at };
    const bare = bareOf(jid);
    const aff = this.affiliationOf(bare);
    const nick = nickOf(asked);
    if (nick === null || nick.length > this.limits.maxNickLength) return this.error(el, to, StanzaCondition.JidMalformed, "bad nickname", asked);
    const x = el.getChild("x", NS.MUC);
    const ask = historyAsk(x?.getChild("history"));
    if (ask === null) return this.error(el, to, StanzaCondition.BadRequest, "bad <history/> limits", asked);
    if (this.locked && aff !== "owner") return this.error(el, to, StanzaCondition.ItemNotFound, "the room is locked until its owner configures it", asked);
    if (aff === "outcast") return this.error(el, to, StanzaCondition.Forbidden, "banned from this room", asked);
    if (this.config.membersOnly && aff === "none") return this.error(el, to, REGISTRATION_REQUIRED, "members only", asked);
    if (this.occupants.has(nick)) return this.error(el, to, StanzaCondition.Conflict, "nickname in use", asked);
    const max = this.config.maxUsers > 0 ? this.config.maxUsers : this.limits.maxOccupants;
    // §7.2.10: owners and admins may enter a full room.
    if (this.occupants.size >= max && aff !== "owner" && aff !== "admin") return this.error(el, to, StanzaCondition.ServiceUnavailable, "the room is full", asked);
    if (this.config.password !== "" && aff !== "owner" && x?.getChildText("password") !== this.config.password) return this.error(el, to, StanzaCondition.NotAuthorized, "a password is required", asked);
    const role: Role = aff === "owner" || aff === "admin" ? "moderator" : this.config.moderated && aff === "none" ? "visitor" : "participant";
    const o: Occupant = { nick, jid, bare, at, role, shown: shownOf(el), id: this.occupantId(bare), windowStart: now, inWindow: 1 };
    // §7.2.3: the occupants already there, to the newcomer, first.
    const seesJid = this.config.whois === "anyone" || role === "moderator";
    const newcomer = [target(o)];
    for (const other of this.occupants.values()) this.out.send("presence", this.from(other.nick), this.listed(other, seesJid), newcomer);
    this.occupants.set(nick, o);
    this.nickOf.set(jid, nick);
    const self: number[] = [110];
    if (this.config.whois === "anyone") self.push(100);
    if (this.fresh && this.occupants.size === 1) self.push(201);
    if (nick !== asked) self.push(210);
    this.broadcastPresence(o, self, []);
    // §7.2.15, §7.2.16: history, then the subject (empty when none), always.
    const hist = historyFor(this.history, ask, Date.now());
    for (const k of hist) this.out.send("message", k.el.attrs.from, k.el, [to]);
    const subj = new Element("message", { type: "groupchat", id: `subject-${now.toString(36)}` });
    subj.c("subject").t(this.subject);
    this.out.send("message", this.subjectBy === "" ? this.jid : this.from(this.subjectBy), subj, [to]);
  }

  /**
   * An occupant's presence as each newcomer is shown it (§7.2.3): the same element for every join until the
   * occupant's presence, nick, role or affiliation changes, so that a join costs no new element per occupant
   * there, and its text is made once (the service keeps it: service.ts).
   */
  private listed(o: Occupant, jid: boolean): Element {
    const affiliation = this.affiliationOf(o.bare);
    let l = o.listed;
    if (l === undefined || l.shown !== o.shown || l.nick !== o.nick || l.role !== o.role || l.affiliation !== affiliation) {
      l = { shown: o.shown, nick: o.nick, role: o.role, affiliation, withJid: null, withoutJid: null };
      o.listed = l;
    }
    if (jid) return (l.withJid ??= occupantPresence(o, affiliation, { jid: true, codes: [], occupantIds: true }));
    return (l.withoutJid ??= occupantPresence(o, affiliation, { jid: false, codes: [], occupantIds: true }));
  }

  private update(o: Occupant, el: Element): void {
    o.shown = shownOf(el);
    this.broadcastPresence(o, [110], []);
  }

  /** §7.6: unavailable from the old nick with 303 and the new one, then available from the new one. */
  private changeNick(o: Occupant, el: Element, asked: string): void {
    const to = target(o);
    const nick = nickOf(asked);
    if (nick === null || nick.length > this.limits.maxNickLength) return this.error(el, to, StanzaCondition.JidMalformed, "bad nickname", asked);
    if (this.occupants.has(nick)) return this.error(el, to, StanzaCondition.Conflict, "nickname in use", asked);
    this.broadcastPresence(o, [110, 303], [303], { unavailable: true, newNick: nick });
    this.occupants.delete(o.nick);
    o.nick = nick;
    o.shown = shownOf(el);
    this.occupants.set(nick, o);
    this.nickOf.set(o.jid, nick);
    this.broadcastPresence(o, nick !== asked ? [110, 210] : [110], []);
  }

  /**
   * The occupant leaves (unavailable from its session), or is removed (`codes`: 307 kicked, 301 banned,
   * 321 no longer a member, 332 service shutdown). Everyone, the occupant too, sees it go.
   */
  leave(o: Occupant, el: Element | null, codes: number[], extra: { reason?: string; actor?: string; destroy?: Element }): void {
    if (el !== null) o.shown = shownOf(el);
    this.broadcastPresence(o, [110, ...codes], codes, { unavailable: true, ...extra });
    this.occupants.delete(o.nick);
    this.nickOf.delete(o.jid);
    this.out.left?.(this, o);
    if (this.occupants.size === 0 && !this.config.persistent) this.out.gone(this);
  }

  /**
   * An occupant's presence to everyone in the room: itself with `selfCodes` and its real JID; the
   * others with `codes`, the real JID shown as the room's whois says.
   */
  broadcastPresence(o: Occupant, selfCodes: number[], codes: number[], extra: { unavailable?: boolean; newNick?: string; reason?: string; actor?: string; destroy?: Element } = {}): void {
    const aff = this.affiliationOf(o.bare);
    const from = this.from(o.nick);
    const withJid: FanoutTarget[] = [];
    const without: FanoutTarget[] = [];
    for (const v of this.occupants.values()) {
      if (v === o) continue;
      (this.seesJid(v) ? withJid : without).push(target(v));
    }
    const opts = { ...extra, occupantIds: true };
    if (withJid.length > 0) this.out.send("presence", from, occupantPresence(o, aff, { ...opts, jid: true, codes }), withJid);
    if (without.length > 0) this.out.send("presence", from, occupantPresence(o, aff, { ...opts, jid: false, codes }), without);
    this.out.send("presence", from, occupantPresence(o, aff, { ...opts, jid: true, codes: selfCodes }), [target(o)]);
  }

  // ---- messages ----------------------------------------------------------------------

  /** A message from `jid` to the room (nick "") or to room/nick; `resent`: sent just after its client resumed (Flag.Resent). */
  message(el: Element, jid: string, at: string, nick: string, now: number, resent = false): void {
    const type = el.attrs.type;
    if (type === "error") return;
    const to = { address: jid, at };
    const senderNick = this.nickOf.get(jid);
    const sender = senderNick === undefined ? undefined : this.occupants.get(senderNick);
    if (nick !== "") return this.privateMessage(el, to, sender, nick);
    if (sender === undefined) {
      // §7.8.2: a mediated invitation may come from a non-occupant only in an open room; handled by the service first.
      return this.error(el, to, StanzaCondition.NotAcceptable, "only occupants may send messages to the room");
    }
    sender.at = at;
    if (type !== "groupchat") return this.error(el, to, StanzaCondition.BadRequest, "messages to the room are type groupchat");
    const subject = el.getChild("subject");
    const body = el.getChild("body");
    if (subject !== undefined && body === undefined) return this.changeSubject(el, sender, subject.getText());
    // §7.4: visitors in a moderated room have no voice.
    if (sender.role === "visitor") return this.error(el, to, StanzaCondition.Forbidden, "you have no voice in this moderated room");
    // Sent again by a client resumed from a count that stayed below it, and broadcast already: not twice (Session.recent).
    const id = el.attrs.id;
    if (typeof id === "string" && id !== "" && (this.recent ??= new RecentMessages(ROOM_RECENT)).again(jid, id, resent)) return;
    const m = new Element("message", { type: "groupchat" });
    if (el.attrs.id !== undefined) m.attrs.id = el.attrs.id;
    // Dropped: what only the room may say. A <x xmlns=muc#user/> could claim a real JID (XEP-0313, "MUC message spoofing": an archive strips it).
    for (const c of el.children) if (typeof c !== "string" && !(c.name === "occupant-id" && c.attrs.xmlns === NS.OCCUPANT_ID) && c.name !== "delay" && !(c.name === "stanza-id" && c.attrs.xmlns === NS.SID && c.attrs.by === this.jid) && !(c.name === "x" && c.attrs.xmlns === NS.MUC_USER)) m.cnode(c);
    m.c("occupant-id", { xmlns: NS.OCCUPANT_ID, id: sender.id });
    const from = this.from(sender.nick);
    // XEP-0313 on rooms: archived, with the room's XEP-0359 <stanza-id/> (a client's claiming to be it was dropped above), before the broadcast.
    if (body !== undefined) this.out.archive?.(this, m, sender, now);
    this.out.send("message", from, m, this.all());
    if (body !== undefined && this.limits.historyMessages > 0) this.keep(m, from, now);
  }

  /** §7.2.15: kept with a <delay/> from the room, as it will be replayed. */
  private keep(m: Element, from: string, now: number): void {
    const h = new Element("message", { ...m.attrs, from });
    for (const c of m.children) h.cnode(c as Element);
    h.c("delay", { xmlns: NS.DELAY, from: this.jid, stamp: new Date(now).toISOString() });
    this.history.push({ el: h, chars: h.toString().length, at: now });
    if (this.history.length > this.limits.historyMessages) this.history.shift();
  }

  /** §8.1: moderators may change the subject; participants only when the room allows it. */
  private changeSubject(el: Element, sender: Occupant, text: string): void {
    const mayChange = sender.role === "moderator" || (sender.role === "participant" && this.config.changeSubject);
    if (!mayChange) return this.error(el, target(sender), StanzaCondition.Forbidden, "you may not change the subject");
    this.subject = text;
    this.subjectBy = sender.nick;
    const m = new Element("message", { type: "groupchat" });
    if (el.attrs.id !== undefined) m.attrs.id = el.attrs.id;
    m.c("subject").t(text);
    this.out.send("message", this.from(sender.nick), m, this.all());
    this.out.changed(this);
  }

  /** §7.5: to one occupant's real JID, from the sender's occupant JID, marked with <x xmlns=muc#user/>. */
  private privateMessage(el: Element, to: FanoutTarget, sender: Occupant | undefined, nick: string): void {
    if (sender === undefined) return this.error(el, to, StanzaCondition.NotAcceptable, "only occupants may send private messages", nick);
    if (el.attrs.type === "groupchat") return this.error(el, to, StanzaCondition.BadRequest, "a groupchat message goes to the room", nick);
    const pm = this.config.allowPm;
    if (pm === "none" || (pm === "moderators" && sender.role !== "moderator") || (pm === "participants" && sender.role === "visitor")) return this.error(el, to, StanzaCondition.Forbidden, "private messages are not allowed here", nick);
    const rcpt = this.occupants.get(nick);
    if (rcpt === undefined) return this.error(el, to, StanzaCondition.ItemNotFound, "no such occupant", nick);
    const m = new Element("message", { ...el.attrs });
    delete m.attrs.from;
    delete m.attrs.to;
    delete m.attrs.xmlns;
    for (const c of el.children) if (typeof c !== "string") m.cnode(c);
    m.c("x", { xmlns: NS.MUC_USER });
    this.out.send("message", this.from(sender.nick), m, [target(rcpt)]);
  }

  all(): FanoutTarget[] {
    const out: FanoutTarget[] = [];
    for (const o of this.occupants.values()) out.push(target(o));
    return out;
  }

  /** The occupant a real full JID holds, if any. */
  occupantOf(jid: string): Occupant | undefined {
    const n = this.nickOf.get(jid);
    return n === undefined ? undefined : this.occupants.get(n);
  }
}

/** §7.2.8's condition, not one of RFC 6120's StanzaCondition set elsewhere. */
export const REGISTRATION_REQUIRED = ["registration-required", "auth"] as unknown as StanzaCondition;

/**
 * A nick as the room keeps it: Unicode NFC, spaces at either end removed (the service's nick policy,
 * §7.2.9: a change is told with 210). Null: nothing left, or control characters.
 */
export function nickOf(asked: string): string | null {
  const n = asked.normalize("NFC").trim();
  // eslint-disable-next-line no-control-regex
  if (n === "" || /[\u0000-\u001f\u007f]/.test(n)) return null;
  return n;
}
