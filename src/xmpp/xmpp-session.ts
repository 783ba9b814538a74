import { randomBytes } from "node:crypto";
import type { SecureContext } from "node:tls";
import type { Element } from "ltx";
import { Session } from "../session/session.js";
import { PeerWatch, type PeerProbe } from "../session/peer-watch.js";
import { Flag, Kind, type Envelope } from "../envelope/envelope.js";
import type { Conn } from "../transport/conn.js";
import type { StreamSink } from "./stream/parser.js";
import { SM_REQUEST } from "./stream/sm-shortcut.js";
import { MessageFraming, StreamFraming, type Framing } from "./stream/framing.js";
import { StreamCondition, StreamError } from "./errors.js";
import { Ev } from "./hooks.js";
import { NS } from "./ns.js";
import { isStanza, toWire } from "./outbound.js";
import { dispatchStanza } from "./dispatcher.js";
import { Phase, type AckTracker, type ClientSession, type DeliveryGate } from "./client-session.js";
import type { XmppContext } from "./context.js";
import { SessionRecord } from "../metrics/session-record.js";
import { beginInput, endInput } from "../timer/clock.js";
import { CloseReason } from "../transport/conn.js";
import type { Handover } from "../session/core.js";
import type { RosterItem } from "../store/xmpp-store.js";
import { rosterPushed } from "./modules/roster-cache.js";
import { blocklistPushed, loadBlocklist, refused } from "./modules/blocklist.js";
import { takeStored } from "./modules/offline.js";
import { toComponent } from "./modules/components.js";

/** Nesting allowed inside one stanza; deep enough for forwarded, archived, XHTML-IM content. */
const MAX_DEPTH = 48;

/**
 * One XMPP client connection (RFC 6120): owns the stream codec and the
 * negotiation state; stanzas after binding go to the router, envelopes from the
 * core come back through deliver(). Every error here costs this connection only.
 */
export class XmppSession extends Session implements StreamSink, ClientSession, PeerProbe {
  readonly protocol = "xmpp";
  /** Clients correlate answers by the id they wrote; every server passes it through. */
  readonly idPassThrough = true;
  phase: Phase = Phase.Header;
  /** Local part once SASL succeeded. */
  user = "";
  authFailures = 0;
  rosterRequested = false;
  roster: Map<string, RosterItem> | null = null;
  blocked: Set<string> | null = null;
  blockedBy: Map<string, Set<string>> | null = null;
  blocklistRequested = false;
  /** Made at first use: most sessions never send directed presence, and an empty Set costs ~180 bytes. */
  private directedTo: Set<string> | null = null;
  sasl: unknown = null;
  gate: DeliveryGate | null = null;
  acks: AckTracker | null = null;
  resentUntil = 0;
  /** Input held while something asynchronous (a key derivation, a store read) decides what comes next. */
  private held: { chunk: Buffer; binary: boolean }[] | null = null;
  /** Stanzas already parsed from a chunk when a hold began (null: the stream's end): handled, in order, before the held chunks. */
  private heldStanzas: (Element | null)[] = [];
  private holds = 0;
  private heldBytes = 0;
  /**
   * The connection this session dropped with stanzas it did not count (a stall: justStalled, stalledBack): nothing
   * more read from it is handled — the rest of the chunk being parsed, input held meanwhile, its stream's end. Else
   * a later stanza was counted in the place of one refused before it (the stall's window closing in between): h
   * then covered a stanza that was never handled, the client resumed and forgot it (lost), and sent again one that
   * was (stall-heal: all:hN:8 lost). A resumption on a new connection reads again (takeOver).
   */
  private cut: Conn | null = null;
  private headerSent = false;
  /** TCP stream or RFC 7395 messages, by the transport. */
  private framing: Framing;
  /** XEP-0198: another session took over this one's connection; what the connection reports goes there. */
  private takenBy: XmppSession | null = null;
  /** XEP-0198: set while the connection is gone and the session waits to be resumed. */
  private resumeTimer: NodeJS.Timeout | null = null;
  private pings = 0;
  /** From bind on; before it the auth timer applies. */
  private watch: PeerWatch | null = null;
  private authTimer: NodeJS.Timeout | null;
  /** When negotiation must be over (Date.now() time): a connection handed to another worker keeps it. */
  private authDeadline: number;
  /** Index in config.listeners of the listener that accepted the connection; -1: not known (a test's, a detached one). */
  listenerIndex = -1;
  /** From resource bound to the end: the session's start and end log lines. */
  private record: SessionRecord | null = null;
  readonly streamId = randomBytes(12).toString("base64url");
  /** Why the session ended, once it has (read by session-closing handlers). */
  endReason = "";

  constructor(
    public conn: Conn,
    readonly x: XmppContext,
    readonly starttls: SecureContext | null,
  ) {
    super();
    const limits = x.config.limits;
    const codecLimits = { maxStanzaBytes: limits.maxStanzaBytes, maxDepth: MAX_DEPTH };
    this.framing = conn.messageMode ? new MessageFraming(this, codecLimits) : new StreamFraming(this, codecLimits);
    this.listen(conn);
    conn.onClose = (reason) => this.connClosed(conn, reason);
    // Negotiation (TLS, SASL, bind) must be over in time; the peer watch starts at bind.
    this.authDeadline = Date.now() + limits.authTimeoutMs;
    this.authTimer = null;
    this.armAuthTimer(limits.authTimeoutMs);
  }

  private armAuthTimer(ms: number): void {
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.authTimer = setTimeout(() => this.fail(new StreamError(StreamCondition.ConnectionTimeout, "no authentication in time")), Math.max(0, ms));
    this.authTimer.unref();
  }

  /**
   * Connection hand-off (src/xmpp/handoff.ts), right after SASL success restarted the stream: the
   * session lets go of its connection, for another worker to continue it at the new stream header.
   * Gives what was read and not parsed (input held during the password check) and the time left for
   * negotiation; null, with nothing changed, when it cannot (it holds parsed stanzas it could not hand on).
   */
  moveOut(): { chunks: Buffer[]; authLeftMs: number } | null {
    if (this.phase !== Phase.Authenticated || this.heldStanzas.length > 0 || this.takenBy !== null) return null;
    const chunks = this.held === null ? [] : this.held.map((h) => h.chunk);
    // A pending release() (PLAIN's password check) then finds nothing; input after this is not read (the transport stopped).
    if (this.held !== null) this.held = [];
    this.heldBytes = 0;
    this.phase = Phase.Closing;
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.authTimer = null;
    return { chunks, authLeftMs: this.authDeadline - Date.now() };
  }

  /**
   * Continues a stream restarted after SASL success as if this session had authenticated `user`:
   * on the worker a connection was handed to, or on the one that began it when the hand-off failed.
   * `chunks`: input read after the success and not parsed, in order.
   */
  continueAuthenticated(user: string, chunks: Buffer[], authLeftMs: number): void {
    this.authenticated(user);
    this.restartStream();
    this.authDeadline = Date.now() + authLeftMs;
    this.armAuthTimer(authLeftMs);
    for (const c of chunks) this.onData(c, false);
  }

  private listen(conn: Conn): void {
    conn.onData = (chunk, binary) => this.onData(chunk, binary === true);
    // RFC 6120 §4.9.3.22: the server is being shut down; what was queued before goes out first.
    conn.onShutdown = () => this.shutdown();
  }

  /**
   * The server drains. The stream ends with <system-shutdown/>; a session its
   * client may resume (XEP-0198) is suspended instead of ended, so that the
   * drain can park it on a worker that stays (endIfSuspended).
   */
  private shutdown(): void {
    if (this.phase !== Phase.Bound || this.acks === null || !this.acks.resumable || this.resumeTimer !== null) return this.fail(new StreamError(StreamCondition.SystemShutdown, "server shutdown"));
    const conn = this.conn;
    // The client answers the stream error with its own </stream:stream> (RFC 6120 §4.4): that must not end a session it will resume.
    conn.onData = () => {};
    conn.write(this.framing.streamError(new StreamError(StreamCondition.SystemShutdown, "server shutdown")));
    conn.write(this.framing.close());
    this.suspend(CloseReason.Shutdown);
    conn.end(CloseReason.Shutdown);
  }

  get directed(): Set<string> {
    return (this.directedTo ??= new Set());
  }

  get coreSession(): Session {
    return this;
  }

  override get suspended(): boolean {
    return this.resumeTimer !== null;
  }

  override get resumable(): boolean {
    return this.acks !== null && this.acks.resumable;
  }

  get secure(): boolean {
    return this.conn.secure;
  }

  get domain(): string {
    return this.x.config.domain;
  }

  // ---- input -----------------------------------------------------------

  private onData(chunk: Buffer, binary: boolean): void {
    if (this.phase === Phase.Closing) return;
    // One clock read for the read and all it causes (inputMs): the watch's stamp, XEP-0198's waits.
    const outer = beginInput();
    try {
      this.input(chunk, binary);
    } finally {
      if (outer) endInput();
    }
  }

  private input(chunk: Buffer, binary: boolean): void {
    this.watch?.seen();
    if (this.held !== null) {
      this.heldBytes += chunk.length;
      if (this.heldBytes > this.x.config.limits.maxStanzaBytes) return this.fail(new StreamError(StreamCondition.PolicyViolation, "too much input during authentication"));
      // The chunk may be the transport's reused read buffer (see established()).
      this.held.push({ chunk: Buffer.from(chunk), binary });
      return;
    }
    try {
      this.framing.push(chunk, binary);
    } catch (e) {
      this.fail(e);
    }
  }

  hold(): void {
    this.holds++;
    this.held ??= [];
  }

  release(): void {
    if (this.holds > 1) return void this.holds--;
    this.holds = 0;
    const held = this.held;
    const stanzas = this.heldStanzas;
    this.held = null;
    this.heldStanzas = [];
    this.heldBytes = 0;
    // A stanza that holds again puts the rest back in the queue (stanza() checks), in order.
    for (const el of stanzas) {
      try {
        if (el === null) this.streamEnd();
        else this.stanza(el);
      } catch (e) {
        this.fail(e);
      }
    }
    if (held !== null) for (const h of held) this.onData(h.chunk, h.binary);
  }

  streamStart(name: string, attrs: Record<string, string>): void {
    const { domain } = this;
    // RFC 6120 §4.9.3.10, §4.9.3.6, §4.9.3.25 (RFC 7395 §3.4 alike): namespaces, host, version of the header.
    this.framing.checkOpen(name, attrs);
    if (attrs.to !== undefined && attrs.to.toLowerCase() !== domain) throw new StreamError(StreamCondition.HostUnknown, `this server is ${domain}`);
    const major = Number((attrs.version ?? "0").split(".")[0]);
    if (!(major >= 1)) throw new StreamError(StreamCondition.UnsupportedVersion, "version 1.0 is required");
    this.sendHeader();
    if (this.phase === Phase.Header) this.phase = Phase.Negotiating;
    this.sendFeatures();
  }

  stanza(el: Element): void {
    if (this.phase === Phase.Closing || this.cut === this.conn) return;
    // Held: the rest of a chunk waits with the chunks that follow it.
    if (this.held !== null) return void this.heldStanzas.push(el);
    // XEP-0198's acks are bookkeeping, not traffic: not counted either way (sendNonza).
    if (el.attrs.xmlns !== NS.SM) this.x.metrics.xmpp.in++;
    if (this.phase !== Phase.Bound) {
      if (this.x.hooks.fire(Ev.Negotiation, { session: this, stanza: el, to: "" })) return;
      throw new StreamError(StreamCondition.NotAuthorized, this.phase === Phase.Authenticated ? "bind a resource first" : "authenticate first");
    }
    const ns = el.attrs.xmlns;
    if (ns !== undefined && ns !== NS.CLIENT) {
      if (this.x.hooks.fire(Ev.Nonza, { session: this, stanza: el, to: "" })) return;
      throw new StreamError(StreamCondition.UnsupportedStanzaType, `<${el.name}> in ${ns}`);
    }
    if (this.acks !== null) {
      // Read right after this worker was stopped past the cluster's patience: the client may have resumed
      // this session elsewhere, where it re-sends what was not counted. Neither counted nor handled here:
      // the connection counts as dropped, and the client re-sends it wherever it resumes (XEP-0198 §5).
      if (this.acks.resumable && this.x.core.justStalled()) return void this.cutOff();
      // XEP-0198 §4: h counts the stanzas handled since <enable/>.
      this.acks.received();
    }
    dispatchStanza(this.x.hooks, this, el);
  }

  /**
   * XEP-0198's <r/> and <a h/>, recognised by the codec without a parse: handled as stanza() would
   * through the stream-management module; anything unusual (not bound, input held, not enabled) goes that way instead.
   */
  smNonza(what: number): boolean {
    if (this.cut === this.conn) return true;
    const acks = this.acks;
    if (acks === null || this.phase !== Phase.Bound || this.held !== null) return false;
    if (what === SM_REQUEST) acks.answer();
    else acks.acknowledged(what);
    return true;
  }

  streamEnd(): void {
    if (this.cut === this.conn) return;
    // After what the client sent before it, held or not.
    if (this.held !== null && this.phase !== Phase.Closing) return void this.heldStanzas.push(null);
    this.close("client closed the stream");
  }

  restartStream(): void {
    this.framing.restart();
    this.headerSent = false;
  }

  // ---- negotiation outcomes ----------------------------------------------

  authenticated(user: string): void {
    this.user = user;
    this.bare = `${user}@${this.domain}`;
    this.phase = Phase.Authenticated;
  }

  bind(resource: string, client = ""): void {
    this.resource = resource;
    this.client = client;
    this.address = `${this.bare}/${resource}`;
    this.phase = Phase.Bound;
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.authTimer = null;
    this.established();
    this.x.core.attach(this);
    this.record = SessionRecord.start(this.x.metrics, this.x.log, "xmpp", this.address, this.conn);
    this.x.hooks.fire(Ev.SessionBound, { session: this });
  }

  /** From bind (or resumption) on: the peer watch, and the transport's fast path. */
  private established(): void {
    const { pingAfterMs, pingTimeoutMs } = this.x.config.xmpp;
    this.watch = new PeerWatch(pingAfterMs, pingTimeoutMs, this);
    // After bind no STARTTLS can come: output may leave through the writer thread.
    // The parser turns each chunk into text at once and keeps none of it.
    this.conn.established({ reuseInput: true });
  }

  takeOver(next: ClientSession): void {
    const n = next as XmppSession;
    const old = this.conn;
    if (this.resumeTimer !== null) clearTimeout(this.resumeTimer);
    this.resumeTimer = null;
    this.watch?.stop();
    // The new connection and its stream (header and features already written) are this session's now.
    this.conn = n.conn;
    this.cut = null;
    // Input the old connection brought while a hold (a store read) kept it was neither counted nor handled: <resumed h/>
    // has the client send it again. Replayed at the release into this stream, it came twice and passed the client's count.
    if (this.held !== null) {
      this.held = [];
      this.heldStanzas = [];
      this.heldBytes = 0;
    }
    this.framing = n.framing;
    this.framing.setSink(this);
    this.headerSent = true;
    this.listen(this.conn);
    n.takenBy = this;
    n.giveUp();
    // The client came back before the old connection was seen to drop: it ends without a word (ignored below).
    if (old !== this.conn) old.destroy("resumed on another connection");
    this.established();
  }

  /**
   * XEP-0198 across the workers of a host: this session continues one that
   * another worker handed over (handover.ts), with its full JID, serial and
   * presence. With `waitMs` null the client's <resume/> came on this session's
   * connection, which goes on at once; otherwise there is no connection (a
   * draining worker parked the session here) and it waits that long for one.
   */
  continueFrom(h: Handover, waitMs: number | null): void {
    this.phase = Phase.Bound;
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.authTimer = null;
    this.x.core.handovers.continueAs(this, h);
    this.record = SessionRecord.start(this.x.metrics, this.x.log, "xmpp", this.address, this.conn);
    if (waitMs === null) this.established();
    else this.suspend("handed over without a connection", waitMs);
    // Not moved with the session: read here, as at bind (input waits for it).
    loadBlocklist(this.x, this);
    this.x.hooks.fire(Ev.SessionContinued, { session: this });
  }

  /** The session went on on another worker: it ends here without a word to anyone (no presence, nothing stored). */
  leave(reason: string): void {
    if (this.phase === Phase.Closing) return;
    this.record?.end(reason);
    this.phase = Phase.Closing;
    // Resumed elsewhere while its stream was still up: that connection goes (connClosed then finds the session closed).
    if (!this.conn.closed) this.conn.destroy(reason);
    if (this.resumeTimer !== null) clearTimeout(this.resumeTimer);
    this.resumeTimer = null;
    this.held = null;
    this.watch?.stop();
    this.acks?.stop();
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.authTimer = null;
  }

  /** This connection's session was resumed by an older one: nothing of it reaches the core. */
  private giveUp(): void {
    this.phase = Phase.Closing;
    this.held = null;
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.authTimer = null;
  }

  // ---- output ------------------------------------------------------------

  send(el: Element | string): void {
    if (this.phase === Phase.Closing) return;
    if (this.resumeTimer !== null) {
      // Suspended (XEP-0198): kept for resending on resumption.
      if (this.acks !== null) this.acks.sent(typeof el === "string" ? el : el.toString());
      return;
    }
    this.x.metrics.xmpp.out++;
    const wire = typeof el === "string" ? el : el.toString();
    this.conn.write(this.framing.element(wire));
    if (this.acks !== null) this.acks.sent(wire);
  }

  sendNonza(xml: string): void {
    if (this.phase === Phase.Closing || this.resumeTimer !== null) return;
    this.conn.write(this.framing.element(xml));
  }

  get outputPending(): boolean {
    return this.conn.outputPending === true;
  }

  destroy(reason: string): void {
    if (this.resumeTimer !== null) this.cleanup(reason);
    else this.conn.destroy(reason);
  }

  private sendHeader(): void {
    if (this.headerSent) return;
    this.headerSent = true;
    this.conn.write(this.framing.header(this.streamId, this.domain));
  }

  sendFeatures(empty = false): void {
    if (this.phase === Phase.Closing) return;
    const features = this.framing.features();
    if (!empty) this.x.hooks.fire(Ev.StreamFeatures, { session: this, features });
    this.conn.write(features.toString());
  }

  submit(env: Envelope): void {
    // XEP-0114: presence the modules send to a component's address travels to its domain (toComponent); only when components exist.
    const components = this.x.componentDomains;
    if (components !== undefined && components.size > 0 && env.kind === Kind.Presence) env = toComponent(env, components) ?? env;
    this.x.core.submit(this, env);
  }

  presenceChanged(): void {
    this.x.core.presenceChanged(this);
  }

  deliver(env: Envelope): boolean {
    // Another protocol's opaque request has no stanza form: the requester learns at once instead of at its timeout.
    if (env.kind === Kind.Request && !isStanza(env)) return false;
    if (this.phase !== Phase.Bound) return env.kind !== Kind.Request;
    // A roster push: the roster kept for presence routing follows it (modules/roster-cache.ts).
    // A block list push: so does the block list (modules/blocklist.ts).
    if (env.from === "" && env.kind === Kind.Message && env.payload !== null && (env.payload as Element).name === "iq") {
      rosterPushed(this, env.payload as Element);
      blocklistPushed(this.x, this, env.payload as Element);
    }
    // From someone the user blocked (XEP-0191): not written; a request is refused (the core answers it).
    const blocked = this.blocked !== null && refused(this, env);
    if (blocked && env.kind === Kind.Request) return false;
    // A message to every resource from a user (a PEP event): only sessions whose caps ask for it write it (pep-events.ts).
    const wire = blocked ? null : (env.flags & Flag.EveryResource) !== 0 && env.from !== "" ? this.x.pepEvent(this, env) : toWire(this, env);
    // A receipt (Envelope.ref of a message) is settled when the client acknowledges the stanza; nothing written: now.
    const receipt = env.kind === Kind.Message ? env.ref : "";
    if (wire === null) {
      if (receipt !== "" && this.acks !== null) this.x.core.confirm(receipt);
      return true;
    }
    // The archive takes this text as it is (modules/mam-render.ts): the plain message, not a copy.
    if ((env.flags & (Flag.Archive | Flag.Copy | Flag.SentCopy)) === Flag.Archive && env.written === null) env.written = wire;
    if (this.gate === null || this.gate.pass(env, wire)) {
      if (this.resumeTimer === null) {
        this.x.metrics.xmpp.out++;
        this.conn.write(this.framing.element(wire));
      }
      if (this.acks !== null) {
        this.acks.sent(wire, receipt);
        // A message this worker alone holds: a copy goes to the session's record keeper (resume-records.ts).
        // Tested first: alone (no keeper) a worker copies nothing, and the count and the test of the text are not needed.
        const records = this.x.core.records;
        if (records.copying && this.coreSession.keepKey !== "" && wire.startsWith("<message")) records.replicate(this.coreSession, this.acks.sentCount, wire, receipt);
      }
    }
    return true;
  }

  /** XEP-0198 clients send again after resuming what the server's count did not cover (Flag.Resent). */
  override get dropsResent(): boolean {
    return true;
  }

  override outputMark(): number {
    return this.resumeTimer === null ? (this.conn.heldMark?.() ?? -1) : -1;
  }

  override cutOutput(from: number, to: number): boolean {
    return this.conn.cutHeld?.(from, to) ?? false;
  }

  override get confirmsLater(): boolean {
    return this.acks !== null;
  }

  override get keptCount(): number {
    return this.acks === null ? 0 : this.acks.sentCount;
  }

  /** Stored at the owner while this session was online but not bound there: taken now, as at initial presence. */
  override storedWhileAway(): void {
    if (this.phase === Phase.Bound && this.available) takeStored(this.x, this);
  }

  override stalledBack(count: number): boolean {
    const acks = this.acks;
    if (acks === null || !acks.resumable) return false;
    // XEP-0198 §4: h counts what was handled; these stanzas' effects are void, so they are not counted.
    acks.handled = count;
    this.cutOff();
    return true;
  }

  /** A stall: the connection counts as dropped here, and what it still brings is not read (cut). */
  private cutOff(): void {
    this.cut = this.conn;
    this.conn.destroy("worker stalled");
  }

  override endIfSuspended(): void {
    // A resumable session moves to another worker of the host where one runs; else it ends here, its unacknowledged messages stored.
    if (this.resumeTimer !== null && !this.x.hooks.fire(Ev.SessionParking, { session: this })) this.cleanup("server shutdown");
  }

  replaced(): void {
    this.fail(new StreamError(StreamCondition.Conflict, "replaced by a new session for the same resource"));
  }

  // ---- ending ------------------------------------------------------------

  /** PeerProbe: XEP-0199 §4.2, a ping the client must answer; any traffic (a whitespace keepalive too) counts as alive. */
  pingPeer(): void {
    this.send(`<iq type='get' id='ping-${this.serial}-${++this.pings}' to='${this.address}' from='${this.domain}'><ping xmlns='${NS.PING}'/></iq>`);
  }

  /**
   * The peer is gone without a word (its ping went unanswered): the connection
   * counts as dropped. Where stream management will make the session resumable
   * (XEP-0198), this is the one place that decides between detaching and ending.
   */
  peerGone(): void {
    if (this.phase === Phase.Closing) return;
    this.x.metrics.kindOfConn(this.conn, this.protocol).deadPeers++;
    // XEP-0198: a resumable session waits for its client instead (connClosed suspends it).
    if (this.acks !== null && this.acks.resumable) this.conn.destroy("no answer to ping");
    else this.fail(new StreamError(StreamCondition.ConnectionTimeout, "no answer to ping"));
  }

  /** The one place a stream error is written (RFC 6120 §4.9.1.1: header first if not yet sent). */
  fail(e: unknown): void {
    if (this.phase === Phase.Closing) return;
    if (this.resumeTimer !== null) return this.cleanup(e instanceof StreamError ? e.condition : "failed while suspended");
    let err: StreamError;
    if (e instanceof StreamError) err = e;
    else {
      this.x.log.error("xmpp session failed", { address: this.address, error: (e as Error)?.stack ?? String(e) });
      err = new StreamError(StreamCondition.InternalServerError);
    }
    if (this.x.debug) this.x.log.debug("xmpp stream error", { address: this.address, remote: this.conn.remoteAddress, condition: err.condition, text: err.message });
    this.sendHeader();
    this.conn.write(this.framing.streamError(err));
    this.close(err.condition);
  }

  close(reason = "closed"): void {
    if (this.phase === Phase.Closing) return;
    if (this.resumeTimer !== null) return this.cleanup(reason);
    this.sendHeader();
    // XEP-0198: answers held for other output go before the stream ends.
    this.acks?.sendAnswers(false);
    this.conn.write(this.framing.close());
    this.cleanup(reason);
    this.conn.end(reason);
  }

  private connClosed(conn: Conn, reason: string): void {
    if (this.takenBy !== null) return this.takenBy.connClosed(conn, reason);
    // A connection this session has left (resumed on another one), or one it no longer waits on (suspended at shutdown).
    if (conn !== this.conn || this.resumeTimer !== null) return;
    // A server shutdown suspends too: the drain then parks the session on another worker (endIfSuspended).
    if (this.phase === Phase.Bound && this.acks !== null && this.acks.resumable && reason !== CloseReason.SlowConsumer) return this.suspend(reason);
    this.cleanup(reason);
    if (this.x.debug) this.x.log.debug("xmpp session closed", { address: this.address, reason });
  }

  /**
   * XEP-0198: the connection dropped without </stream:stream>; the session stays
   * bound in the core (full JID, presence, pending requests) and what the core
   * delivers meanwhile waits in the unacked queue, until a <resume/> or the window passes.
   */
  private suspend(reason: string, waitMs = this.x.config.xmpp.sm.resumeTimeoutMs): void {
    this.watch?.stop();
    this.watch = null;
    this.acks?.stop();
    this.resumeTimer = setTimeout(() => this.cleanup("resumption window passed"), waitMs);
    this.resumeTimer.unref();
    if (this.x.debug) this.x.log.debug("xmpp session suspended", { address: this.address, reason });
  }

  private cleanup(reason: string): void {
    if (this.phase === Phase.Closing) return;
    this.endReason = reason;
    this.record?.end(reason);
    const wasBound = this.phase === Phase.Bound;
    this.phase = Phase.Closing;
    if (this.resumeTimer !== null) clearTimeout(this.resumeTimer);
    this.resumeTimer = null;
    this.held = null;
    this.watch?.stop();
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.authTimer = null;
    if (wasBound) {
      try {
        this.x.hooks.fire(Ev.SessionClosing, { session: this });
      } catch (e) {
        this.x.log.error("xmpp session-closing handler failed", { address: this.address, error: (e as Error).stack });
      }
    }
    this.x.core.detach(this);
  }
}
