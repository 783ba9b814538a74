import type { Socket } from "node:net";
import { TLSSocket, type SecureContext } from "node:tls";
import { CloseReason, type Conn } from "./conn.js";

const CONN = Symbol("conn");
type Tagged = Socket & { [CONN]?: StreamConn };

// Corked connections are uncorked together once the turn's reads are done,
// so a burst to one client from many senders leaves in one writev.
let corked: StreamConn[] = [];
let flushScheduled = false;

function flushAll(): void {
  flushScheduled = false;
  const list = corked;
  corked = [];
  for (let i = 0; i < list.length; i++) list[i].uncork();
}

// Listeners live at module level and find their connection through a symbol:
// no closures per connection.
function onSocketData(this: Tagged, chunk: Buffer): void {
  this[CONN]!.onData(chunk);
}
function onSocketClose(this: Tagged): void {
  this[CONN]?.closedBy(CloseReason.Peer);
}
function onSocketError(this: Tagged): void {
  this[CONN]?.closedBy(CloseReason.Error);
}
function onSocketEnd(this: Tagged): void {
  // Half-closed by the peer: nothing more will come; finish our side too.
  this.end();
}

export class StreamConn implements Conn {
  readonly messageMode = false;
  closed = false;
  private isCorked = false;
  /** Strings written this turn, not yet handed to the socket. */
  private text = "";
  private reason = "";
  onData: (chunk: Buffer) => void = () => {};
  onClose: (reason: string) => void = () => {};
  readonly remoteAddress: string;

  constructor(
    private socket: Socket,
    private readonly maxOutboundBytes: number,
  ) {
    this.remoteAddress = socket.remoteAddress ?? "";
    socket.setNoDelay(true);
    this.bind(socket);
  }

  private bind(socket: Socket): void {
    (socket as Tagged)[CONN] = this;
    socket.on("data", onSocketData);
    socket.on("close", onSocketClose);
    socket.on("error", onSocketError);
    socket.on("end", onSocketEnd);
  }

  get secure(): boolean {
    return this.socket instanceof TLSSocket && this.socket.encrypted;
  }

  /** The TLS socket, for channel binding (tls-exporter, tls-unique). */
  get tls(): TLSSocket | null {
    return this.socket instanceof TLSSocket ? this.socket : null;
  }

  write(chunk: Buffer | string): void {
    if (this.closed) return;
    const s = this.socket;
    if (!this.isCorked) {
      this.isCorked = true;
      s.cork();
      corked.push(this);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flushAll);
      }
    }
    // Text of one turn (XMPP stanzas) is joined and written once: a corked
    // socket hands many small chunks to writev one by one, which cost more
    // than the stanzas themselves in a profile at 20k msg/s (docs/benchmarks.md).
    if (typeof chunk === "string") this.text += chunk;
    else {
      this.flushText();
      s.write(chunk);
    }
    // The peer is not reading: cut it rather than hold its backlog without bound.
    if (s.writableLength + this.text.length > this.maxOutboundBytes) this.destroy(CloseReason.SlowConsumer);
  }

  private flushText(): void {
    if (this.text.length === 0) return;
    const t = this.text;
    this.text = "";
    this.socket.write(t);
  }

  writeParts(a: Buffer, b: Buffer): void {
    this.write(a);
    if (b.length > 0) this.write(b);
  }

  uncork(): void {
    if (!this.isCorked) return;
    this.isCorked = false;
    this.flushText();
    this.socket.uncork();
  }

  /**
   * STARTTLS (RFC 6120 §5): continue over TLS on the same TCP connection.
   * Bytes already buffered stay with the old parser state; the caller restarts its stream.
   */
  startTls(context: SecureContext, onSecure: () => void): void {
    const raw = this.socket;
    this.uncork();
    raw.removeListener("data", onSocketData);
    raw.removeListener("close", onSocketClose);
    raw.removeListener("error", onSocketError);
    raw.removeListener("end", onSocketEnd);
    (raw as Tagged)[CONN] = undefined;
    const tls = new TLSSocket(raw, { isServer: true, secureContext: context });
    this.socket = tls;
    this.bind(tls);
    tls.once("secure", onSecure);
  }

  end(reason = "closed by server"): void {
    if (this.closed) return;
    this.reason = reason;
    this.uncork();
    this.socket.end();
    this.socket.setTimeout(5000, () => this.socket.destroy());
  }

  destroy(reason = "closed by server"): void {
    if (this.closed) return;
    this.reason ||= reason;
    this.socket.destroy();
    this.closedBy(reason);
  }

  closedBy(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this.reason || reason);
  }
}
