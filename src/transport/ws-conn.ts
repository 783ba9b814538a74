import type { WebSocket, RawData } from "ws";
import { CloseReason, type Conn } from "./conn.js";

/** Below this, joining header and body costs less than a second WebSocket fragment. */
const JOIN_BELOW = 4096;

/** One WebSocket: each binary message is one protocol frame. */
export class WsConn implements Conn {
  readonly messageMode = true;
  /** wss is TLS from the start; RFC 7395 has no STARTTLS. */
  readonly canStartTls = false;
  readonly tlsVersion = null;
  closed = false;
  private reason = "";
  onData: (chunk: Buffer, binary?: boolean) => void = () => {};
  onClose: (reason: string) => void = () => {};
  onShutdown: (() => void) | null = null;

  constructor(
    private readonly ws: WebSocket,
    readonly remoteAddress: string,
    readonly secure: boolean,
    private readonly maxOutboundBytes: number,
  ) {
    ws.binaryType = "nodebuffer";
    ws.on("message", (data: RawData, isBinary: boolean) => {
      if (!this.closed) this.onData(isBinary ? (data as Buffer) : Buffer.from(data as Buffer), isBinary);
    });
    ws.on("close", () => this.closedBy(CloseReason.Peer));
    ws.on("error", () => this.closedBy(CloseReason.Error));
  }

  write(chunk: Buffer | string): void {
    if (this.closed) return;
    this.ws.send(chunk, { binary: typeof chunk !== "string" });
    this.checkBacklog();
  }

  writeParts(a: Buffer, b: Buffer): void {
    if (this.closed) return;
    if (b.length < JOIN_BELOW) this.ws.send(b.length ? Buffer.concat([a, b]) : a, { binary: true });
    else {
      // Two fragments of one message: the body is passed along, not copied.
      this.ws.send(a, { binary: true, fin: false });
      this.ws.send(b, { binary: true, fin: true });
    }
    this.checkBacklog();
  }

  get queuedBytes(): number {
    return this.ws.bufferedAmount;
  }

  private checkBacklog(): void {
    if (this.ws.bufferedAmount > this.maxOutboundBytes) this.destroy(CloseReason.SlowConsumer);
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
    this.ws.close(1000);
    setTimeout(() => this.ws.terminate(), 5000).unref();
  }

  destroy(reason = "closed by server"): void {
    if (this.closed) return;
    this.reason ||= reason;
    this.ws.terminate();
    this.closedBy(reason);
  }

  private closedBy(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this.reason || reason);
  }
}
