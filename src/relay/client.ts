import { EventEmitter } from "node:events";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";
import WebSocket from "ws";
import { FrameDecoder, decodeFrame, encodeHead, EMPTY, type Header } from "./codec.js";

export interface RelayClientOptions {
  host?: string;
  port?: number;
  /** Connect with TLS; the options go to tls.connect (ca, servername, rejectUnauthorized…). */
  tls?: ConnectionOptions;
  /** Connect over WebSocket to this URL (ws:// or wss://) instead. */
  url?: string;
  wsOptions?: WebSocket.ClientOptions;
  maxFrameBytes?: number;
}

export interface Incoming {
  header: Header;
  body: Buffer;
}

/** An `err` frame answering one of our requests, or refusing our auth. */
export class RelayError extends Error {
  constructor(
    readonly code: string,
    readonly header: Header,
  ) {
    super(`relay error ${code}${typeof header.text === "string" ? `: ${header.text}` : ""}`);
  }
}

/** A request delivered to us; answer it with respond() or reject(). */
export class IncomingRequest {
  constructor(
    private readonly client: RelayClient,
    readonly id: string,
    readonly from: string,
    readonly body: Buffer,
  ) {}
  respond(body: Buffer | string = EMPTY): void {
    this.client.send({ t: "res", re: this.id }, body);
  }
  reject(code: string, text?: string): void {
    this.client.send(text === undefined ? { t: "err", re: this.id, code } : { t: "err", re: this.id, code, text });
  }
}

interface Waiter {
  resolve(v: Incoming): void;
  reject(e: Error): void;
}

/**
 * A small client of the relay protocol v1. Events: `request` (IncomingRequest),
 * `message` ({from, body}), `frame` (every frame, for tests), `close`.
 */
export class RelayClient extends EventEmitter {
  jid = "";
  private nextId = 1;
  private readonly waiting = new Map<string, Waiter>();
  private control: Waiter[] = [];
  private closed = false;

  private constructor(
    private readonly out: (parts: [Buffer, Buffer]) => void,
    private readonly closer: () => void,
    private readonly framed: boolean,
  ) {
    super();
  }

  static connect(opts: RelayClientOptions): Promise<RelayClient> {
    if (opts.url !== undefined) return RelayClient.connectWs(opts.url, opts.wsOptions);
    return new Promise((resolve, reject) => {
      const host = opts.host ?? "127.0.0.1";
      let socket: Socket;
      const onReady = () => {
        socket.removeListener("error", reject);
        socket.setNoDelay(true);
        const c = new RelayClient(
          ([a, b]) => {
            socket.cork();
            socket.write(a);
            if (b.length) socket.write(b);
            process.nextTick(() => socket.uncork());
          },
          () => socket.end(),
          true,
        );
        const decoder = new FrameDecoder(opts.maxFrameBytes ?? 0x7fffffff, { frame: (h, b) => c.incoming(h, b) });
        socket.on("data", (chunk) => {
          try {
            decoder.push(chunk);
          } catch (e) {
            socket.destroy(e as Error);
          }
        });
        socket.on("close", () => c.gone());
        socket.on("error", () => {});
        resolve(c);
      };
      if (opts.tls) socket = tlsConnect({ host, port: opts.port, ...opts.tls }, onReady);
      else socket = netConnect({ host, port: opts.port! }, onReady);
      socket.once("error", reject);
    });
  }

  private static connectWs(url: string, options?: WebSocket.ClientOptions): Promise<RelayClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, options);
      ws.binaryType = "nodebuffer";
      ws.once("error", reject);
      ws.once("open", () => {
        ws.removeListener("error", reject);
        const c = new RelayClient(
          ([a, b]) => ws.send(b.length ? Buffer.concat([a.subarray(4), b]) : a.subarray(4)),
          () => ws.close(),
          false,
        );
        ws.on("message", (data: Buffer) => {
          try {
            const { header, body } = decodeFrame(data);
            c.incoming(header, body);
          } catch (e) {
            ws.terminate();
          }
        });
        ws.on("close", () => c.gone());
        ws.on("error", () => {});
        resolve(c);
      });
    });
  }

  /** Sends one frame as it is (tests use it to send what a good client would not). */
  send(header: Header, body: Buffer | string = EMPTY): void {
    if (this.closed) return;
    const b = typeof body === "string" ? Buffer.from(body) : body;
    this.out([encodeHead(header, b.length), b]);
  }

  /** hello, then auth; resolves with the full address the server gave us. */
  async login(auth: { user: string; password: string; resource?: string } | { token: string; resource?: string }): Promise<string> {
    const hello = await this.exchange({ t: "hello", v: 1 });
    if (hello.header.t !== "hello") throw new RelayError(String(hello.header.code), hello.header);
    const ok = await this.exchange({ t: "auth", ...auth });
    if (ok.header.t !== "ok") throw new RelayError(String(ok.header.code), ok.header);
    this.jid = String(ok.header.jid);
    return this.jid;
  }

  /** Sends a control frame and waits for the next control frame (hello, ok, err without re, pong). */
  exchange(header: Header): Promise<Incoming> {
    return new Promise((resolve, reject) => {
      this.control.push({ resolve, reject });
      this.send(header);
    });
  }

  /** Resolves with the response's body; rejects with RelayError on err. */
  async request(to: string, body: Buffer | string = EMPTY, ttl?: number): Promise<Incoming> {
    const id = String(this.nextId++);
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.send(ttl === undefined ? { t: "req", id, to } : { t: "req", id, to, ttl }, body);
    });
  }

  message(to: string, body: Buffer | string = EMPTY): void {
    this.send({ t: "msg", to }, body);
  }

  async ping(): Promise<void> {
    await this.exchange({ t: "ping" });
  }

  /** Says bye and waits for the server to close. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.once("close", () => resolve());
      this.send({ t: "bye" });
      setTimeout(() => this.closer(), 1000).unref();
    });
  }

  /** Drops the connection without bye. */
  destroy(): void {
    this.closer();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private incoming(header: Header, body: Buffer): void {
    this.emit("frame", header, body);
    switch (header.t) {
      case "res":
      case "err": {
        const w = typeof header.re === "string" ? this.waiting.get(header.re) : undefined;
        if (w !== undefined) {
          this.waiting.delete(header.re as string);
          if (header.t === "res") w.resolve({ header, body });
          else w.reject(new RelayError(String(header.code), header));
          return;
        }
        if (header.t === "err") this.control.shift()?.resolve({ header, body });
        return;
      }
      case "req":
        this.emit("request", new IncomingRequest(this, String(header.id), String(header.from), body));
        return;
      case "msg":
        this.emit("message", { from: String(header.from), body });
        return;
      case "ping":
        this.send({ t: "pong" });
        return;
      default:
        this.control.shift()?.resolve({ header, body });
    }
  }

  private gone(): void {
    if (this.closed) return;
    this.closed = true;
    const err = new Error("connection closed");
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
    for (const w of this.control) w.reject(err);
    this.control = [];
    this.emit("close");
  }
}
