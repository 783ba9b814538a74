import { createServer as createTcpServer, type Server as NetServer, type Socket, type AddressInfo } from "node:net";
import { createServer as createTlsServer, createSecureContext, type SecureContext } from "node:tls";
import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { WebSocketServer } from "ws";
import type { ListenerConfig } from "../config/config.js";
import type { Conn } from "./conn.js";
import { CloseReason } from "./conn.js";
import { StreamConn } from "./stream-conn.js";
import { WsConn } from "./ws-conn.js";
import type { WriterThread } from "./writer-thread.js";
import type { Metrics } from "../metrics/metrics.js";

const WS_HEADROOM = 65536;

export interface Listening {
  readonly config: ListenerConfig;
  /** The port actually bound (differs from the config when it asked for 0). */
  readonly port: number;
  /** Accepting connections (false once closed). */
  readonly open: boolean;
  /** Bytes queued towards its clients, summed over its connections when asked (a scrape). */
  queuedBytes(): number;
  /** Takes no new connections from now on (the port is released; /readyz turns 503); existing ones stay. */
  stopAccepting(): void;
  /**
   * Graceful drain: each connection gets its protocol's shutdown notice after what is queued for it and
   * is ended; resolves once all are gone, or at `deadline` (performance.now() time) with what is left
   * destroyed, so a client that does not read cannot hold it longer.
   */
  drain(deadline: number): Promise<void>;
  /** Destroys every connection at once and releases the port. */
  close(): Promise<void>;
  /** Connections open now. */
  readonly connections: number;
  /** Sockets open now, also those before their TLS handshake or WebSocket upgrade: what a host's balance counts. */
  readonly openSockets: number;
  /** A connection accepted outside this listener (from the host's shared socket, ListenOptions.handed) taken as if accepted here. */
  accept(socket: Socket): void;
  /**
   * A plain TCP connection another worker of the host began and hands over mid-stream (src/host/handoff.ts):
   * tracked as if accepted here, then given to ListenOptions.onAdopted with the protocol's `state`.
   * False, with the socket untouched, when this listener takes none (closed, not tcp, no onAdopted).
   */
  adopt(socket: Socket, state: unknown): boolean;
}

export interface ListenOptions {
  maxOutboundBytes: number;
  /** Largest message the protocol accepts; the protocol answers one over it itself. */
  maxMessageBytes: number;
  onConnection(conn: Conn): void;
  /** A connection handed over by another worker after its protocol's handshake began (Listening.adopt); tcp only. */
  onAdopted?(conn: Conn, state: unknown): void;
  /** Plain TCP connections hand their output to this thread once established (null: libuv writes it). */
  writer: WriterThread | null;
  /** SO_KEEPALIVE on every accepted socket, first probe after this much silence (whole seconds); 0: off. */
  tcpKeepAliveMs: number;
  /** Counts connections, closes and slow consumers of this listener's kind. */
  metrics: Metrics;
  /** websocket: the subprotocol a client must ask for; an upgrade without it is refused. */
  subprotocol?: string;
  /** websocket: answers plain HTTP requests on the same port (404 without it). */
  onHttpRequest?: (req: IncomingMessage, res: ServerResponse) => void;
  /**
   * Bind nothing: a host's primary binds the configured port and its workers accept
   * from it (src/host/balancer.ts), passing each connection to accept().
   */
  handed?: boolean;
}

/** The subprotocols a WebSocket upgrade offers (RFC 6455 §4.1: a comma-separated list). */
function offered(req: IncomingMessage): string[] {
  const h = req.headers["sec-websocket-protocol"];
  return h === undefined ? [] : h.split(",").map((p) => p.trim());
}

function tlsFiles(tls: { cert: string; key: string }): { cert: Buffer; key: Buffer } {
  return { cert: readFileSync(tls.cert), key: readFileSync(tls.key) };
}

/** A listener's certificate as a context for STARTTLS. */
export function loadTls(tls: { cert: string; key: string }): SecureContext {
  return createSecureContext(tlsFiles(tls));
}

/** Binds one configured listener and hands each accepted connection on. */
export async function listen(cfg: ListenerConfig, opts: ListenOptions): Promise<Listening> {
  const conns = new Set<Conn>();
  const kind = opts.metrics.listener(cfg.protocol, cfg.transport);
  let draining = false;
  /** Resolved when conns empties during a drain. */
  let drained: (() => void) | null = null;
  const track = (c: Conn, start: (c: Conn) => void = opts.onConnection) => {
    conns.add(c);
    opts.metrics.accepted(c, kind);
    start(c);
    // Wrapped after the protocol has set its handler, so both run.
    const protocolClose = c.onClose;
    c.onClose = (r) => {
      conns.delete(c);
      kind.closed++;
      if (r === CloseReason.SlowConsumer) kind.slowConsumers++;
      protocolClose(r);
      if (conns.size === 0 && drained !== null) drained();
    };
    // An upgrade or handshake that completes while draining is ended at once.
    if (draining) shutdown(c);
  };
  const shutdown = (c: Conn) => {
    if (c.onShutdown !== null) c.onShutdown();
    else c.end(CloseReason.Shutdown);
  };
  // Every accepted socket, also before its TLS handshake or WebSocket upgrade: close() must not wait on one.
  const sockets = new Set<Socket>();

  let server: NetServer | HttpServer;
  let wss: WebSocketServer | null = null;
  if (cfg.transport === "websocket") {
    server = cfg.tls ? createHttpsServer(tlsFiles(cfg.tls)) : createHttpServer();
    // Headroom over the protocol's limit so that a moderately oversized message
    // still gets the protocol's own error (relay `too-large`); past it, ws closes with 1009.
    const maxPayload = opts.maxMessageBytes + WS_HEADROOM;
    const sub = opts.subprotocol;
    wss = new WebSocketServer({
      server: server as HttpServer,
      path: cfg.path,
      maxPayload,
      perMessageDeflate: false,
      // RFC 7395 §3.1: without the subprotocol the server must not complete the handshake.
      verifyClient: sub === undefined ? undefined : (info, cb) => (offered(info.req).includes(sub) ? cb(true) : cb(false, 400, `subprotocol ${sub} required`)),
      handleProtocols: sub === undefined ? undefined : () => sub,
    });
    const onHttp = opts.onHttpRequest;
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      if (onHttp !== undefined) return onHttp(req, res);
      res.writeHead(404).end();
    });
    wss.on("connection", (ws, req) => {
      track(new WsConn(ws, req.socket.remoteAddress ?? "", cfg.tls !== undefined, opts.maxOutboundBytes));
    });
  } else {
    const writer = cfg.transport === "tcp" ? opts.writer : null;
    const accept = (socket: Socket) => track(new StreamConn(socket, opts.maxOutboundBytes, writer));
    // Half-open allowed: a peer's FIN must not make Node send ours before the writer thread's data.
    server = cfg.transport === "tls" ? createTlsServer(tlsFiles(cfg.tls!), accept) : createTcpServer({ allowHalfOpen: true }, accept);
    // A TLS handshake that fails costs only that connection.
    server.on("tlsClientError", () => {});
  }

  // "connection" carries the TCP socket itself on every server kind (under TLS and HTTP too), so
  // keepalive covers all transports: the kernel notices a vanished peer even where the protocol is quiet.
  const keepAliveMs = opts.tcpKeepAliveMs;
  const watchSocket = (socket: Socket) => {
    if (keepAliveMs > 0) socket.setKeepAlive(true, keepAliveMs);
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  server.on("connection", watchSocket);

  if (opts.handed !== true)
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(cfg.port, cfg.host, () => {
        server.removeListener("error", reject);
        resolve();
      });
    });
  const port = opts.handed === true ? cfg.port : (server.address() as AddressInfo).port;
  let released: Promise<void> | null = null;
  const stopAccepting = (): Promise<void> => {
    if (released === null) {
      draining = true;
      // The callback comes once every connection is gone; `listening` is false at once.
      released = new Promise<void>((resolve) => server.close(() => resolve()));
    }
    return released;
  };

  return {
    config: cfg,
    port,
    get open() {
      return opts.handed === true ? released === null : server.listening;
    },
    get connections() {
      return conns.size;
    },
    get openSockets() {
      return sockets.size;
    },
    accept: (socket) => {
      // "connection" is what every server kind (TCP, TLS, HTTP for WebSocket) reacts to with its own handshake.
      if (released !== null) socket.destroy();
      else {
        // As createTcpServer({ allowHalfOpen }) would have made it (see there).
        if (cfg.transport === "tcp") socket.allowHalfOpen = true;
        server.emit("connection", socket);
      }
    },
    adopt: (socket, state) => {
      const adopted = opts.onAdopted;
      if (released !== null || cfg.transport !== "tcp" || adopted === undefined) return false;
      socket.allowHalfOpen = true;
      watchSocket(socket);
      track(new StreamConn(socket, opts.maxOutboundBytes, opts.writer), (c) => adopted(c, state));
      return true;
    },
    queuedBytes: () => {
      let n = 0;
      for (const c of conns) n += c.queuedBytes;
      return n;
    },
    stopAccepting: () => void stopAccepting(),
    drain: (deadline) => {
      void stopAccepting();
      if (conns.size > 0) {
        const done = new Promise<void>((resolve) => (drained = resolve));
        for (const c of [...conns]) shutdown(c);
        if (conns.size > 0) {
          let timer: NodeJS.Timeout | undefined;
          const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - performance.now()))));
          return Promise.race([done, late]).then(() => {
            clearTimeout(timer);
            // Past the deadline: a client still holding its backlog (not reading) is cut.
            for (const c of [...conns]) c.destroy(CloseReason.Shutdown);
          });
        }
      }
      return Promise.resolve();
    },
    close: () => {
      wss?.close();
      for (const c of [...conns]) c.destroy(CloseReason.Shutdown);
      const out = stopAccepting();
      for (const s of sockets) s.destroy();
      return out;
    },
  };
}
