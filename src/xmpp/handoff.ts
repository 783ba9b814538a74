import type { Conn } from "../transport/conn.js";
import { StreamConn } from "../transport/stream-conn.js";
import type { XmppContext } from "./context.js";
import type { ClientSession } from "./client-session.js";
import { XmppSession } from "./xmpp-session.js";

/** What the owner needs to continue a stream restarted after SASL success (JSON over the IPC channel). */
export interface HandoffState {
  protocol: "xmpp";
  /** The authenticated local part (RFC 6120 §6.4.6). */
  user: string;
  /** Input read after the success and not parsed, base64, in order (a client that did not wait for it). */
  chunks: string[];
  /** What is left of limits.authTimeoutMs: bind must still come in time. */
  authLeftMs: number;
}

/**
 * RFC 6120 §6.4.6: after <success/> the client opens a new stream and nothing
 * of the old one is kept, so a plain TCP connection can move then with a few
 * bytes of state: to the worker that owns its user (cluster.handoff), where its
 * session's messages are delivered without a bus hop (docs/architecture.md,
 * "Connections on their owner"). Called by SASL right after the success is
 * queued and the stream restarted. Anything that cannot move (TLS, WebSocket,
 * parsed input beyond the success) stays, as does everything when the hand-off
 * fails: the session goes on here exactly as it would have.
 */
export function handOff(s: ClientSession, x: XmppContext): void {
  const port = x.handoff;
  if (port === undefined || port === null || !(s instanceof XmppSession) || s.listenerIndex < 0) return;
  const conn = s.conn;
  if (!(conn instanceof StreamConn) || !conn.movable) return;
  const to = port.target(s.bare);
  if (to === null) return;
  const user = s.user;
  const moved = s.moveOut();
  if (moved === null) return;
  // The time the hand-off takes is not charged to limits.authTimeoutMs, here or at the owner: moving is this
  // server's choice, and a login must never fail for it (an owner stopped for ADOPT_MS, a storm's IPC queues).
  const stay = () => {
    if (conn.closed) return;
    x.metrics.handoffs.stayed++;
    conn.resumeAfterHandoff();
    s.continueAuthenticated(user, moved.chunks, moved.authLeftMs);
  };
  const paused = conn.pauseForHandoff((socket) => {
    // Closed meanwhile (the peer, a server stop): the session had already let go; nothing to continue.
    if (socket === null) return;
    const state: HandoffState = { protocol: "xmpp", user, chunks: moved.chunks.map((c) => c.toString("base64")), authLeftMs: moved.authLeftMs };
    port.offer(socket, to, s.listenerIndex, state, (ok) => {
      if (!ok) return stay();
      x.metrics.handoffs.out++;
      if (x.debug) x.log.debug("xmpp connection handed to its owner", { user, worker: to });
      // This process's copy of the descriptor only: the owner's keeps the connection open.
      conn.destroy("handed to its owner worker");
    });
  });
  if (!paused) s.continueAuthenticated(user, moved.chunks, moved.authLeftMs);
}

/** The owner's side: the connection another worker handed over continues here at the client's new stream header. */
export function adoptXmpp(conn: Conn, x: XmppContext, state: unknown, listenerIndex: number): void {
  if (!isHandoffState(state)) {
    // Only this host's workers send it: a state it cannot read is a bug, and costs this connection only.
    x.log.error("a connection handed over came with a state this worker cannot read; closing it");
    return conn.destroy("unreadable hand-off state");
  }
  const st = state;
  const s = new XmppSession(conn, x, null);
  s.listenerIndex = listenerIndex;
  x.metrics.handoffs.in++;
  s.continueAuthenticated(st.user, st.chunks.map((c) => Buffer.from(c, "base64")), st.authLeftMs);
}

/** A state the owner can continue from (the IPC channel carries JSON from another process of this host). */
export function isHandoffState(v: unknown): v is HandoffState {
  const s = v as HandoffState;
  return typeof s === "object" && s !== null && s.protocol === "xmpp" && typeof s.user === "string" && s.user !== "" && Array.isArray(s.chunks) && s.chunks.every((c) => typeof c === "string") && typeof s.authLeftMs === "number";
}
