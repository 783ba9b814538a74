import { connect, type Socket } from "node:net";
import { RelayClient } from "../../../src/relay/client.js";
import { FrameDecoder, type Header } from "../../../src/relay/codec.js";
import { CA, type TestServer } from "../../helpers.js";

export type Transport = "tcp" | "tls" | "websocket";
export const TRANSPORTS: Transport[] = ["tcp", "tls", "websocket"];

export function connectRelay(ts: TestServer, transport: Transport): Promise<RelayClient> {
  const port = ts.port("relay", transport);
  if (transport === "websocket") return RelayClient.connect({ url: `ws://127.0.0.1:${port}/relay` });
  if (transport === "tls") return RelayClient.connect({ port, tls: { ca: CA, servername: "localhost" } });
  return RelayClient.connect({ port });
}

export async function loginAs(ts: TestServer, transport: Transport, user: string, password: string, resource?: string): Promise<RelayClient> {
  const c = await connectRelay(ts, transport);
  await c.login({ user, password, ...(resource === undefined ? {} : { resource }) });
  return c;
}

/**
 * A raw TCP peer for sending what a good client never would. Collects every
 * frame the server sends and notes when it closes.
 */
export class RawPeer {
  readonly frames: Header[] = [];
  closed = false;
  private readonly socket: Socket;
  private waiters: (() => void)[] = [];

  private constructor(socket: Socket) {
    this.socket = socket;
    const decoder = new FrameDecoder(0x7fffffff, { frame: (h) => this.push(h) });
    socket.on("data", (chunk) => decoder.push(chunk));
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
    socket.on("error", () => {});
  }

  static open(port: number): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: "127.0.0.1", port }, () => resolve(new RawPeer(s)));
      s.once("error", reject);
    });
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Pauses reading, so the server's writes to us back up. */
  stopReading(): void {
    this.socket.pause();
  }

  /** Reads again; a paused socket cannot notice that the server closed it. */
  resumeReading(): void {
    this.socket.resume();
  }

  private push(h: Header): void {
    this.frames.push(h);
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Waits until the server has closed the connection (or `ms` pass). */
  async untilClosed(ms = 3000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) {
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    return this.closed;
  }

  async frameWhere(pred: (h: Header) => boolean, ms = 3000): Promise<Header> {
    const deadline = Date.now() + ms;
    for (;;) {
      const f = this.frames.find(pred);
      if (f !== undefined) return f;
      if (Date.now() > deadline || this.closed) throw new Error(`no such frame; got ${JSON.stringify(this.frames)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A frame from its parts, including lengths that lie. */
export function rawFrame(header: string, body = Buffer.alloc(0), opts: { frameLength?: number; headerLength?: number } = {}): Buffer {
  const h = Buffer.from(header);
  const buf = Buffer.alloc(6);
  buf.writeUInt32BE(opts.frameLength ?? 2 + h.length + body.length, 0);
  buf.writeUInt16BE(opts.headerLength ?? h.length, 4);
  return Buffer.concat([buf, h, body]);
}
