import { createServer as createTcpServer, type Server as NetServer, type Socket, type AddressInfo } from "node:net";
import { createServer as createTlsServer, createSecureContext, type SecureContext } from "node:tls";
import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { readFileSync } from "node:fs";
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
  close(): Promise<void>;
}

export interface ListenOptions {
  maxOutboundBytes: number;
  /** Largest message the protocol accepts; the protocol answers one over it itself. */
  maxMessageBytes: number;
  onConnection(conn: Conn): void;
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
  const track = (c: Conn) => {
    conns.add(c);
    opts.metrics.accepted(c, kind);
    opts.onConnection(c);
    // Wrapped after the protocol has set its handler, so both run.
    const protocolClose = c.onClose;
    c.onClose = (r) => {
      conns.delete(c);
      kind.closed++;
      if (r === CloseReason.SlowConsumer) kind.slowConsumers++;
      protocolClose(r);
    };
  };

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
  if (keepAliveMs > 0) server.on("connection", (socket: Socket) => socket.setKeepAlive(true, keepAliveMs));

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(cfg.port, cfg.host, () => {
      server.removeListener("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    config: cfg,
    port,
    get open() {
      return server.listening;
    },
    queuedBytes: () => {
      let n = 0;
      for (const c of conns) n += c.queuedBytes;
      return n;
    },
    close: () =>
      new Promise<void>((resolve) => {
        wss?.close();
        for (const c of conns) c.destroy(CloseReason.Shutdown);
        server.close(() => resolve());
      }),
  };
}
