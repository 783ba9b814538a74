import { randomBytes } from "node:crypto";
import { Element } from "ltx";
import { bareOf } from "../../address/address.js";
import type { Envelope } from "../../envelope/envelope.js";
import type { FanoutTarget } from "../../session/service.js";
import type { Logger } from "../../log/logger.js";
import type { ArchivePage, ArchiveRow, ArchiveStore } from "../../store/archive-store.js";
import { BatchQueue } from "../../store/batch-queue.js";
import { NS } from "../ns.js";
import { StanzaCondition } from "../errors.js";
import { parseOne, serialize } from "../stanza.js";
import { finElement, parseQuery, queryFormElement } from "../modules/mam-query.js";
import type { IqReply } from "./room-admin.js";
import type { Room } from "./room.js";
import type { Occupant } from "./occupants.js";

/** How the archive answers: results to the asker's session, then the iq's answer (service.ts). */
export interface MamOut {
  send(kind: "message", from: string, el: Element, to: readonly FanoutTarget[]): void;
  answer(req: Envelope, r: IqReply): void;
}

export interface RoomArchiveOptions {
  maxQueued: number;
  maxBatch: number;
  maxPageSize: number;
}

/** A groupchat message queued for its room's archive; rendered when its batch is written. */
interface Entry {
  room: string;
  id: string;
  nick: string;
  /** The sender's real full JID. */
  jid: string;
  el: Element;
  ts: number;
}

/**
 * XEP-0313 on rooms (§MUC archives; XEP-0045 with MAM): the room's owner worker archives the groupchat
 * messages with a body that its rooms broadcast, in the same archive store as the users' archives, the
 * room's bare JID being the archive's owner (it holds an '@', so it never meets an account's name).
 * On the forwarding path only an id, a child and a push; the rows are made and written after the turn,
 * in batches. Each message gets `<stanza-id by='room@service'/>` (XEP-0359) before the broadcast, so
 * every occupant, the history and the archive agree on its id.
 */
export class RoomArchive {
  private n = 0;
  private readonly prefix = `${randomBytes(6).toString("base64url")}-`;
  private readonly batches: BatchQueue<Entry>;
  private failing = false;
  readonly stats = { archived: 0, dropped: 0, failed: 0 };

  constructor(
    private readonly store: ArchiveStore,
    private readonly opts: RoomArchiveOptions,
    private readonly log: Logger,
  ) {
    this.batches = new BatchQueue(opts.maxQueued, opts.maxBatch, (b) => this.write(b));
  }

  /** RoomOut.archive: when the room archives, queues `m` (as broadcast from `sender`'s nick) and gives it its id. */
  mark(room: Room, m: Element, sender: Occupant, now: number): void {
    if (!room.config.logging) return;
    // XEP-0334 hints ask servers not to keep a message.
    for (const c of m.children) if (typeof c !== "string" && c.attrs.xmlns === NS.HINTS && (c.name === "no-store" || c.name === "no-permanent-store")) return;
    const id = this.prefix + (this.n++).toString(36);
    if (!this.batches.push({ room: room.jid, id, nick: sender.nick, jid: sender.jid, el: m, ts: now })) {
      if (this.stats.dropped++ === 0) this.log.warn("room archive queue full: groupchat messages are not archived", { maxQueued: this.opts.maxQueued });
      return;
    }
    m.c("stanza-id", { xmlns: NS.SID, id, by: room.jid });
  }

  /** Resolves once what was queued before is written (or failed). */
  flushed(): Promise<void> {
    return this.batches.flushed();
  }

  /** The room ended (destroyed, or a temporary room emptied): its archive goes, after what was queued for it. */
  forget(room: string, now: number): void {
    void this.flushed()
      .then(() => this.store.forget(room, now))
      .catch((e: Error) => this.log.warn("room archive not removed", { room, error: e.message }));
  }

  private async write(batch: Entry[]): Promise<void> {
    try {
      const rows = batch.map(rowOf);
      await this.store.append(rows);
      this.stats.archived += rows.length;
      if (this.failing) this.log.warn("room messages are being archived again");
      this.failing = false;
    } catch (e) {
      this.stats.failed += batch.length;
      if (!this.failing) this.log.warn("room messages not archived: the store failed", { error: (e as Error).message, batch: batch.length });
      this.failing = true;
    }
  }

  /** An iq get or set to the room's bare JID in urn:xmpp:mam:2 from `jid` (at `at`); `q` its child. */
  request(room: Room, env: Envelope, q: Element, at: string, out: MamOut): void {
    const type = (env.payload as Element).attrs.type;
    const refused = refusal(room, env.from);
    if (refused !== null) return out.answer(env, refused);
    if (q.name !== "query") return out.answer(env, { error: StanzaCondition.FeatureNotImplemented, text: "a room's archive has no preferences" });
    if (type === "get") return out.answer(env, { ok: queryFormElement() });
    const parsed = parseQuery(q, this.opts.maxPageSize);
    if (!parsed.ok) return out.answer(env, { error: parsed.cond === "bad-request" ? StanzaCondition.BadRequest : StanzaCondition.FeatureNotImplemented, text: parsed.text });
    const to = { address: env.from, at };
    const jid = room.jid;
    const asker = env.from;
    // Written first: a message the room broadcast just before is found.
    this.flushed()
      .then(() => this.store.query({ ...parsed.query, user: jid }))
      .then(
        (page) => {
          if (page === null) return out.answer(env, { error: StanzaCondition.ItemNotFound, text: "no such result in this archive (RSM after/before)" });
          // Judged now, not when the query came: the room's whois and the asker's role as the results go.
          const shown = realJidsFor(room, asker);
          for (const el of results(jid, parsed.queryid, page, shown)) out.send("message", jid, el, [to]);
          out.answer(env, { ok: finElement(parsed.queryid, page) });
        },
        (e: Error) => {
          this.log.warn("room archive query failed", { room: jid, error: e.message });
          out.answer(env, { error: StanzaCondition.InternalServerError, text: "the archive could not be read" });
        },
      );
  }
}

/**
 * Who may read a room's archive (XEP-0313 §MUC: as the room allows): nobody banned; in a members-only
 * room its members, admins and owners; in a locked room its owners; in a password-protected room its
 * occupants and affiliated users; else anyone who could join, occupant or not. Null: allowed.
 */
export function refusal(room: Room, jid: string): IqReply | null {
  if (!room.config.logging) return { error: StanzaCondition.ServiceUnavailable, text: "this room keeps no archive" };
  const bare = jid.indexOf("/") < 0 ? jid : jid.slice(0, jid.indexOf("/"));
  const aff = room.affiliationOf(bare);
  if (aff === "outcast") return { error: StanzaCondition.Forbidden, text: "banned from this room" };
  if (aff !== "none" || room.occupantOf(jid) !== undefined) return null;
  if (room.locked) return { error: StanzaCondition.ItemNotFound, text: "the room is locked until its owner configures it" };
  if (room.config.membersOnly) return { error: StanzaCondition.Forbidden, text: "this room's archive is for its members" };
  if (room.config.password !== "") return { error: StanzaCondition.Forbidden, text: "this room's archive is for its occupants" };
  return null;
}

/**
 * Whose real JIDs `asker` (a full JID) is shown in the room's archive (XEP-0313 §MUC archives: in a
 * non-anonymous room, or when the asker may learn the sender's real JID at the time of the query). In a
 * non-anonymous room (whois anyone) every reader's, as XEP-0045 shows every occupant's real JID to all;
 * in a semi-anonymous one only a moderator's (XEP-0045 §7.2.4: real JIDs go to occupants whose role is
 * moderator; an owner or admin not in the room has no role), and a user's own messages to that user,
 * which tells nobody anything new. Returns a test on a stored real JID.
 */
export function realJidsFor(room: Room, asker: string): (realJid: string) => boolean {
  if (room.config.whois === "anyone" || room.occupantOf(asker)?.role === "moderator") return ALL;
  const bare = bareOf(asker);
  return (realJid) => bareOf(realJid) === bare;
}
const ALL = () => true;

/** The row of one message: the archive's owner is the room; `with` the occupant JID (room/nick) it came from, `realJid` its sender's. */
function rowOf(e: Entry): ArchiveRow {
  const out = new Element("message", { ...e.el.attrs, xmlns: NS.CLIENT, from: `${e.room}/${e.nick}` });
  delete out.attrs.to;
  out.children = e.el.children.filter((c) => typeof c === "string" || !(c.name === "stanza-id" && c.attrs.xmlns === NS.SID && c.attrs.by === e.room));
  return { user: e.room, id: e.id, with: e.room, withResource: e.nick, ts: e.ts, outgoing: false, stanza: serialize(out), realJid: e.jid };
}

/**
 * §4.2: each result as a message from the room, the archived message forwarded with its time; the sender's
 * real JID in <x xmlns=muc#user><item jid/></x> where `shown` allows (and one was kept). Any such <x/>
 * in the archived text is dropped first (kept before the room stripped it from groupchat: not the room's word).
 */
function results(room: string, queryid: string, page: ArchivePage, shown: (realJid: string) => boolean): Element[] {
  const out: Element[] = [];
  for (const it of page.items) {
    const archived = parseOne(it.stanza);
    if (archived === null) continue;
    archived.children = archived.children.filter((c) => typeof c === "string" || !(c.name === "x" && c.attrs.xmlns === NS.MUC_USER));
    if (it.realJid !== null && it.realJid !== "" && shown(it.realJid)) archived.c("x", { xmlns: NS.MUC_USER }).c("item", { jid: it.realJid });
    const m = new Element("message", { from: room });
    const r = m.c("result", queryid === "" ? { xmlns: NS.MAM, id: it.id } : { xmlns: NS.MAM, queryid, id: it.id });
    const f = r.c("forwarded", { xmlns: NS.FORWARD });
    f.c("delay", { xmlns: NS.DELAY, stamp: new Date(it.ts).toISOString() });
    f.cnode(archived);
    out.push(m);
  }
  return out;
}

