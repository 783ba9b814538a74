import { randomBytes } from "node:crypto";
import { parse, type Element } from "ltx";
import type { StreamManagementConfig } from "../../config/config.js";
import { SmCounts } from "../../metrics/metrics.js";
import type { XmppContext } from "../context.js";
import { offlineSink, takeStored, unackedAgain } from "./offline.js";
import type { Envelope } from "../../envelope/envelope.js";
import { CloseReason } from "../../transport/conn.js";
import { StreamCondition, StreamError } from "../errors.js";
import { Ev, type Hooks } from "../hooks.js";
import { NS } from "../ns.js";
import { Phase, type AckTracker, type ClientSession } from "../client-session.js";
import { UnackedQueue } from "./unacked-queue.js";
import { HeldAnswers, type HoldsAnswers } from "./held-answers.js";
import { EndedSessions } from "./ended-sessions.js";
import { EqualWaits } from "../../timer/equal-waits.js";
import { inputMs, monotonicMs } from "../../timer/clock.js";
import { afterMiss, describer, leftover } from "./sm-records.js";
import type { Handover } from "../../session/core.js";
import type { Session } from "../../session/session.js";

/** Counters are modulo 2^32 (XEP-0198 §4). */
const MOD = 0x1_0000_0000;
/**
 * Unacknowledged output a session may take along to another worker (one bus
 * message). A session with more stays where it is: its client's resume
 * fails there, and its messages are stored offline when its window passes.
 */
const MAX_HANDOVER_BYTES = 256 * 1024;
/** A replaced resumable session waits this long at most for its client's count before giving back what it was not told of. */
const TOLD_WAIT_MS = 3000;
/** How long after a stall of this worker a replaced session may have been resumed elsewhere from its record. */
const STALLED_LATELY_MS = 60_000;
/**
 * How long after a resumption the client's messages go marked Flag.Resent. Clients send their unacknowledged
 * stanzas again at once on <resumed/> (xmpp.js and slixmpp in the same turn); the mark only makes their
 * recipients look them up among their last messages, so a generous window costs nothing.
 */
const RESENT_MS = 10_000;

/** What moves with a session to another worker of the host, besides what the core moves. */
interface SmState {
  handled: number;
  acked: number;
  /** Unacknowledged stanzas, oldest first, as written. */
  unacked: string[];
  /** Receipts of the unacknowledged messages held in custody elsewhere: [index in unacked, receipt]. */
  receipts: [number, string][];
  directed: string[];
  rosterRequested: boolean;
  /** XEP-0191: the client asked for the block list (absent from a worker of before). */
  blocklistRequested?: boolean;
}

/**
 * How a resumption's outcome reaches the client: alone (§5, <resumed/> or
 * <failed/> as top-level elements) or inside SASL2's <success/> (XEP-0198 §5 inline, XEP-0388).
 */
export interface ResumeReply {
  /** `s` (now on the asking connection) is resumed at full JID `address`: `xml` is its <resumed/>, announced before the stanzas sent again. */
  resumed(s: ClientSession, xml: string, address: string): void;
  /** Not resumed: `xml` is the <failed/>; the asking session is still authenticated and unbound. */
  failed(xml: string): void;
}

/** XEP-0198 in other elements than its own: inline in SASL2 and Bind2 (sasl/sasl2.ts). */
export interface SmInline {
  /** A <resume/> inside <authenticate/>, the session just authenticated; the outcome goes to `reply`, once. */
  resume(session: ClientSession, el: Element, reply: ResumeReply): void;
  /**
   * An <enable/> inside Bind2's <bind/>, before the session binds: counting starts now. Returns the
   * <enabled/> to put in <bound/>, and what to do once the session is bound.
   */
  enable(session: ClientSession, el: Element): { xml: string; bound(): void };
}

/** What a claimant worker asks with. */
interface ResumeAsk {
  user: string;
  h: number;
}

/**
 * XEP-0198 stream management: offered with bind after SASL (as Prosody's
 * mod_smacks does; @xmpp/client binds first and then enables, from the same
 * features), counted both ways once the client sent <enable/>. The server asks
 * for acks by the configured policy and cuts a client whose unacked output
 * passes `maxUnacked` as a slow consumer. With resume='true' a dropped
 * connection suspends the session (XmppSession.suspend) for resumeTimeoutMs;
 * a <resume/> on a new connection of the same account takes it over: on this
 * worker directly, on another worker of the host by a claim (Core.handovers),
 * which brings the session here. A draining worker parks its resumable
 * sessions on another worker. Sessions that end with stanzas unacknowledged
 * have their chat and normal messages stored offline.
 */
export function streamManagementModule(hooks: Hooks, x: XmppContext): SmInline {
  const cfg = x.config.xmpp.sm;
  /** Resumable sessions of this worker by their id (unguessable: 144 random bits). */
  const resumable = new Map<string, ClientSession>();
  /** Those that ended here lately: a late <resume/> is told their count (<failed h/>). */
  const ended = new EndedSessions();
  /** A message this worker or another holds in custody was acknowledged (or stored, or bounced, after its session gave it back). */
  const confirm = (receipt: string) => x.core.confirm(receipt);
  /**
   * An <a h/> goes once the bus published what the counted stanzas caused, and the keeper's count covers them (pins):
   * true when that is now (the usual case, and then nothing is allocated for it), else `later(h)` is called then.
   */
  const published = (h: number, s: ClientSession, later: (h: number) => void): boolean => {
    const records = x.core.records;
    if (records.countedNow(s.coreSession, h)) return true;
    records.whenCounted(s.coreSession, h, () => later(h));
    return false;
  };
  /** <a/> answers waiting for other output to their client (xmpp.sm.answerDelayMs); none: each goes at the end of its turn. */
  const held = cfg.answerDelayMs > 0 ? new HeldAnswers(cfg.answerDelayMs) : undefined;
  /** The time trigger of every stream's <r/> (xmpp.sm.ackEveryMs): one timer for the worker. */
  const requests = cfg.ackEveryMs > 0 ? new TimedRequests(cfg.ackEveryMs) : undefined;

  hooks.on(Ev.StreamFeatures, ({ session, features }) => {
    if (session.phase === Phase.Authenticated) features.c("sm", { xmlns: NS.SM });
  });

  // §3: enabling needs a bound resource; §5: resuming is what a client does instead of binding.
  hooks.on(Ev.Negotiation, ({ session, stanza }) => {
    if (session.phase !== Phase.Authenticated || stanza.attrs.xmlns !== NS.SM) return false;
    if (stanza.name === "enable") session.sendNonza(failed("unexpected-request"));
    else if (stanza.name === "resume") resume(session, stanza, alone(session));
    else return false;
    return true;
  });

  /** §5: the outcome as top-level elements. */
  function alone(session: ClientSession): ResumeReply {
    return { resumed: (s, xml) => s.sendNonza(xml), failed: (xml) => session.sendNonza(xml) };
  }

  function resume(session: ClientSession, stanza: Element, reply: ResumeReply): void {
    const previd = stanza.attrs.previd;
    const h = stanza.attrs.h !== undefined && /^[0-9]{1,10}$/.test(stanza.attrs.h) ? Number(stanza.attrs.h) : -1;
    const old = previd === undefined ? undefined : resumable.get(previd);
    if (old === undefined) {
      if (previd === undefined || h < 0 || h >= MOD) return reply.failed(failed("item-not-found"));
      const was = ended.handled(previd, session.user);
      if (was >= 0) return reply.failed(failedAfter(was));
      // Perhaps another worker of this host holds it. Input waits until the answer, which comes once.
      session.hold();
      const ask: ResumeAsk = { user: session.user, h };
      x.core.handovers.claim("xmpp", previd, ask, (a) => {
        // Nobody on this host has it: perhaps it died with its worker, and its record is kept elsewhere (sm-records.ts).
        const arrive = (s: ClientSession, ho: Handover) => arrived(s, ho, reply);
        if (a.kind === "miss") return afterMiss(x, session, { previd, user: session.user, h, keepKey: keepKeyOf(session.user, previd), ask, arrived: arrive, failed: reply.failed });
        if (a.kind === "ok") arrive(session, a.handover);
        else if (session.phase === Phase.Authenticated) reply.failed(a.kind === "refused" ? String(a.reason) : failed("item-not-found"));
        session.release();
      });
      return;
    }
    const refusal = refuse(old, session.user, h);
    if (refusal !== null) return reply.failed(refusal);
    const acks = old.acks as Acks;
    acks.acknowledged(h);
    // XEP-0352: a stream starts active; what an inactive client's gate held joins the queue, resent below.
    old.gate?.flush();
    old.gate = null;
    old.takeOver(session);
    resumed(old, acks, previd!, old.address, reply);
  }

  /**
   * Why `old` cannot be resumed by `user` with `h`, as the <failed/> to send; null: it can.
   * Unknown, expired, or another account's id (ids are bound to the account): all look the same (§5).
   */
  function refuse(old: ClientSession, user: string, h: number): string | null {
    if (!(old.acks instanceof Acks) || old.user !== user || old.phase !== Phase.Bound) return failed("item-not-found");
    // A stream still up is taken over, its connection closed (as Prosody and ejabberd do): a phone that moved
    // to another network resumes before the server has noticed that the old connection is dead.
    if (h < 0 || h >= MOD) return failed("bad-request");
    // §6's handled-count-too-high, as a failure of this resume: the suspended session is left as it was.
    if (!old.acks.fits(h)) return `<failed xmlns='${NS.SM}' h='${old.acks.handled}'><unexpected-request xmlns='${NS.STANZA_ERRORS}'/><handled-count-too-high xmlns='${NS.SM}' h='${h}' send-count='${old.acks.sentCount}'/></failed>`;
    return null;
  }

  /** The session is back on a connection: <resumed/>, then what the client had not acknowledged, again, in order (§5). */
  function resumed(s: ClientSession, acks: Acks, previd: string, address: string, reply: ResumeReply, take = true): void {
    reply.resumed(s, `<resumed xmlns='${NS.SM}' h='${acks.handled}' previd='${previd}'/>`, address);
    x.core.records.counted(s.coreSession, acks.handled);
    for (const wire of acks.queue.pending()) s.sendNonza(wire);
    acks.resumed();
    // What the client sends again now may have been delivered (a count that stayed behind a death): marked.
    s.resentUntil = monotonicMs() + RESENT_MS;
    if (x.debug) x.log.debug("xmpp session resumed", { address: s.address, resent: acks.queue.length, ids: idsOf(acks.queue.pending()) });
    // What its owner stored for the user while this session could not be reached (its worker stalled or cut off, the
    // ring changed meanwhile and changed back) comes now, as after a rebuild: else it waited for the client's next login.
    if (take && s.available) takeStored(x, s);
  }

  /** A session claimed from another worker arrived for `session`, whose client asked for it. */
  function arrived(session: ClientSession, h: Handover, reply: ResumeReply): void {
    // The client went away while the claim travelled: the session waits here for it instead.
    if (session.phase !== Phase.Authenticated) return void adopt(h);
    // Announced before the session takes its place in the core (restore): its full JID is the handover's. What is
    // stored is taken once it has (its availability came with the handover).
    restore(session, h, null, (acks) => resumed(session, acks, h.key, h.address, reply, false));
    if (session.available) takeStored(x, session);
  }

  /** A session that arrived with no connection (parked by a draining worker, or a claim answered too late). */
  function adopt(h: Handover): Session {
    const s = x.detachedSession("");
    s.authenticated(h.address.slice(0, h.address.indexOf("@")));
    restore(s, h, cfg.resumeTimeoutMs);
    return s.coreSession;
  }

  /**
   * Makes `s` the handed-over session: the stream's counters, then `announce`
   * (<resumed/> and the resent stanzas), then the core's part. In that order:
   * binding at the owner may deliver at once what the owner held for the user
   * (a session rebuilt after a death), and that must be counted and come after.
   */
  function restore(s: ClientSession, h: Handover, waitMs: number | null, announce?: (acks: Acks) => void): Acks {
    const st = h.state as SmState;
    const acks = new Acks(s, cfg, h.key, x.metrics.sm, confirm, h.key === "" ? undefined : (n) => x.core.records.acked(s.coreSession, n), published, held, requests);
    acks.restore(st.handled, st.acked, st.unacked, st.receipts ?? []);
    s.acks = acks;
    if (h.key !== "") s.coreSession.keepKey = keepKeyOf(s.user, h.key);
    announce?.(acks);
    s.continueFrom(h, waitMs);
    for (const d of st.directed) s.directed.add(d);
    s.rosterRequested = st.rosterRequested;
    s.blocklistRequested = st.blocklistRequested === true;
    for (const [i, receipt] of st.receipts ?? []) x.core.keeps(receipt, s.coreSession.keepKey, (st.acked + i + 1) % MOD);
    resumable.set(h.key, s);
    // Its record now names this worker (resume-records.ts), and its keeper copies what this worker alone holds.
    if (h.key !== "") {
      x.core.records.keep(s.coreSession);
      const receipts = new Map(st.receipts ?? []);
      for (let i = 0; i < st.unacked.length; i++) {
        if (st.unacked[i].startsWith("<message")) x.core.records.replicate(s.coreSession, (st.acked + i + 1) % MOD, st.unacked[i], receipts.get(i) ?? "");
      }
    }
    return acks;
  }

  /** What moves with `s`; null when its unacknowledged output is too much for one bus message. */
  function stateOf(s: ClientSession, acks: Acks): SmState | null {
    // XEP-0352: what an inactive client's gate holds joins the queue first (suspended: written nowhere).
    s.gate?.flush();
    s.gate = null;
    if (acks.queue.bytes > MAX_HANDOVER_BYTES) return null;
    const unacked = acks.queue.pending();
    return { handled: acks.handled, acked: acks.acknowledgedCount, unacked, receipts: acks.receiptsPending(), directed: [...s.directed], rosterRequested: s.rosterRequested, blocklistRequested: s.blocklistRequested };
  }

  x.core.records.describer(
    "xmpp",
    describer(x, (s) => (s.acks instanceof Acks ? s.acks.id : "")),
    (s) => ((s as unknown as ClientSession).acks as Acks | null)?.handled ?? 0,
    leftover(x),
  );

  x.core.handovers.resumer("xmpp", {
    release(key, ask) {
      const s = resumable.get(key);
      const { user, h } = ask as ResumeAsk;
      if (s === undefined) {
        // Ended here: the claimant's client is told how much was handled.
        const was = ended.handled(key, user);
        return was >= 0 ? { kind: "refused", reason: failedAfter(was) } : { kind: "miss" };
      }
      const refusal = refuse(s, user, h);
      if (refusal !== null) return { kind: "refused", reason: refusal };
      const acks = s.acks as Acks;
      acks.acknowledged(h);
      const state = stateOf(s, acks);
      if (state === null) return { kind: "refused", reason: failed("item-not-found") };
      resumable.delete(key);
      acks.discard();
      x.core.records.drop(s.coreSession);
      s.leave("resumed on another worker");
      return { kind: "ok", session: s.coreSession, state };
    },
    adopt,
  });

  // The server drains: a session waiting for its client moves to a worker that stays.
  hooks.on(Ev.SessionParking, ({ session }) => {
    const acks = session.acks;
    if (!(acks instanceof Acks) || !acks.resumable) return false;
    const state = stateOf(session, acks);
    if (state === null || !x.core.handovers.park(session.coreSession, acks.id, state)) return false;
    resumable.delete(acks.id);
    acks.discard();
    x.core.records.drop(session.coreSession);
    session.leave("parked on another worker");
    return true;
  });

  hooks.on(Ev.Nonza, ({ session, stanza }) => {
    if (stanza.attrs.xmlns !== NS.SM) return false;
    const acks = session.acks instanceof Acks ? session.acks : null;
    switch (stanza.name) {
      case "enable":
        // §3: enabling twice is an unexpected request (Prosody answers alike).
        if (acks !== null) session.sendNonza(failed("unexpected-request"));
        else {
          const e = enable(session, stanza);
          e.bound();
          session.sendNonza(e.xml);
        }
        return true;
      case "resume":
        // §5: resuming is for a new stream, before binding.
        session.sendNonza(failed("unexpected-request"));
        return true;
      case "r":
        if (acks === null) return false;
        acks.answer();
        return true;
      case "a":
        if (acks === null) return false;
        acks.acknowledged(parseH(stanza.attrs.h));
        return true;
      default:
        return false;
    }
  });

  /** Counting starts at once; `bound()` makes the session resumable once it is bound (at once when it is). */
  function enable(session: ClientSession, stanza: Element): { xml: string; bound(): void } {
    const id = randomBytes(18).toString("base64url");
    const resume = (stanza.attrs.resume === "true" || stanza.attrs.resume === "1") && cfg.resumeTimeoutMs > 0;
    session.acks = new Acks(session, cfg, resume ? id : "", x.metrics.sm, confirm, resume ? (n) => x.core.records.acked(session.coreSession, n) : undefined, published, held, requests);
    // §5: max in seconds.
    const offer = resume ? ` resume='true' max='${Math.floor(cfg.resumeTimeoutMs / 1000)}'` : "";
    const bound = () => {
      if (!resume || session.phase !== Phase.Bound) return;
      resumable.set(id, session);
      session.coreSession.keepKey = keepKeyOf(session.user, id);
      x.core.records.keep(session.coreSession);
    };
    return { xml: `<enabled xmlns='${NS.SM}' id='${id}'${offer}/>`, bound };
  }

  // The session ends for good (clean close, error, window passed, replaced): what the client never acknowledged is not lost.
  hooks.on(Ev.SessionClosing, ({ session }) => {
    const acks = session.acks;
    if (!(acks instanceof Acks)) return;
    acks.stop();
    if (acks.id !== "") {
      resumable.delete(acks.id);
      // Its count, for a late <resume/> (§5), once what the counted stanzas caused has left this worker, as an <a/>
      // would go. Not when replaced (conflict): a session rebuilt elsewhere from its record may live on under the id.
      if (session.endReason !== "conflict") {
        const id = acks.id;
        const user = session.user;
        const h = acks.handled;
        const note = () => ended.note(id, user, h);
        if (published(h, session, note)) note();
      }
    }
    const receipts = acks.receiptsPending();
    const wires = acks.queue.pending();
    const first = acks.acknowledgedCount;
    acks.discard();
    const key = session.coreSession.keepKey;
    const giveBack = () => unacknowledged(session, wires, receipts, first);
    // Replaced by a newer session of its address after this worker was stopped (a resumption elsewhere from its resume
    // record): the worker that rebuilt it says how much the client received once the new session is bound at its
    // owner, which is what replaced this one, so a moment after. Waited for (up to TOLD_WAIT_MS): given back before
    // that, what the client had would come again, from offline storage. A worker that was not stopped lately holds
    // the only copy of its session: replaced by a new login, it gives back at once, as before.
    if (key !== "" && wires.length > 0 && session.endReason === "conflict" && x.core.clientReceived(key) < 0 && x.core.stalledWithin(STALLED_LATELY_MS)) {
      x.core.whenClientCounted(key, TOLD_WAIT_MS, giveBack);
      return;
    }
    giveBack();
  });

  /** What `session`, ended, had written and its client never acknowledged goes back through the core, or is settled. */
  function unacknowledged(session: ClientSession, wires: string[], receipts: [number, string][], first: number): void {
    const again: Envelope[] = [];
    const stamp = new Date().toISOString();
    let r = 0;
    // Its client, which went elsewhere, may have said how much it received (a failed resumption, while this worker was stopped).
    const told = session.coreSession.keepKey === "" ? -1 : x.core.clientReceived(session.coreSession.keepKey);
    // Replaced by its client's binding under another tag (XEP-0386 §3.2): to that session, as to the same full JID.
    const to = session.coreSession.successor !== "" ? session.coreSession.successor : session.address;
    for (let i = 0; i < wires.length; i++) {
      // The message keeps the receipt it came with: whoever settles it now tells the worker holding it.
      let receipt = "";
      if (r < receipts.length && receipts[r][0] === i) receipt = receipts[r++][1];
      if (told >= 0 && (told - (first + i + 1) + MOD) % MOD < MOD / 2) {
        if (receipt !== "") confirm(receipt);
        continue;
      }
      // Rebuilt on another worker, which sent it again from the record keeper's copy.
      if (told >= 0 && x.core.replayedElsewhere(session.coreSession.keepKey, receipt, (first + i + 1) % MOD) && wires[i].startsWith("<message")) {
        if (receipt !== "") confirm(receipt);
        continue;
      }
      let env: Envelope | null = null;
      try {
        env = unackedAgain(x.config.domain, to, parse(wires[i]) as Element, stamp, receipt);
      } catch {
        // Our own output always parses; nothing to send again if it did not.
      }
      if (env !== null) again.push(env);
      // Not sent again (a carbon, a headline): settled as far as this session goes.
      else if (receipt !== "") confirm(receipt);
    }
    if (again.length === 0) return;
    // The server stops: the owner may be a worker that stops too, so they are stored here and now.
    if (session.endReason === CloseReason.Shutdown) {
      const store = offlineSink(x);
      for (const env of again) {
        const settle = (code: string | null) => {
          if (code !== null) x.core.bounce(env, code);
          if (env.ref !== "") confirm(env.ref);
        };
        const refused = store(env, settle);
        if (refused !== null) settle(refused);
      }
      return;
    }
    // After the session has left the core (detach follows this event at once), so they cannot come back to it.
    const s = session.coreSession;
    queueMicrotask(() => {
      for (const env of again) x.core.submit(s, env);
    });
    if (x.debug) x.log.debug("unacknowledged messages sent again", { address: session.address, to, count: again.length, ids: again.map((e) => String((e.payload as Element).attrs.id ?? "")) });
  }

  return {
    resume,
    enable(session, el) {
      if (session.acks !== null) return { xml: failed("unexpected-request"), bound: () => {} };
      return enable(session, el);
    },
  };
}

/** The id attributes of stanzas as written (debug traces only: which message went where). */
export function idsOf(wires: readonly string[]): string[] {
  const ids: string[] = [];
  for (const w of wires) {
    const m = /^<[a-z]+ [^>]*?\bid='([^']*)'/.exec(w) ?? /^<[a-z]+ [^>]*?\bid="([^"]*)"/.exec(w);
    if (m !== null) ids.push(m[1]);
  }
  return ids;
}

/** Session.keepKey of a resumable session: the account, so another account's h settles nothing, and the unguessable id. */
function keepKeyOf(user: string, id: string): string {
  return `${user}\u0000${id}`;
}

function failed(condition: string): string {
  return `<failed xmlns='${NS.SM}'><${condition} xmlns='${NS.STANZA_ERRORS}'/></failed>`;
}

/** §5: the session ended; `h`, the stanzas handled from its client, says which of them it need not send again. */
function failedAfter(h: number): string {
  return `<failed xmlns='${NS.SM}' h='${h}'><item-not-found xmlns='${NS.STANZA_ERRORS}'/></failed>`;
}

/** The server's <r/>, made once. */
const REQUEST = `<r xmlns='${NS.SM}'/>`;

function answerOf(h: number): string {
  return `<a xmlns='${NS.SM}' h='${h}'/>`;
}

function parseH(h: string | undefined): number {
  const n = h !== undefined && /^[0-9]{1,10}$/.test(h) ? Number(h) : MOD;
  if (n >= MOD) throw new StreamError(StreamCondition.BadFormat, "h must be an integer in [0, 2^32)");
  return n;
}

/**
 * The time trigger of the server's <r/> (xmpp.sm.ackEveryMs), for all the streams of a worker: every wait is
 * as long. At most 1 % of the wait late.
 */
export class TimedRequests extends EqualWaits<Acks> {
  constructor(ms: number) {
    super(ms, (acks, deadline) => acks.requestDue(deadline), 0.01);
  }
}

/** The counters, the unacked queue and the ack-request policy of one stream. */
export class Acks implements AckTracker, HoldsAnswers {
  /** Stanzas handled from the client (§4 h), modulo 2^32. */
  handled = 0;
  /** The last h the client acknowledged: the sent count at the queue's head. */
  private acked = 0;
  readonly queue = new UnackedQueue();
  /** Stanzas sent since the last <r/>. */
  private sinceRequest = 0;
  /** The deadline of the timed <r/> (TimedRequests' entry); 0: none armed. */
  private requestAt = 0;
  /** Where the timed <r/> waits (absent: its own queue, for a tracker made alone: tests). */
  private readonly requests: TimedRequests | undefined;
  /** How long before its time the timed <r/> rides with other output (rideNow). */
  private readonly rideMs: number;
  /** Stanzas queued and acknowledged since this tracker began, not wrapped: where a receipt sits in the queue. */
  private queued = 0;
  private dropped = 0;
  /** Receipts (Envelope.ref) of unacknowledged messages held in custody, with the queue position of each, oldest first. */
  private receiptAt: number[] = [];
  private receipts: string[] = [];
  private receiptHead = 0;
  /** The h of each <r/> whose <a/> is held (HeldAnswers), in order: one answer per request, each with its own count. The first `answerCount` count; the array is kept. */
  private answers: number[] = [];
  private answerCount = 0;
  /** When the held answers go at the latest (HeldAnswers' entry); 0: none held. */
  answerDue = 0;

  constructor(
    private readonly s: ClientSession,
    private readonly cfg: StreamManagementConfig,
    /** The resumption id; empty: not resumable. */
    readonly id = "",
    /** The worker's gauge of unacknowledged stanzas (its own when none is given: tests). */
    private readonly counts = new SmCounts(),
    /** Told each receipt the client acknowledged. */
    private readonly confirm: (receipt: string) => void = () => {},
    /** Told each h the client acknowledged with (a resumable session: its keeper's copies up to h go). */
    private readonly ackedTo?: (h: number) => void,
    /**
     * Whether an <a h/> may go now: what the counted stanzas caused has left this worker and its keeper may count them;
     * if not, it calls `later(h)` when they have (ResumeRecords.countedNow, whenCounted).
     */
    private readonly published: (h: number, s: ClientSession, later: (h: number) => void) => boolean = () => true,
    /** Where answers wait for other output; absent: each goes at the end of the turn that read its <r/>. */
    private readonly held?: HeldAnswers,
    /** The worker's time trigger of <r/>; absent: one of its own when the policy has one. */
    requests?: TimedRequests,
  ) {
    this.requests = requests ?? (cfg.ackEveryMs > 0 ? new TimedRequests(cfg.ackEveryMs) : undefined);
    this.rideMs = Math.floor(cfg.ackEveryMs / 5);
  }

  get resumable(): boolean {
    return this.id !== "";
  }

  /** The last h the client acknowledged. */
  get acknowledgedCount(): number {
    return this.acked;
  }

  /** Continues counting where another worker left off (a session handed over). */
  restore(handled: number, acked: number, unacked: string[], receipts: [number, string][] = []): void {
    this.handled = handled;
    this.acked = acked;
    for (const [i, r] of receipts) {
      this.receiptAt.push(this.queued + i);
      this.receipts.push(r);
    }
    for (const w of unacked) this.queue.push(w);
    this.queued += unacked.length;
    this.counts.unacked += unacked.length;
  }

  /** The receipts of what is unacknowledged: [index in queue.pending(), receipt], oldest first. */
  receiptsPending(): [number, string][] {
    const out: [number, string][] = [];
    for (let i = this.receiptHead; i < this.receipts.length; i++) out.push([this.receiptAt[i] - this.dropped, this.receipts[i]]);
    return out;
  }

  /** An h the client may send: no more than was sent. */
  fits(h: number): boolean {
    // Modulo 2^32 by ToUint32 (h and acked are in [0, 2^32)): a float modulo costs more on every <a/>.
    return (h - this.acked) >>> 0 <= this.queue.length;
  }

  /** After a resume resent the queue: ask for an ack of it. */
  resumed(): void {
    // Answers to the old connection's requests: the client has its count from <resumed/>.
    this.answerCount = 0;
    this.answerDue = 0;
    this.sinceRequest = 0;
    if (this.queue.length > 0) this.request();
  }

  /** Stanzas sent since <enabled/>, modulo 2^32. */
  get sentCount(): number {
    return (this.acked + this.queue.length) >>> 0;
  }

  received(): void {
    // Modulo 2^32 without a float modulo on every stanza read.
    const h = this.handled + 1;
    this.handled = h === MOD ? 0 : h;
  }

  answer(): void {
    const h = this.handled;
    // Not before the bus has published what the counted stanzas caused: the client forgets what <a/> covers.
    if (this.published(h, this.s, this.answerLater)) this.answerNow(h);
  }

  /** An answer whose count has gone out (published): written, or held for other output. */
  private answerNow(h: number): void {
    if (this.held === undefined) this.s.sendNonza(answerOf(h));
    else this.hold(h);
  }

  /** answerNow for answers that had to wait (one function per stream, not one per answer). */
  private readonly answerLater = (h: number): void => this.answerNow(h);

  /** An answer waits for other output to this client, at most the configured delay; at once if this turn wrote to it already. */
  private hold(h: number): void {
    if (this.answerCount === 0) this.answerDue = this.held!.add(this);
    this.answers[this.answerCount++] = h;
    if (this.s.outputPending) this.sendAnswers();
  }

  /**
   * HeldAnswers: the delay passed (or this turn wrote to the client): the answers go, with the timed <r/> when it is
   * near (`ride`; not when the stream closes).
   */
  sendAnswers(ride = true): void {
    if (this.answerCount === 0) return;
    if (ride && this.sinceRequest > 0 && this.rideNow()) this.request();
    else this.sendHeld();
  }

  private sendHeld(): void {
    const n = this.answerCount;
    if (n === 0) return;
    this.answerCount = 0;
    this.answerDue = 0;
    for (let i = 0; i < n; i++) this.s.sendNonza(answerOf(this.answers[i]));
  }

  sent(wire: string, receipt = ""): void {
    if (receipt !== "") {
      this.receiptAt.push(this.queued);
      this.receipts.push(receipt);
    }
    this.queue.push(wire);
    this.queued++;
    this.counts.unacked++;
    if (this.queue.length > this.cfg.maxUnacked) {
      // Not reading, or not acknowledging what it reads: like a full socket buffer (the listener counts it).
      this.stop();
      this.s.destroy(CloseReason.SlowConsumer);
      return;
    }
    const every = this.cfg.ackEveryStanzas;
    // The <r/> (with the held answers before it) rides with this stanza: the same write.
    if (++this.sinceRequest >= every && every > 0) return this.request();
    if (this.requestAt === 0) {
      if (this.requests !== undefined) this.requestAt = this.requests.add(this);
    } else if (this.rideNow()) return this.request();
    // Held answers ride with this stanza.
    if (this.answerCount > 0) this.sendHeld();
  }

  /**
   * The timed <r/> is near (the last fifth of ackEveryMs): it goes with output written now rather than alone at its
   * time, a write of its own. Asked a little sooner, never later. The clock of the read being handled (inputMs):
   * no read of the clock per stanza; one that began earlier only opens the window later.
   */
  private rideNow(): boolean {
    return this.requestAt !== 0 && inputMs() >= this.requestAt - this.rideMs;
  }

  /** The timed <r/>'s wait that ends at `deadline` is over: asked now, unless asked since (or stopped). */
  requestDue(deadline: number): void {
    if (this.requestAt !== deadline) return;
    this.requestAt = 0;
    if (this.sinceRequest > 0) this.request();
  }

  /** An <a h/>: drops what it acknowledges; §6: more than was sent ends the stream. */
  acknowledged(h: number): void {
    const n = (h - this.acked) >>> 0;
    if (!this.fits(h)) {
      const e = new StreamError(StreamCondition.UndefinedCondition, "acknowledged more stanzas than were sent");
      e.appCondition = `<handled-count-too-high xmlns='${NS.SM}' h='${h}' send-count='${this.sentCount}'/>`;
      throw e;
    }
    this.queue.drop(n);
    this.dropped += n;
    this.counts.unacked -= n;
    this.acked = h;
    if (this.receiptHead < this.receipts.length) this.settleReceipts(true);
    if (n > 0) this.ackedTo?.(h);
  }

  /** Receipts of what was acknowledged (or, discarding, of everything) leave; with `tell`, the core hears of each. */
  private settleReceipts(tell: boolean): void {
    let i = this.receiptHead;
    while (i < this.receipts.length && this.receiptAt[i] < this.dropped) {
      if (tell) this.confirm(this.receipts[i]);
      i++;
    }
    if (i === this.receipts.length) {
      this.receiptAt = [];
      this.receipts = [];
      this.receiptHead = 0;
    } else if (i >= 1024 && i * 2 >= this.receipts.length) {
      this.receiptAt = this.receiptAt.slice(i);
      this.receipts = this.receipts.slice(i);
      this.receiptHead = 0;
    } else this.receiptHead = i;
  }

  /** The session ended for good: its queue goes (what mattered of it was sent again or stored first, with its receipts). */
  discard(): void {
    this.counts.unacked -= this.queue.length;
    this.dropped += this.queue.length;
    this.queue.drop(this.queue.length);
    this.settleReceipts(false);
  }

  stop(): void {
    // Its entry in TimedRequests stays, and finds nothing to do.
    this.requestAt = 0;
  }

  private request(): void {
    this.sinceRequest = 0;
    this.stop();
    if (this.answerCount > 0) this.sendHeld();
    this.s.sendNonza(REQUEST);
  }
}
