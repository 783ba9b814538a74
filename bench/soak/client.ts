import { connect, type Socket } from "node:net";
import type { Element } from "ltx";
import { StreamParser, type StreamSink } from "../../src/xmpp/stream/parser.js";
import { ScramSha1Client } from "../xmpp/scram-client.js";
import type { Ledger } from "./ledger.js";

/**
 * A light XMPP client for the soak, on a raw socket: SCRAM-SHA-1 (with the
 * cached SaltedPassword, as bench/xmpp/gen.ts logs in), bind, XEP-0198 with
 * resumption, initial presence; it reconnects by itself after any drop and
 * resumes, or binds again when the server refuses. It counts both ways as
 * XEP-0198 §4 says (every message, presence and iq), answers the server's <r/>
 * with <a h/> followed by its own <r/> — the server's answer proves it read
 * that <a/> (one stream, in order) — and notices a silent connection by itself:
 * after `idleMs` without a byte it sends <a/><r/>, after `deadMs` more it gives up.
 */
export interface ClientTiming {
  idleMs: number;
  deadMs: number;
  loginTimeoutMs: number;
  /** Reconnection after a drop: uniformly in [min, max) ms. */
  reconnectMinMs: number;
  reconnectMaxMs: number;
}

const SM = "urn:xmpp:sm:3";
const HEADER = "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";
const LIMITS = { maxStanzaBytes: 1 << 20, maxDepth: 64 };

export const enum St {
  Down,
  Features,
  Challenge,
  Success,
  Features2,
  Resuming,
  Binding,
  Enabling,
  Online,
}

export class SoakClient implements StreamSink {
  state = St.Down;
  /** Set by the harness at the end: no more reconnections. */
  stopping = false;
  private sock: Socket | null = null;
  private parser: StreamParser | null = null;
  private scram: ScramSha1Client | null = null;
  private loginTimer: NodeJS.Timeout | null = null;
  lastSeen = 0;
  private probedAt = 0;

  // XEP-0198, both ways.
  private smId = "";
  /** Stanzas handled from the server since <enabled/> (h we report). */
  private handled = 0;
  /** Our stanzas since <enable/> not yet acknowledged, oldest first: [message id or "", wire]. */
  private outQueue: [string, string][] = [];
  private outAcked = 0;
  /** The h of each <a/> we sent right before an <r/> still unanswered, oldest first. */
  private confirmWaits: number[] = [];
  /** The last h the server is known to have read. */
  private confirmedIn = 0;
  /** Messages received on this session and not yet known to be acknowledged: [position, id]. */
  private unconfirmedIn: [number, string][] = [];
  /** Ids received on a session that was not resumed, whose <a/> the server may have missed. */
  readonly mayRepeat = new Set<string>();

  // What happened to this client.
  logins = 0;
  resumed = 0;
  readonly refused: Record<string, number> = {};
  readonly streamErrors: Record<string, number> = {};
  connects = 0;

  constructor(
    readonly index: number,
    private readonly user: string,
    private readonly password: string,
    private readonly cached: { salt: Buffer; iterations: number; salted: Buffer },
    private readonly port: number,
    private readonly ledger: Ledger,
    private readonly t: ClientTiming,
  ) {}

  get online(): boolean {
    return this.state === St.Online;
  }

  connect(): void {
    if (this.stopping) return;
    this.connects++;
    const s = connect({ port: this.port, host: "127.0.0.1", noDelay: true });
    this.sock = s;
    this.parser = new StreamParser(this, LIMITS);
    this.state = St.Features;
    this.lastSeen = Date.now();
    this.loginTimer = setTimeout(() => s.destroy(), this.t.loginTimeoutMs);
    s.on("connect", () => s.write(HEADER));
    s.on("data", (d: Buffer) => {
      if (s !== this.sock) return;
      this.lastSeen = Date.now();
      try {
        this.parser!.push(d);
      } catch {
        s.destroy();
      }
    });
    s.on("error", () => {});
    s.on("close", () => this.closed(s));
  }

  /** Sends a chat message to user `to`; false when not online (the harness picks another sender). */
  send(to: number): boolean {
    if (this.state !== St.Online) return false;
    const id = this.ledger.send(this.index, to);
    this.out(id, `<message to='user${to}@localhost' type='chat' id='${id}'><body>${id}</body></message>`);
    return true;
  }

  /** The harness's periodic look: a silent connection is probed, then given up. */
  watch(now: number): void {
    if (this.state !== St.Online || this.sock === null) return;
    const silent = now - this.lastSeen;
    if (silent >= this.t.idleMs + this.t.deadMs) this.sock.destroy();
    else if (silent >= this.t.idleMs && this.probedAt <= this.lastSeen) {
      this.probedAt = now;
      this.ackAndAsk();
    }
  }

  /** Closes the socket for good (end of the run). */
  stop(): void {
    this.stopping = true;
    this.sock?.destroy();
  }

  streamStart(): void {}

  streamEnd(): void {
    this.sock?.destroy();
  }

  stanza(el: Element): void {
    if (el.name === "stream:error") {
      const cond = (el.children.find((c) => typeof c !== "string") as Element | undefined)?.name ?? "none";
      this.streamErrors[cond] = (this.streamErrors[cond] ?? 0) + 1;
      return void this.sock?.destroy();
    }
    switch (this.state) {
      case St.Features:
        if (el.name !== "stream:features") return;
        this.scram = new ScramSha1Client(this.user, this.password, this.cached);
        this.state = St.Challenge;
        return this.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>${this.scram.first()}</auth>`);
      case St.Challenge:
        if (el.name !== "challenge") return void this.sock?.destroy();
        this.state = St.Success;
        return this.write(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${this.scram!.final(el.getText())}</response>`);
      case St.Success:
        if (el.name !== "success") return void this.sock?.destroy();
        this.parser!.restart();
        this.state = St.Features2;
        return this.write(HEADER);
      case St.Features2:
        if (el.name !== "stream:features") return;
        if (this.smId !== "") {
          this.state = St.Resuming;
          return this.write(`<resume xmlns='${SM}' previd='${this.smId}' h='${this.handled}'/>`);
        }
        return this.bind();
      case St.Resuming:
        if (el.name === "resumed") return this.resumedOk(Number(el.attrs.h));
        if (el.name === "failed") return this.resumeRefused(el);
        return;
      case St.Binding:
        if (el.name !== "iq") return;
        if (el.attrs.type !== "result") return void this.sock?.destroy();
        this.state = St.Enabling;
        return this.write(`<enable xmlns='${SM}' resume='true'/>`);
      case St.Enabling:
        if (el.name !== "enabled") return;
        this.smId = el.attrs.id ?? "";
        this.handled = 0;
        this.outQueue = [];
        this.outAcked = 0;
        this.confirmedIn = 0;
        this.online_();
        this.logins++;
        return this.out("", "<presence/>");
      case St.Online:
        return this.onlineElement(el);
    }
  }

  private onlineElement(el: Element): void {
    if (el.attrs.xmlns === SM) {
      if (el.name === "r") this.ackAndAsk();
      else if (el.name === "a") this.acked(Number(el.attrs.h));
      return;
    }
    this.handled = (this.handled + 1) % 0x1_0000_0000;
    if (el.name === "message") {
      const id = el.attrs.id;
      if (id === undefined) return;
      // Our own message back with an error: bounced.
      if (el.attrs.type === "error") return this.ledger.bounced(id);
      const delayed = el.getChild("delay", "urn:xmpp:delay") !== undefined;
      this.ledger.received(this.index, id, delayed, this.mayRepeat.has(id));
      this.unconfirmedIn.push([this.handled, id]);
    } else if (el.name === "iq" && el.attrs.type === "get") {
      // The server's XEP-0199 ping (nothing else asks us anything).
      this.out("", `<iq type='result' id='${el.attrs.id}' to='${el.attrs.from ?? "localhost"}'/>`);
    }
  }

  private bind(): void {
    this.state = St.Binding;
    this.write(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>soak</resource></bind></iq>`);
  }

  private online_(): void {
    this.state = St.Online;
    if (this.loginTimer !== null) clearTimeout(this.loginTimer);
    this.loginTimer = null;
  }

  private resumedOk(h: number): void {
    this.resumed++;
    this.acked(h);
    // The server now knows exactly what we handled (our h in <resume/>).
    this.unconfirmedIn = [];
    this.confirmedIn = this.handled;
    this.online_();
    // XEP-0198 §5: what the server had not acknowledged, again, in order (still unacknowledged: still queued).
    for (const [, wire] of this.outQueue) this.write(wire);
  }

  /** <failed/> to our <resume/>: what we sent unacknowledged is given up, what we got unconfirmed may come again. */
  private resumeRefused(el: Element): void {
    const why = el.children.find((c) => typeof c !== "string") as Element | undefined;
    const cond = why?.name ?? "none";
    this.refused[cond] = (this.refused[cond] ?? 0) + 1;
    for (const [id] of this.outQueue) if (id !== "") this.ledger.unconfirmed(id);
    for (const [, id] of this.unconfirmedIn) this.mayRepeat.add(id);
    this.unconfirmedIn = [];
    this.smId = "";
    this.outQueue = [];
    this.outAcked = 0;
    this.handled = 0;
    this.bind();
  }

  private ackAndAsk(): void {
    this.confirmWaits.push(this.handled);
    this.write(`<a xmlns='${SM}' h='${this.handled}'/><r xmlns='${SM}'/>`);
  }

  /** The server's <a h/> (or <resumed h/>): our stanzas up to h are accepted; it also answers our oldest <r/>. */
  private acked(h: number): void {
    const n = (h - this.outAcked + 0x1_0000_0000) % 0x1_0000_0000;
    for (const [id] of this.outQueue.splice(0, n)) if (id !== "") this.ledger.accepted(id);
    this.outAcked = h;
    const confirmed = this.confirmWaits.shift();
    if (confirmed === undefined) return;
    this.confirmedIn = confirmed;
    let k = 0;
    while (k < this.unconfirmedIn.length && this.unconfirmedIn[k][0] <= confirmed) k++;
    if (k > 0) this.unconfirmedIn.splice(0, k);
  }

  /** A stanza counted by XEP-0198: kept until the server acknowledges it. */
  private out(id: string, wire: string): void {
    this.outQueue.push([id, wire]);
    this.write(wire);
  }

  private write(s: string): void {
    this.sock?.write(s);
  }

  private closed(s: Socket): void {
    if (s !== this.sock) return;
    this.sock = null;
    this.parser = null;
    this.state = St.Down;
    this.confirmWaits = [];
    if (this.loginTimer !== null) clearTimeout(this.loginTimer);
    this.loginTimer = null;
    if (this.stopping) return;
    const wait = this.t.reconnectMinMs + Math.random() * (this.t.reconnectMaxMs - this.t.reconnectMinMs);
    setTimeout(() => this.connect(), wait);
  }
}
