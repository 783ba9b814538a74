import { parse, type Element } from "ltx";
import type { XmppContext } from "../context.js";
import { Phase, type ClientSession } from "../client-session.js";
import { NS } from "../ns.js";
import type { Handover } from "../../session/core.js";
import type { Session } from "../../session/session.js";
import type { HeldCopy, Recalled, ResumeRecord } from "../../session/resume-record.js";
import type { Envelope } from "../../envelope/envelope.js";
import { unackedAgain } from "./offline.js";

/** Directed presence a record carries at most (RFC 6121 §4.6.3 is told of it at the end; the rest is not). */
const MAX_DIRECTED = 100;

/** What an XMPP session's resume record says besides the core's fields. */
interface RecordState {
  /** The last broadcast presence stanza, as XML; null: none (unavailable). */
  presence: string | null;
  available: boolean;
  priority: number;
  /** XEP-0280 enabled. */
  copies: boolean;
  /** Fetched the roster: gets roster pushes (RFC 6121 §2.1.6). */
  roster: boolean;
  directed: string[];
}

/**
 * The record of a resumable session (XEP-0198 after its worker's death,
 * docs/architecture.md "Resumption after a death"): its id, account, full JID
 * and what a new session at that JID must restore. `idOf` gives the session's
 * resumption id ("": not resumable). The count is the core's (ResumeRecords).
 */
export function describer(x: XmppContext, idOf: (s: ClientSession) => string): (core: Session) => ResumeRecord | null {
  return (core) => {
    const s = core as unknown as ClientSession;
    const key = idOf(s);
    if (key === "" || s.phase !== Phase.Bound) return null;
    const directed: string[] = [];
    for (const d of s.directed) if (directed.push(d) >= MAX_DIRECTED) break;
    const state: RecordState = { presence: s.presence === null ? null : String(s.presence), available: s.available, priority: s.priority, copies: s.wantsCopies, roster: s.rosterRequested, directed };
    return { protocol: "xmpp", key, user: s.user, address: s.address, count: 0, windowMs: x.config.xmpp.sm.resumeTimeoutMs, state };
  };
}

/**
 * A record whose window passed with nobody resuming it (kept for a worker that
 * died): the messages its session wrote alone and its client never
 * acknowledged go to the user's next session, or are stored, as when a
 * session's window passes on its own worker.
 */
export function leftover(x: XmppContext): (rec: ResumeRecord, held: readonly HeldCopy[]) => Envelope[] {
  return (rec, held) => {
    const stamp = new Date().toISOString();
    const out: Envelope[] = [];
    const ids: string[] = [];
    for (const [, wire] of held) {
      try {
        const el = parse(wire) as Element;
        const env = unackedAgain(x.config.domain, rec.address, el, stamp);
        if (env === null) continue;
        out.push(env);
        // The stanza's own id (the envelope of a message has none): what a trace looks for.
        ids.push(String(el.attrs.id ?? ""));
      } catch {
        // Our own output always parses.
      }
    }
    if (x.debug && out.length > 0) x.log.debug("left-over resume copies sent again", { address: rec.address, ids });
    return out;
  };
}

/** The copies a client with count `clientH` did not receive, oldest first (its count covers a prefix of what was written). */
function notReceived(held: readonly HeldCopy[] | undefined, clientH: number): string[] {
  const out: string[] = [];
  for (const [n, wire] of held ?? []) {
    const ahead = (n - clientH) >>> 0;
    if (ahead !== 0 && ahead < 0x8000_0000) out.push(wire);
  }
  return out;
}

/**
 * Every copy the keeper had, received or not, counts as given to the rebuilt session (Session.recent): its
 * sender's client, resuming from a count that stayed below it, may send it again (docs/architecture.md, "Resent").
 */
export function rememberCopies(core: Session, held: readonly HeldCopy[]): void {
  const recent = core.recentMessages();
  for (const [, wire] of held) {
    try {
      const el = parse(wire) as Element;
      const id = el.attrs.id;
      if (typeof id === "string" && id !== "" && typeof el.attrs.from === "string") recent.note(el.attrs.from, id);
    } catch {
      // Our own output always parses.
    }
  }
}

/**
 * A session rebuilt from its record, as a handover from nobody: the claimant
 * keeps its own serial (the session that died is gone from its owner), the
 * server's count is the one the client was last told, the client's is what it
 * says it received. Unacknowledged: the keeper's copies of what the dead
 * session alone held and the client did not receive (what other workers hold
 * in custody comes again from them).
 */
export function rebuiltHandover(rec: ResumeRecord, serial: number, clientH: number, held?: readonly HeldCopy[]): Handover {
  const st = rec.state as RecordState;
  let presence: Element | null = null;
  try {
    if (typeof st.presence === "string") presence = parse(st.presence) as Element;
  } catch {
    // Our own output always parses; without it the session is unavailable.
  }
  const slash = rec.address.indexOf("/");
  return {
    protocol: "xmpp",
    key: rec.key,
    address: rec.address,
    resource: rec.address.slice(slash + 1),
    serial,
    available: st.available === true && presence !== null,
    priority: typeof st.priority === "number" ? st.priority : 0,
    presence,
    wantsCopies: st.copies === true,
    peersWantCopies: false,
    inbound: [],
    state: { handled: rec.count, acked: clientH, unacked: notReceived(held, clientH), receipts: [], directed: Array.isArray(st.directed) ? st.directed : [], rosterRequested: st.roster === true },
  };
}

/** The <resume/> of `session` (input held) found no live session on this host. */
export interface Missed {
  previd: string;
  user: string;
  /** The client's h. */
  h: number;
  /** The session's Session.keepKey. */
  keepKey: string;
  ask: unknown;
  /** Makes `session` the handed-over (or rebuilt) one and answers <resumed/>. */
  arrived(session: ClientSession, h: Handover): void;
  /** Tells the client its <failed/> (§5 alone, or inside SASL2's <success/>). */
  failed(xml: string): void;
}

/**
 * After a claim on this host missed: the keepers are asked for the session's
 * record. Its holder alive elsewhere (another host): claimed from there. Its
 * holder dead: the session is rebuilt here from the record, and once its owner
 * has the new binding, custody is told the client's h, so that what the dead
 * session had taken and its client did not get comes here at once. No record
 * (never kept, its keeper died too, its window passed): <failed/> as before,
 * and the client logs in and reads its stored messages.
 */
export function afterMiss(x: XmppContext, session: ClientSession, m: Missed): void {
  const fail = () => {
    // What its client says it received is not sent again (Core.receivedUpTo).
    x.core.receivedUpTo(m.keepKey, m.h);
    if (session.phase === Phase.Authenticated) m.failed(`<failed xmlns='${NS.SM}'><item-not-found xmlns='${NS.STANZA_ERRORS}'/></failed>`);
    session.release();
  };
  /** `before`: the record a first recall found, rebuilt from if the second finds none. */
  const ask = (again: boolean, before?: Recalled) => x.core.records.recall("xmpp", m.previd, m.user, m.h, (got) => {
    if (got === null && before === undefined) return fail();
    const found = got ?? before!;
    const rebuild = () => {
      if (session.phase !== Phase.Authenticated) return fail();
      m.arrived(session, rebuiltHandover(found.record, session.coreSession.serial, m.h, found.held));
      if (found.held !== undefined) rememberCopies(session.coreSession, found.held);
      x.metrics.sm.rebuilt++;
      if (x.debug) x.log.debug("xmpp session rebuilt from its resume record", { address: session.address, h: m.h, count: found.record.count, holder: found.holder, copies: found.held?.length ?? -1 });
      // Behind the bind on the ordered stream to the owner: what custody routes again finds the session bound.
      // With the place of the last copy it resent: the dead session, if only stalled, does not give those back.
      const copied = found.held !== undefined && found.held.length > 0 ? found.held[found.held.length - 1][0] : undefined;
      x.core.barrier(session.coreSession, () => x.core.receivedUpTo(m.keepKey, m.h, true, copied));
      // What came for the user while it had no session was stored (or held by its owner, then stored): it comes now
      // (arrived takes it, as for any session that arrives here by a resumption).
      session.release();
    };
    // Its worker is gone (the keeper saw it go, or this worker did): rebuilt here.
    if (found.holder === "" || !x.core.records.live(found.holder)) return rebuild();
    // Alive in both views, on another host (this host's claim missed): claimed from there.
    x.core.handovers.claim(
      "xmpp",
      m.previd,
      m.ask,
      (a) => {
        if (a.kind === "miss") {
          // Seen to leave while the claim waited: asked again, its keeper gives the record up with its copies (rebuilt
          // from this answer, without them, the keeper would send them on when the window passed: duplicates).
          if (!x.core.records.live(found.holder)) return again ? ask(false, found) : rebuild();
          // Its holder says it has no such session: it may have restarted under the same id since the keepers
          // answered, and its keeper kept the record for the dead one (orphaned now): asked once more.
          return again ? ask(false) : fail();
        }
        if (a.kind === "ok") m.arrived(session, a.handover);
        else if (session.phase === Phase.Authenticated) m.failed(String(a.reason));
        session.release();
      },
      [found.holder],
    );
  });
  ask(true);
}
