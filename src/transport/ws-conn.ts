import type { WebSocket, RawData } from "ws";
import { CloseReason, type Conn } from "./conn.js";
import { admitClient, intakeStats, wait, type IntakeWaiter } from "./intake.js";
import { flushClientWrites, markDirty, type TurnOutput } from "./stream-conn.js";

/** Below this, joining header and body costs less than a second WebSocket fragment. */
const JOIN_BELOW = 4096;

/**
 * One WebSocket: each binary message is one protocol frame. What a turn writes is
 * kept until the turn's client output is flushed (StreamConn's turn, markDirty),
 * then sent, one WebSocket message per frame as before: so it waits, as TCP and
 * TLS output does, behind the hooks that publish the turn's bus batch first
 * (beforeClientWrites), and a client is never shown a stanza ahead of the bus
 * messages about it.
 */
export class WsConn implements Conn, TurnOutput, IntakeWaiter {
  readonly messageMode = true;
  /** wss is TLS from the start; RFC 7395 has no STARTTLS. */
  readonly canStartTls = false;
  readonly tlsVersion = null;
  closed = false;
  private reason = "";
  onData: (chunk: Buffer, binary?: boolean) => void = () => {};
  onClose: (reason: string) => void = () => {};
  onShutdown: (() => void) | null = null;
  /**
   * Messages kept for a later turn (intake.ts), each followed by whether it was binary, in order; null: none,
   * reading. ws owns each message's buffer (not reused), so what waits is not copied.
   */
  private deferred: (Buffer | boolean)[] | null = null;

  constructor(
    private readonly ws: WebSocket,
    readonly remoteAddress: string,
    readonly secure: boolean,
    private readonly maxOutboundBytes: number,
  ) {
    ws.binaryType = "nodebuffer";
    ws.on("message", (data: RawData, isBinary: boolean) => {
      if (this.closed) return;
      const chunk = isBinary ? (data as Buffer) : Buffer.from(data as Buffer);
      // Each message asks the turn for room first, as a socket's read does (StreamConn).
      if (this.deferred === null && admitClient(chunk.length)) this.onData(chunk, isBinary);
      else this.defer(chunk, isBinary);
    });
    ws.on("close", () => {
      // What the peer sent before its close is handled, not dropped with the connection (ws reads on to the end
      // once a close frame came, paused or not).
      this.resumeIntake();
      this.closedBy(CloseReason.Peer);
    });
    ws.on("error", () => this.closedBy(CloseReason.Error));
  }

  /**
   * No room in this turn: the message waits, and the socket stops reading until it is taken (resumeIntake).
   * Messages ws had already read with it still come (from the same chunk), and wait behind it.
   */
  private defer(chunk: Buffer, binary: boolean): void {
    intakeStats.kept += chunk.length;
    if (this.deferred !== null) {
      this.deferred.push(chunk, binary);
      return;
    }
    this.deferred = [chunk, binary];
    this.ws.pause();
    wait(this);
  }

  resumeIntake(): void {
    const ms = this.deferred;
    if (ms === null) return;
    this.deferred = null;
    for (let i = 0; i < ms.length; i += 2) intakeStats.kept -= (ms[i] as Buffer).length;
    for (let i = 0; i < ms.length && !this.closed; i += 2) this.onData(ms[i] as Buffer, ms[i + 1] as boolean);
    if (!this.closed) this.ws.resume();
  }

  /** This turn's frames, not sent yet: a text or a binary message, or [head, body] of one sent as two fragments. */
  private out: (Buffer | string | [Buffer, Buffer])[] = [];
  /** Their bytes (a text's UTF-16 length, as StreamConn counts it: under its UTF-8 size when not ASCII). */
  private held = 0;

  write(chunk: Buffer | string): void {
    if (this.closed) return;
    this.hold(chunk, chunk.length);
  }

  writeParts(a: Buffer, b: Buffer): void {
    if (this.closed) return;
    // Two fragments of one message (the body passed along, not copied), unless it is small.
    if (b.length < JOIN_BELOW) this.hold(b.length ? Buffer.concat([a, b]) : a, a.length + b.length);
    else this.hold([a, b], a.length + b.length);
  }

  private hold(frame: Buffer | string | [Buffer, Buffer], bytes: number): void {
    if (this.out.push(frame) === 1) markDirty(this);
    this.held += bytes;
    this.checkBacklog();
  }

  /** A place in this turn's frames: their count. */
  heldMark(): number {
    return this.closed ? -1 : this.out.length;
  }

  cutHeld(from: number, to: number): boolean {
    if (this.closed) return true;
    if (to < from || to > this.out.length) return false;
    const gone = this.out.splice(from, to - from);
    for (const f of gone) this.held -= typeof f === "string" || Buffer.isBuffer(f) ? f.length : f[0].length + f[1].length;
    return true;
  }

  /** Sends this turn's frames. */
  flush(): void {
    const out = this.out;
    if (out.length === 0) return;
    this.out = [];
    this.held = 0;
    if (this.closed) return;
    const ws = this.ws;
    for (let i = 0; i < out.length; i++) {
      const f = out[i];
      if (typeof f === "string") ws.send(f, { binary: false });
      else if (Buffer.isBuffer(f)) ws.send(f, { binary: true });
      else {
        ws.send(f[0], { binary: true, fin: false });
        ws.send(f[1], { binary: true, fin: true });
      }
    }
  }

  get queuedBytes(): number {
    return this.ws.bufferedAmount + this.held;
  }

  private checkBacklog(): void {
    // The turn's frames count, as a StreamConn's turn output does.
    if (this.queuedBytes > this.maxOutboundBytes) this.destroy(CloseReason.SlowConsumer);
  }

  established(): void {}

  startTls(): void {
    throw new Error("a WebSocket connection cannot start TLS");
  }

  /** Not offered over WebSocket: the TLS session is the HTTP server's, below ws. */
  channelBinding(): Buffer | null {
    return null;
  }

  end(reason = "closed by server"): void {
    if (this.closed) return;
    this.reason = reason;
    // Through the hooks, as the turn's flush goes: behind the bus batch it must not leave ahead of.
    if (this.out.length > 0) flushClientWrites();
    this.flush();
    this.ws.close(1000);
    setTimeout(() => this.ws.terminate(), 5000).unref();
  }

  destroy(reason = "closed by server"): void {
    if (this.closed) return;
    this.reason ||= reason;
    this.out = [];
    this.held = 0;
    this.ws.terminate();
    this.closedBy(reason);
  }

  private closedBy(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this.reason || reason);
  }
}
