import { createConnection, createServer, type Server, type Socket } from "node:net";
import { unlinkSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log/logger.js";

/**
 * Bus messages between the workers of one host, straight from one process to
 * the other over Unix domain sockets, instead of through a NATS server (two
 * socket hops and the server's own work per batch). The host's primary makes a
 * private directory and tells its workers (SWITCHBOARD_LINKS); worker `i`
 * listens on `<dir>/w<i>.sock`. A sender opens one connection per peer and
 * writes on it everything it sends that peer, so a pair of workers stays in
 * order as on NATS (a welcome ahead of its binds). Membership (heartbeats)
 * stays on NATS; so does everything between hosts.
 *
 * The stream is the bus's batch format without the batches: each message
 * behind its u32 length. What a link loses — its peer died, or stopped reading
 * for longer than `maxQueuedBytes` took to fill — is lost as a NATS message to a
 * dead or slow subscriber is: custody routes held messages again, and the
 * owner of the lost link is told (`onLost`) so that both sides bind again.
 */
export interface HostLinksOptions {
  /** The host's link directory (made by the primary, mode 0700). */
  dir: string;
  /** This worker's index on its host: it listens on `w<index>.sock`. */
  index: number;
  /** Bytes written to one peer and not yet taken by it, past which the link is dropped (a stalled peer). */
  maxQueuedBytes: number;
}

/** Messages larger than this are not ours: the connection is closed (NATS's max_payload is 1 MiB; batches are split at 256 KiB). */
const MAX_MESSAGE = 64 * 1024 * 1024;

export class HostLinks {
  private server: Server | null = null;
  private readonly out = new Map<number, Socket>();
  private readonly inbound = new Set<Socket>();
  private closed = false;
  /** For the bus's `dropped` metric: messages written after close, and links dropped with what they held. */
  dropped = 0;

  constructor(
    private readonly opts: HostLinksOptions,
    /** One message as the peer wrote it: a view into the chunk read, which Node.js does not reuse. */
    private readonly onMessage: (data: Uint8Array) => void,
    /** The link to peer `index` was dropped with messages not taken: they are lost. */
    private readonly onLost: (index: number) => void,
    private readonly log: Logger | null,
  ) {}

  static pathOf(dir: string, index: number): string {
    return join(dir, `w${index}.sock`);
  }

  /** Listens on this worker's path; a file left by a previous run of this worker (SIGKILL) is replaced. */
  listen(): Promise<void> {
    const path = HostLinks.pathOf(this.opts.dir, this.opts.index);
    try {
      unlinkSync(path);
    } catch {
      // none left
    }
    const server = createServer((s) => this.accepted(s));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => {
        server.removeListener("error", reject);
        resolve();
      });
    });
  }

  /** Writes `bytes` (whole messages, each behind its length) to peer `index`, connecting first if needed. */
  write(index: number, bytes: Uint8Array, messages: number): void {
    if (this.closed) {
      this.dropped += messages;
      return;
    }
    let s = this.out.get(index);
    if (s === undefined) {
      s = this.connect(index);
      this.out.set(index, s);
    }
    // Node.js keeps what the socket does not take yet; a peer that does not read for long is dropped.
    s.write(bytes);
    if (s.writableLength > this.opts.maxQueuedBytes) {
      this.log?.warn("cluster host link: peer not reading, link dropped", { peer: index, queuedBytes: s.writableLength });
      this.lose(index, s);
    }
  }

  private connect(index: number): Socket {
    const s = createConnection(HostLinks.pathOf(this.opts.dir, index));
    s.on("error", (e: Error) => {
      // The peer is gone (restarting, or stopped): what was written to it is lost, as on NATS.
      this.log?.debug("cluster host link failed", { peer: index, error: e.message });
    });
    s.on("close", () => {
      if (this.out.get(index) === s) this.out.delete(index);
    });
    // Nothing comes back on an outbound link; a peer's end (it closed or died) ends ours.
    s.on("end", () => s.destroy());
    s.resume();
    return s;
  }

  private lose(index: number, s: Socket): void {
    this.out.delete(index);
    s.destroy();
    this.dropped++;
    // Not from inside the send that found the queue full: the bus may be in the middle of routing.
    setImmediate(() => this.onLost(index));
  }

  /** Reads messages from one peer: chunks are views as they come; only a message split across reads is copied. */
  private accepted(s: Socket): void {
    if (this.closed) {
      s.destroy();
      return;
    }
    this.inbound.add(s);
    let rest: Buffer | null = null;
    s.on("data", (chunk: Buffer) => {
      const buf = rest === null ? chunk : Buffer.concat([rest, chunk]);
      rest = null;
      let at = 0;
      while (buf.length - at >= 4) {
        const len = buf.readUInt32BE(at);
        if (len > MAX_MESSAGE) {
          this.log?.warn("cluster host link: oversized message, link closed", { bytes: len });
          s.destroy();
          return;
        }
        if (buf.length - at - 4 < len) break;
        this.onMessage(buf.subarray(at + 4, at + 4 + len));
        at += 4 + len;
      }
      if (at < buf.length) rest = buf.subarray(at);
    });
    s.on("error", () => {});
    s.on("close", () => this.inbound.delete(s));
  }

  /** Sends what is written (end), stops listening; the path goes with the listener. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.server?.close();
    for (const s of this.out.values()) s.end();
    this.out.clear();
    for (const s of this.inbound) s.destroy();
    this.inbound.clear();
  }
}
