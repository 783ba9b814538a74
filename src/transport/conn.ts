import type { SecureContext } from "node:tls";

/** Channel-binding types a TLS connection can give (XEP-0440). */
export type ChannelBindingType = "tls-exporter" | "tls-unique" | "tls-server-end-point";

/**
 * A client connection as protocols see it: bytes in, bytes out, bounded.
 * Stream transports (TCP, TLS) deliver arbitrary chunks; message transports
 * (WebSocket) deliver one whole protocol frame per chunk.
 */
export interface Conn {
  readonly remoteAddress: string;
  /** Encrypted now (direct TLS, after STARTTLS, or wss). */
  readonly secure: boolean;
  /** True when each chunk handed to onData is exactly one message. */
  readonly messageMode: boolean;
  readonly closed: boolean;
  /** STARTTLS can switch this connection to TLS in place (plain TCP). */
  readonly canStartTls: boolean;
  /** The TLS version negotiated ("TLSv1.3"), or null while not encrypted. */
  readonly tlsVersion: string | null;
  /** Bytes written and not yet taken by the kernel: read by metrics at scrape time, not per message. */
  readonly queuedBytes: number;
  /** `binary`: message transports say whether the message came in a binary frame. */
  onData: (chunk: Buffer, binary?: boolean) => void;
  /** Called once, when the connection is gone for whatever reason. */
  onClose: (reason: string) => void;
  /**
   * Set by the protocol: the server is draining (SIGTERM, Server.stop). The protocol writes its
   * shutdown notice after what is queued and ends the connection; null: the transport just ends it.
   */
  onShutdown: (() => void) | null;
  /** Output of this turn not yet handed on: a write now leaves in the same system call (absent: not known). */
  readonly outputPending?: boolean;
  /** Queues bytes; writes made in one event-loop turn leave in one system call. */
  write(chunk: Buffer | string): void;
  /**
   * Where this turn's output, not yet handed on, ends now: a place that cutHeld takes (-1: none can be
   * given, the output cannot be cut). Lets the core take a delivery back out before it leaves (custody's
   * void after a stall: docs/architecture.md, "Riding confirmations").
   */
  heldMark?(): number;
  /** Takes what was queued between two heldMark places out of the turn's output. False: it cannot (nothing changed). */
  cutHeld?(from: number, to: number): boolean;
  /** Sends one message made of parts (message transports join them into one message). */
  writeParts(a: Buffer, b: Buffer): void;
  /**
   * The protocol's handshake is over and the stream will not change again
   * (no STARTTLS): the transport may now move output off the event loop.
   * With `reuseInput` the protocol promises to keep nothing of an onData chunk
   * past the call, so the transport may read every chunk into one reused buffer.
   */
  established(opts?: { reuseInput?: boolean }): void;
  /**
   * Continues over TLS on the same connection (STARTTLS, RFC 6120 §5): what
   * is queued goes out first in the clear; the protocol restarts its stream.
   */
  startTls(context: SecureContext): void;
  /** Channel-binding data of the TLS session (RFC 9266, RFC 5929), or null where it cannot be given. */
  channelBinding(type: ChannelBindingType): Buffer | null;
  /** Closes after what is queued has been sent. */
  end(reason?: string): void;
  destroy(reason?: string): void;
}

/** Why a connection closed; the words appear in logs and tests. */
export const CloseReason = {
  Peer: "peer closed",
  SlowConsumer: "slow consumer",
  Error: "socket error",
  Shutdown: "server shutdown",
} as const;

/**
 * The connection of a session that has none: one handed over by another worker
 * (XEP-0198, a draining worker's detached session) waits here for its client.
 * Already closed; whatever is written to it is dropped.
 */
export function detachedConn(remoteAddress: string): Conn {
  return {
    remoteAddress,
    secure: false,
    messageMode: false,
    closed: true,
    canStartTls: false,
    tlsVersion: null,
    queuedBytes: 0,
    onData: () => {},
    onClose: () => {},
    onShutdown: null,
    write: () => {},
    writeParts: () => {},
    established: () => {},
    startTls: () => {
      throw new Error("a detached session has no connection");
    },
    channelBinding: () => null,
    end: () => {},
    destroy: () => {},
  };
}
