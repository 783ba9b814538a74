import { v4 as uuidv4 } from "uuid";
import { Envelope, ErrorCode, Kind } from "../envelope/envelope.js";
import { normalizeAddress } from "../address/address.js";
import { Authenticator } from "../auth/authenticator.js";
import { Session } from "../session/session.js";
import { PeerWatch, type PeerProbe } from "../session/peer-watch.js";
import type { SessionContext } from "../session/context.js";
import { SessionRecord } from "../metrics/session-record.js";
import type { Conn } from "../transport/conn.js";
import { FrameDecoder, RelayFrameError, decodeFrame, encodeHead, EMPTY, type Header } from "./codec.js";

export const RELAY_VERSION = 1;
const MAX_ID_BYTES = 128;
const MAX_CODE_LENGTH = 64;
/** Until auth succeeds a connection is anonymous: it may not make us buffer a large frame. */
const MAX_FRAME_BEFORE_AUTH = 16384;

const State = { Hello: 0, Authenticating: 1, Open: 2, Closing: 3 } as const;
type State = (typeof State)[keyof typeof State];

/** A frame the client got wrong: answered with `err`, fatal or not. */
class FrameFault extends Error {
  constructor(
    readonly code: string,
    text: string,
    readonly fatal: boolean,
    readonly re?: string,
  ) {
    super(text);
  }
}

/**
 * One relay connection (RELAY-PROTOCOL.md v1). Turns frames into Envelopes for
 * the ProxyDaemon and Envelopes into frames; every protocol error becomes an
 * `err` frame here, and a fatal one closes only this connection.
 */
export class RelaySession extends Session implements PeerProbe {
  readonly protocol = "relay";
  /** RELAY-PROTOCOL.md: the recipient of a request sees a proxy id and answers it. */
  readonly idPassThrough = false;
  /** A bare address's relay sessions are a pool of gateways, balanced by load (docs/relay-protocol.md, "Pools"). */
  override readonly pooled = true;
  private state: State = State.Hello;
  private readonly decoder: FrameDecoder | null;
  /** From auth accepted on; before it the auth timer applies. */
  private watch: PeerWatch | null = null;
  private authTimer: NodeJS.Timeout | null;
  private authFailures = 0;
  /** From auth accepted to the end: the session's start and end log lines. */
  private record: SessionRecord | null = null;

  constructor(
    private readonly conn: Conn,
    private readonly ctx: SessionContext,
  ) {
    super();
    const limits = ctx.config.limits;
    this.decoder = conn.messageMode ? null : new FrameDecoder(Math.min(limits.maxFrameBytes, MAX_FRAME_BEFORE_AUTH), this);
    conn.onData = (chunk) => this.onData(chunk);
    conn.onClose = (reason) => this.onClose(reason);
    // The server is draining: `err` unavailable without `re` (the connection's own error, as bad-frame is),
    // after what was queued; docs/relay-protocol.md, "Server shutdown".
    conn.onShutdown = () => this.fail(ErrorCode.Unavailable, "server shutdown", true);
    this.authTimer = setTimeout(() => this.fail(ErrorCode.NotAuthorized, "no auth in time", true), limits.authTimeoutMs);
    this.authTimer.unref();
  }

  private onData(chunk: Buffer): void {
    if (this.state === State.Closing) return;
    this.watch?.seen();
    try {
      if (this.decoder !== null) this.decoder.push(chunk);
      else {
        if (chunk.length > this.frameLimit()) throw new RelayFrameError("too-large", "frame too large");
        const { header, body } = decodeFrame(chunk);
        this.frame(header, body);
      }
    } catch (e) {
      if (e instanceof RelayFrameError) this.fail(e.code, e.message, true);
      else if (e instanceof FrameFault) this.fail(e.code, e.message, e.fatal, e.re);
      else {
        this.ctx.log.error("relay session failed", { address: this.address, error: (e as Error).stack });
        this.fail(ErrorCode.Internal, "internal error", true);
      }
    }
  }

  private frameLimit(): number {
    const max = this.ctx.config.limits.maxFrameBytes;
    return this.state === State.Open ? max : Math.min(max, MAX_FRAME_BEFORE_AUTH);
  }

  /** FrameSink: one decoded frame. */
  frame(h: Header, body: Buffer): void {
    if (this.state === State.Closing) return;
    this.ctx.metrics.relay.in++;
    const t = h.t;
    if (this.state !== State.Open) return this.beforeAuth(t, h);
    switch (t) {
      case "req":
        return this.onRequest(h, body);
      case "res":
      case "err":
        return this.onAnswer(t, h, body);
      case "msg": {
        const to = this.destination(h, undefined);
        if (this.ctx.debug) this.ctx.log.debug("relay msg", { from: this.address, to });
        return this.ctx.core.submit(this, Envelope.message({ from: this.address, to, protocol: "relay", payload: body }));
      }
      case "ping":
        return this.send(h.id === undefined ? { t: "pong" } : { t: "pong", id: h.id });
      case "pong":
        return;
      case "bye":
        this.send({ t: "bye" });
        return this.close("bye");
      case "hello":
      case "auth":
        throw new FrameFault(ErrorCode.BadRequest, `${t} after authentication`, false);
      default:
        throw new FrameFault(ErrorCode.BadFrame, `unknown frame type ${JSON.stringify(t)}`, true);
    }
  }

  private beforeAuth(t: unknown, h: Header): void {
    if (t === "hello" && this.state === State.Hello) {
      if (typeof h.v !== "number" || h.v < RELAY_VERSION) throw new FrameFault(ErrorCode.BadRequest, `unsupported version; this server speaks ${RELAY_VERSION}`, true);
      return this.send({ t: "hello", v: RELAY_VERSION, server: "switchboard", maxFrameBytes: this.ctx.config.limits.maxFrameBytes });
    }
    if (t === "auth" && this.state === State.Hello) return void this.authenticate(h);
    if (t === "ping") return this.send({ t: "pong" });
    throw new FrameFault(ErrorCode.NotAuthorized, "authenticate first", true);
  }

  private async authenticate(h: Header): Promise<void> {
    this.state = State.Authenticating;
    const { auth, config } = this.ctx;
    let user: string | null = null;
    const asked = h.resource === undefined ? `r-${uuidv4().slice(0, 8)}` : h.resource;
    const resource = typeof asked === "string" && asked.length > 0 && asked.length <= 1023 && !/[\u0000-\u001f/]/.test(asked) ? asked : "";
    try {
      if (resource !== "") {
        if (h.token !== undefined) user = await auth.checkToken(h.token);
        else {
          const name = Authenticator.normalizeUser(h.user);
          if (name !== null && typeof h.password === "string" && (await auth.checkPassword(name, h.password))) user = name;
        }
      }
    } catch (e) {
      // The account store did not answer: no verdict on the credentials, so no failure counted; the client may try again.
      if (this.closed || (this.state as State) === State.Closing) return;
      this.ctx.log.warn("relay auth: account store unavailable", { remote: this.conn.remoteAddress, error: (e as Error).message });
      this.state = State.Hello;
      return this.fail(ErrorCode.Unavailable, "account store unavailable", false);
    }
    if (this.closed || (this.state as State) === State.Closing) return;
    if (user === null) {
      this.ctx.metrics.relay.authFailures++;
      this.ctx.log.info("relay auth failed", { remote: this.conn.remoteAddress, user: typeof h.user === "string" ? h.user.slice(0, 64) : undefined });
      const last = ++this.authFailures >= config.limits.maxAuthAttempts;
      this.state = State.Hello;
      return this.fail(ErrorCode.NotAuthorized, resource === "" ? "bad resource" : "bad credentials", last);
    }
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.authTimer = null;
    this.bare = `${user}@${config.domain}`;
    this.resource = resource;
    this.address = `${this.bare}/${resource}`;
    this.available = true;
    this.state = State.Open;
    const { pingAfterMs, pingTimeoutMs } = config.relay;
    // RELAY-PROTOCOL.md: `ping` → `pong`, either side; any frame counts as an answer.
    this.watch = new PeerWatch(pingAfterMs, pingTimeoutMs, this);
    if (this.decoder !== null) this.decoder.maxFrameBytes = config.limits.maxFrameBytes;
    this.conn.established();
    this.ctx.core.attach(this);
    this.send({ t: "ok", jid: this.address });
    this.record = SessionRecord.start(this.ctx.metrics, this.ctx.log, "relay", this.address, this.conn);
  }

  private onRequest(h: Header, body: Buffer): void {
    const id = h.id;
    if (typeof id !== "string" || id.length === 0 || Buffer.byteLength(id) > MAX_ID_BYTES) {
      throw new FrameFault(ErrorCode.BadRequest, `req needs an id of 1 to ${MAX_ID_BYTES} bytes`, false, typeof id === "string" ? id : undefined);
    }
    const to = this.destination(h, id);
    const ttl = h.ttl;
    if (ttl !== undefined && (typeof ttl !== "number" || !(ttl > 0))) throw new FrameFault(ErrorCode.BadRequest, "ttl must be a positive number of ms", false, id);
    if (this.ctx.debug) this.ctx.log.debug("relay req", { from: this.address, to, id });
    this.ctx.core.submit(this, Envelope.request({ from: this.address, to, protocol: "relay", id, payload: body, ttl: (ttl as number | undefined) ?? 0 }));
  }

  private onAnswer(t: "res" | "err", h: Header, body: Buffer): void {
    const re = h.re;
    if (typeof re !== "string" || re.length === 0) throw new FrameFault(ErrorCode.BadRequest, `${t} needs re`, false);
    let code = "";
    if (t === "err") {
      code = typeof h.code === "string" && h.code.length > 0 ? h.code.slice(0, MAX_CODE_LENGTH) : ErrorCode.Internal;
    }
    const answer = { from: this.address, to: "", protocol: "relay", responseFor: re, payload: body };
    this.ctx.core.submit(this, t === "res" ? Envelope.response(answer) : Envelope.error({ ...answer, code }));
  }

  private destination(h: Header, re: string | undefined): string {
    const to = typeof h.to === "string" ? normalizeAddress(h.to) : null;
    if (to === null) throw new FrameFault(ErrorCode.BadRequest, "missing or malformed to", false, re);
    return to;
  }

  // ---- towards the client ------------------------------------------------

  deliver(env: Envelope): boolean {
    switch (env.kind) {
      case Kind.Request:
        this.sendBody({ t: "req", id: env.ref, from: env.from }, env.payload);
        break;
      case Kind.Response:
        this.sendBody({ t: "res", re: env.responseFor, from: env.from }, env.payload);
        break;
      case Kind.Error:
        this.sendBody({ t: "err", re: env.responseFor, code: env.code, from: env.from }, env.protocol === "relay" ? env.payload : null);
        break;
      case Kind.Message:
        this.sendBody({ t: "msg", from: env.from }, env.payload);
        break;
      // Presence has no relay frame.
    }
    return true;
  }

  override outputMark(): number {
    return this.conn.heldMark?.() ?? -1;
  }

  override cutOutput(from: number, to: number): boolean {
    return this.conn.cutHeld?.(from, to) ?? false;
  }

  replaced(): void {
    this.fail(ErrorCode.Conflict, "replaced by a new session with the same address", true);
  }

  private sendBody(header: Header, payload: unknown): void {
    // A payload from another protocol (an XMPP element) travels as its serialized text.
    const body = payload == null ? EMPTY : payload instanceof Uint8Array ? (payload as Buffer) : Buffer.from(String(payload), "utf8");
    const head = encodeHead(header, body.length);
    this.ctx.metrics.relay.out++;
    this.conn.writeParts(this.decoder === null ? head.subarray(4) : head, body);
  }

  private send(header: Header): void {
    this.sendBody(header, null);
  }

  private fail(code: string, text: string, fatal: boolean, re?: string): void {
    if (this.state === State.Closing) return;
    const h: Header = { t: "err", code, text };
    if (re !== undefined) h.re = re;
    this.send(h);
    if (fatal) this.close(code);
  }

  /** PeerProbe: RELAY-PROTOCOL.md's `ping`. */
  pingPeer(): void {
    this.send({ t: "ping" });
  }

  /** PeerProbe: the peer is gone without a word (its ping went unanswered): the connection counts as dropped. */
  peerGone(): void {
    if (this.state === State.Closing) return;
    this.ctx.metrics.kindOfConn(this.conn, this.protocol).deadPeers++;
    this.fail("timeout", "no answer to ping", true);
  }

  private close(reason: string): void {
    this.state = State.Closing;
    this.conn.end(reason);
    this.cleanup(reason);
  }

  private onClose(reason: string): void {
    this.state = State.Closing;
    this.cleanup(reason);
    this.ctx.log.debug("relay session closed", { address: this.address, reason });
  }

  private cleanup(reason: string): void {
    this.record?.end(reason);
    this.watch?.stop();
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.authTimer = null;
    this.ctx.core.detach(this);
  }
}
