import { createConnection, createServer, type Server, type Socket } from "node:net";
import { unlinkSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log/logger.js";
import { readInto, startReading, stopReading } from "../transport/node-internals.js";
import { admitLink, hold, release, waitLink } from "../transport/intake.js";
import { SlabFrames } from "./slab-frames.js";

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
 * behind its u32 length. The writer respects the socket's backpressure: once
 * a write is not taken at once, what follows waits here and goes, joined into
 * few large writes, when the socket drains. A peer that reads slowly (busy
 * with a burst: a room's join) is waited for, not dropped. A link is dropped
 * only when its peer took nothing for `stallMs` with more than
 * `maxQueuedBytes` held for it, or when it holds `HARD_FACTOR` times that
 * (memory). What it loses then — its peer died, or stopped reading — is lost
 * as a NATS message to a dead or slow subscriber is: custody routes held
 * messages again, and the owner of the lost link is told (`onLost`) so that
 * both sides bind again.
 */
export interface HostLinksOptions {
  /** The host's link directory (made by the primary, mode 0700). */
  dir: string;
  /** This worker's index on its host: it listens on `w<index>.sock`. */
  index: number;
  /** Bytes held for one peer (not yet taken by it) past which a peer that takes nothing for `stallMs` is dropped. */
  maxQueuedBytes: number;
  /** How long a peer with more than maxQueuedBytes held for it may take nothing before its link is dropped; 0: at once. */
  stallMs?: number;
  /**
   * Bytes held for one peer past which this worker stops reading its clients until the peer has taken them
   * (src/transport/intake.ts: backpressure instead of a backlog without bound); none: never.
   */
  holdBytes?: number;
}

/** Past this many times maxQueuedBytes held for a peer, its link is dropped even if it reads (this worker's memory). */
export const HARD_FACTOR = 4;
/** Batches waiting for a drain are joined into writes of about this size. */
const WRITE_CHUNK = 1024 * 1024;

/** One outbound link: the socket, and what waits for it to drain. */
interface Out {
  index: number;
  s: Socket;
  /** Batches not given to the socket yet: it has not drained since it last refused more. */
  queue: Uint8Array[];
  queued: number;
  /** Whether the socket refused more (write returned false) and has not drained since. */
  blocked: boolean;
  /** performance.now() when the socket last drained, or blocked from a drained state. */
  progressAt: number;
  /** This link holds the worker's client intake (holdBytes passed): released once its queue is written. */
  holding: boolean;
}

/**
 * Messages larger than this are not ours: the connection is closed (NATS's max_payload is 1 MiB; batches are split
 * at 256 KiB, a service's fan-out at MAX_FANOUT_CHARS; NatsBus refuses to send a message past it).
 */
export const MAX_MESSAGE = 64 * 1024 * 1024;

export class HostLinks {
  private server: Server | null = null;
  private readonly out = new Map<number, Out>();
  private readonly inbound = new Set<Socket>();
  private closed = false;
  /** For the bus's `dropped` metric: messages written after close, and links dropped with what they held. */
  dropped = 0;
  /** Times a socket refused more and batches waited for its drain (metrics, tests). */
  waits = 0;
  /** Times a peer fell holdBytes behind and this worker stopped reading its clients for it (metrics, tests). */
  holds = 0;

  constructor(
    private readonly opts: HostLinksOptions,
    /** One message as the peer wrote it: data[start, end), in place in the link's slab (never written again), with no view made per message. */
    private readonly onMessage: (data: Uint8Array, start: number, end: number) => void,
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
      // Exclusive: in a cluster worker a plain listen() is the primary's socket (round robin), which outlives
      // this worker: a peer that connects after a SIGKILL is accepted by the primary and handed to no one,
      // and everything it writes to this worker's next incarnation vanishes without an error.
      server.listen({ path, exclusive: true }, () => {
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
    let o = this.out.get(index);
    if (o === undefined) {
      o = { index, s: this.connect(index), queue: [], queued: 0, blocked: false, progressAt: performance.now(), holding: false };
      this.out.set(index, o);
    }
    if (!o.blocked) {
      if (!o.s.write(bytes)) this.block(o);
      return;
    }
    o.queue.push(bytes);
    o.queued += bytes.length;
    const held = o.queued + o.s.writableLength;
    if (!o.holding && this.opts.holdBytes !== undefined && held > this.opts.holdBytes) this.holdIntake(o);
    const max = this.opts.maxQueuedBytes;
    if (held <= max) return;
    const still = performance.now() - o.progressAt;
    if (held > HARD_FACTOR * max || still >= (this.opts.stallMs ?? 0)) this.dropStalled(o, still);
  }

  /** The peer took nothing for too long, or too much waits for it: the link goes, with what it holds. */
  private dropStalled(o: Out, still: number): void {
    this.log?.warn("cluster host link: peer not reading, link dropped", { peer: o.index, queuedBytes: o.queued + o.s.writableLength, stillMs: Math.round(still) });
    this.lose(o.index, o);
  }

  /**
   * The peer falls behind: this worker's clients are not read until it catches up. With clients not read, nothing
   * may come to write again and find a peer that stopped: a timer drops the link after stallMs without progress.
   */
  private holdIntake(o: Out): void {
    o.holding = true;
    this.holds++;
    hold();
    const stall = this.opts.stallMs ?? 0;
    const check = (): void => {
      if (!o.holding) return;
      const still = performance.now() - o.progressAt;
      if (still < stall) return void setTimeout(check, stall - still + 1).unref();
      if (this.out.get(o.index) === o) this.dropStalled(o, still);
      else this.releaseIntake(o);
    };
    setTimeout(check, stall + 1).unref();
  }

  private releaseIntake(o: Out): void {
    if (!o.holding) return;
    o.holding = false;
    release();
  }

  /** The socket took `bytes` but wants no more until it drains: what follows waits in `queue`. */
  private block(o: Out): void {
    o.blocked = true;
    o.progressAt = performance.now();
    this.waits++;
    o.s.once("drain", () => this.drained(o));
  }

  /** The peer took what the socket held: the queue goes in writes of about WRITE_CHUNK, until the socket refuses again. */
  private drained(o: Out): void {
    if (this.out.get(o.index) !== o) return;
    o.blocked = false;
    o.progressAt = performance.now();
    while (o.queue.length > 0) {
      let n = 0;
      let bytes = 0;
      while (n < o.queue.length && (n === 0 || bytes + o.queue[n].length <= WRITE_CHUNK)) bytes += o.queue[n++].length;
      const chunk = n === 1 ? o.queue[0] : Buffer.concat(o.queue.slice(0, n), bytes);
      o.queue.splice(0, n);
      o.queued -= bytes;
      if (!o.s.write(chunk)) {
        // Down to a quarter: clients are read again while the rest goes (not idle until the peer has all of it).
        if (o.holding && o.queued <= this.opts.holdBytes! / 4) this.releaseIntake(o);
        return this.block(o);
      }
    }
    this.releaseIntake(o);
  }

  /**
   * Peer `index` is a new process (it joined with another incarnation): a link to its predecessor goes,
   * with what waits for it, and the next write connects anew.
   */
  reset(index: number): void {
    const o = this.out.get(index);
    if (o === undefined) return;
    this.out.delete(index);
    o.s.destroy();
    this.dropped += o.queue.length;
    o.queue = [];
    o.queued = 0;
    this.releaseIntake(o);
  }

  private connect(index: number): Socket {
    const s = createConnection(HostLinks.pathOf(this.opts.dir, index));
    s.on("error", (e: Error) => {
      // The peer is gone (restarting, or stopped): what was written to it is lost, as on NATS.
      this.log?.debug("cluster host link failed", { peer: index, error: e.message });
    });
    s.on("close", () => {
      const o = this.out.get(index);
      if (o?.s !== s) return;
      this.out.delete(index);
      this.releaseIntake(o);
    });
    // Nothing comes back on an outbound link; a peer's end (it closed or died) ends ours.
    s.on("end", () => s.destroy());
    s.resume();
    return s;
  }

  private lose(index: number, o: Out): void {
    this.out.delete(index);
    o.s.destroy();
    o.queue = [];
    o.queued = 0;
    this.releaseIntake(o);
    this.dropped++;
    // Not from inside the send that found the queue full: the bus may be in the middle of routing.
    setImmediate(() => this.onLost(index));
  }

  /**
   * Reads messages from one peer, in place: the kernel reads into a slab of this link's (SlabFrames) and each
   * message is handed out where it lies. Without readInto on this Node.js, Node's chunks are copied into it.
   */
  private accepted(s: Socket): void {
    if (this.closed) {
      s.destroy();
      return;
    }
    this.inbound.add(s);
    const frames = new SlabFrames(this.onMessage, MAX_MESSAGE);
    const oversized = () => {
      this.log?.warn("cluster host link: oversized message, link closed", { bytes: frames.refused });
      s.destroy();
    };
    // Past the turn's budget (intake.ts) the link stops after this read and reads again at the turn's end.
    const resume = { resumeIntake: () => (direct ? startReading(s) : s.resume()) };
    const direct = readInto(
      s,
      frames.next,
      (n) => {
        if (!frames.read(n)) return oversized();
        if (!admitLink(n) && !s.destroyed && stopReading(s)) waitLink(resume);
      },
      () => frames.next,
    );
    if (!direct) {
      s.on("data", (chunk: Buffer) => {
        if (!frames.push(chunk)) return oversized();
        if (!admitLink(chunk.length) && !s.destroyed) {
          s.pause();
          waitLink(resume);
        }
      });
    }
    s.on("error", () => {});
    s.on("close", () => this.inbound.delete(s));
  }

  /** Sends what is written (end), stops listening; the path goes with the listener. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.server?.close();
    for (const o of this.out.values()) {
      // What waits for a drain goes first: end() writes after it.
      for (const b of o.queue) o.s.write(b);
      o.queue = [];
      o.s.end();
      this.releaseIntake(o);
    }
    this.out.clear();
    for (const s of this.inbound) s.destroy();
    this.inbound.clear();
  }
}
