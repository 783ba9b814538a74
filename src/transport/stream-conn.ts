import type { Socket } from "node:net";
import { endpointBinding } from "./endpoint-binding.js";
import { performance } from "node:perf_hooks";
import { TLSSocket, type SecureContext } from "node:tls";
import { CloseReason, type ChannelBindingType, type Conn } from "./conn.js";
import type { WriterThread } from "./writer-thread.js";
import { canReadIntoNext, readInto, socketFd, startReading, stopReading } from "./node-internals.js";
import { admitClient, intakePressed, intakeStats, wait, type IntakeWaiter } from "./intake.js";

const CONN = Symbol("conn");
type Tagged = Socket & { [CONN]?: StreamConn };

// Connections written to in this turn are flushed together once the turn's
// reads are done, so a burst to one client from many senders leaves in one write.
// A busy turn (hundreds of ready sockets) can last tens of milliseconds, and
// output held to its end would wait as long: past FLUSH_AFTER_MS, flush at once.
const FLUSH_AFTER_MS = 1;

/** A connection whose output is gathered over a turn and handed on by flush(): StreamConn, WsConn. */
export interface TurnOutput {
  flush(): void;
}

let dirty: TurnOutput[] = [];
let dirtySince = 0;
let flushScheduled = false;

/** The writer thread, once a connection has taken a slot: published at the end of each flush. */
let writer: WriterThread | null = null;

/** Called before each flush of the turn's client output (beforeClientWrites); one returning false holds it. */
const beforeFlush: ((force: boolean) => boolean)[] = [];

/**
 * `cb` runs before each flush of client output, however it comes (end of turn, or a busy turn's 1 ms):
 * the composition root publishes the turn's bus batch there, so that what a client is shown never
 * leaves ahead of the bus messages about it (a worker killed in between). Returns its removal.
 */
export function beforeClientWrites(cb: (force: boolean) => boolean): () => void {
  beforeFlush.push(cb);
  return () => {
    const i = beforeFlush.indexOf(cb);
    if (i >= 0) beforeFlush.splice(i, 1);
  };
}

/**
 * Writes the client output a beforeClientWrites hook held (it returned false), once what it waited for is done:
 * the hook's owner calls it.
 */
export function flushClientWrites(): void {
  if (dirty.length > 0) flushAll(true);
}

/**
 * With `force` (a release) no hook may hold: each does what it must first (publishes its batch now). A process with
 * several servers (tests) has one list and a hook each, and one of them would nearly always be holding.
 */
function flushAll(force = false): void {
  for (let i = 0; i < beforeFlush.length; i++) if (!beforeFlush[i](force) && !force) return;
  const list = dirty;
  dirty = [];
  for (let i = 0; i < list.length; i++) list[i].flush();
  writer?.publish();
}

/** The end of the turn. A held flush (a hook returned false) leaves the list as it is, for flushClientWrites. */
function onImmediate(): void {
  flushScheduled = false;
  flushAll();
}

/** `c` has output for this turn: flushed with the others at the turn's end (or a busy turn's 1 ms), after the hooks. */
export function markDirty(c: TurnOutput): void {
  const n = dirty.push(c);
  if (n === 1) dirtySince = performance.now();
  // Whenever none is queued, not only for the list's first entry: a held list is not empty when a turn begins.
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(onImmediate);
  } else if ((n & 15) === 0 && !midTurnQueued && performance.now() - dirtySince > FLUSH_AFTER_MS) {
    // At the end of the callback that wrote (a microtask), not inside it: the hooks before a flush
    // (beforeClientWrites) then publish everything the callback's stanzas caused, not half of it.
    midTurnQueued = true;
    queueMicrotask(flushMidTurn);
  }
}

let midTurnQueued = false;

/** A busy turn's early flush; the turn's setImmediate still comes and finds the list empty or newly filled. */
function flushMidTurn(): void {
  midTurnQueued = false;
  flushAll();
}

/**
 * Reads of sockets established with reuseInput land here (readInto, in node-internals.ts):
 * no Buffer and no Readable work per read. Shared by every socket in that mode,
 * which is safe because each chunk is consumed before the next read can happen.
 */
const READ_BUFFER = Buffer.allocUnsafe(65536);
/**
 * A read that must wait for a later turn is copied and kept (intake.ts), at most one per connection, which has
 * then stopped reading: under sustained overload nearly every connection waits with one. While intake is pressed
 * each connection's next read goes here instead, so that what a waiting connection keeps is at most 4 KiB, not up
 * to 64 KiB (session 32: 83 MiB kept by one worker of 5,000 connections at 3.5 times its capacity); the rest stays
 * in the kernel's buffer, where TCP slows its sender.
 */
const PRESSED_READ_BUFFER = Buffer.allocUnsafe(4096);
function nextReadBuffer(): Buffer {
  return intakePressed() ? PRESSED_READ_BUFFER : READ_BUFFER;
}

// Listeners live at module level and find their connection through a symbol:
// no closures per connection.
// Each read asks the turn for room first (intake.ts); without it, it is kept for a later turn.
function onSocketData(this: Tagged, chunk: Buffer): void {
  const c = this[CONN]!;
  if (c.deferred === null && admitClient(chunk.length)) c.onData(chunk);
  else c.defer(chunk);
}
function onSocketRead(this: Tagged, n: number, buf: Buffer): void {
  const c = this[CONN];
  if (c === undefined) return;
  if (c.deferred === null && admitClient(n)) c.onData(buf.subarray(0, n));
  // The shared buffer is the next read's: what waits is copied.
  else c.defer(Buffer.from(buf.subarray(0, n)));
}
function onSocketClose(this: Tagged): void {
  this[CONN]?.closedBy(CloseReason.Peer);
}
function onSocketError(this: Tagged): void {
  this[CONN]?.closedBy(CloseReason.Error);
}
function onSocketEnd(this: Tagged): void {
  // Half-closed by the peer: nothing more will come; finish our side too.
  const c = this[CONN];
  if (c !== undefined) c.end(CloseReason.Peer);
  else this.end();
}

export class StreamConn implements Conn, IntakeWaiter {
  readonly messageMode = false;
  closed = false;
  /** Reads kept for a later turn (intake.ts), in order; null: none, reading. */
  deferred: Buffer[] | null = null;
  private paused: Socket | null = null;
  private streamPaused = false;
  /** Written to in this turn: on the list that flushAll empties. */
  private queued = false;
  /** This turn's output not yet handed to the socket: joined text, or buffers once any buffer came. */
  private text = "";
  private buffers: Buffer[] = [];
  /** The bytes in `buffers` (heldMark's places once output is buffers). */
  private bufBytes = 0;
  private pendingBytes = 0;
  /** end() was called: what is queued goes out, nothing more is taken. */
  private ending = false;
  private reason = "";
  /** The writer thread's slot once output goes that way (see established()); -1 before. */
  private slot = -1;
  /** Reads go into the shared READ_BUFFER (established with reuseInput). */
  private sharedReads = false;
  onData: (chunk: Buffer) => void = () => {};
  onClose: (reason: string) => void = () => {};
  onShutdown: (() => void) | null = null;
  readonly remoteAddress: string;

  constructor(
    private socket: Socket,
    private readonly maxOutboundBytes: number,
    private readonly writerThread: WriterThread | null = null,
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

  /** No room in this turn: the read waits, and the socket stops reading until it is taken (resumeIntake). */
  defer(chunk: Buffer): void {
    intakeStats.kept += chunk.length;
    if (this.deferred !== null) {
      this.deferred.push(chunk);
      return;
    }
    const s = this.socket;
    if (this.sharedReads) {
      // Without readStop (another Node.js) the socket cannot stop: its reads are handled as they come.
      if (!stopReading(s)) return this.onData(chunk);
    } else {
      s.pause();
      this.streamPaused = true;
    }
    this.paused = s;
    this.deferred = [chunk];
    wait(this);
  }

  resumeIntake(): void {
    const chunks = this.deferred;
    if (chunks === null) return;
    this.deferred = null;
    for (let i = 0; i < chunks.length; i++) intakeStats.kept -= chunks[i].length;
    for (let i = 0; i < chunks.length && !this.closed; i++) this.onData(chunks[i]);
    const p = this.paused!;
    const streamPaused = this.streamPaused;
    this.paused = null;
    this.streamPaused = false;
    // After STARTTLS in what waited, the TLS socket on the one that stopped reads by itself.
    if (this.closed || p !== this.socket || p.destroyed) return;
    // A stream paused before reads went to the shared buffer (established() in what waited) needs both.
    if (this.sharedReads) startReading(p);
    if (streamPaused) p.resume();
  }

  get secure(): boolean {
    return this.socket instanceof TLSSocket && this.socket.encrypted;
  }

  get canStartTls(): boolean {
    return !(this.socket instanceof TLSSocket);
  }

  get tlsVersion(): string | null {
    const s = this.socket;
    return s instanceof TLSSocket && s.encrypted ? s.getProtocol() : null;
  }

  channelBinding(type: ChannelBindingType): Buffer | null {
    const s = this.socket;
    if (!(s instanceof TLSSocket) || !s.encrypted) return null;
    // RFC 9266: 32 bytes exported under this label, with an empty context.
    if (type === "tls-exporter") return s.getProtocol() === "TLSv1.3" ? s.exportKeyingMaterial(32, "EXPORTER-Channel-Binding", Buffer.alloc(0)) : null;
    // RFC 5929 §4 tls-server-end-point: our certificate's hash (XEP-0484's HT-*-ENDP).
    if (type === "tls-server-end-point") {
      const raw = (s.getCertificate() as { raw?: Buffer } | null)?.raw;
      return raw === undefined ? null : endpointBinding(raw);
    }
    // RFC 5929 tls-unique: the first Finished of the handshake, which on a full handshake is the client's.
    return s.getPeerFinished() ?? null;
  }

  /**
   * The stream will not change (no STARTTLS from here on). On a plain TCP
   * socket, reads may now go into the shared buffer, and output, once all of
   * it has gone out, to the writer thread.
   */
  established(opts: { reuseInput?: boolean } = {}): void {
    const s = this.socket;
    if (this.closed || this.ending || s instanceof TLSSocket) return;
    // Neither the descriptor nor the read mode is public API; without them the socket keeps Node's own reads and writes.
    if (opts.reuseInput) this.sharedReads = readInto(s, READ_BUFFER, onSocketRead, canReadIntoNext ? nextReadBuffer : undefined);
    if (this.writerThread === null || this.slot >= 0) return;
    this.release();
    const fd = socketFd(s);
    if (fd < 0 || s.writableLength > 0) return;
    this.slot = this.writerThread.open(fd);
    if (this.slot >= 0) writer = this.writerThread;
  }

  /**
   * Connection hand-off (src/host/handoff.ts): reading stops now, and `ready` gets the socket once
   * everything written so far has gone to the kernel (null: it closed meanwhile). False, with nothing
   * changed, where the connection cannot move: TLS (its state is in this process), a writer-thread
   * slot (a second descriptor), reads into the shared buffer, input Node has buffered, an end begun.
   */
  pauseForHandoff(ready: (socket: Socket | null) => void): boolean {
    const s = this.socket;
    if (!this.movable || !stopReading(s)) return false;
    this.release();
    const done = (err?: Error | null) => ready(err || this.closed ? null : s);
    // A write's callback comes once it, and so all before it, is in the kernel.
    if (s.writableLength === 0) setImmediate(done);
    else s.write("", done);
    return true;
  }

  /** Whether pauseForHandoff() can take this connection now (it may still fail where Node lacks readStop). */
  get movable(): boolean {
    const s = this.socket;
    return !(this.closed || this.ending || s instanceof TLSSocket || this.slot >= 0 || this.sharedReads || s.readableLength > 0 || this.deferred !== null);
  }

  /** The hand-off did not happen: this process reads the connection again. */
  resumeAfterHandoff(): void {
    if (!this.closed) startReading(this.socket);
  }

  /** Written and not yet taken by the kernel. */
  private get backlog(): number {
    return this.slot >= 0 ? this.writerThread!.backlog(this.slot) : this.socket.writableLength;
  }

  get outputPending(): boolean {
    return this.queued;
  }

  get queuedBytes(): number {
    return this.backlog + this.pendingBytes;
  }

  write(chunk: Buffer | string): void {
    if (this.closed || this.ending) return;
    // Strings (XMPP stanzas) are joined and written once; buffers (relay frames)
    // are kept as they are and go out in one writev. Either way the socket sees
    // one write per turn, without the cost of cork/uncork on every connection.
    if (typeof chunk === "string") {
      if (this.buffers.length > 0) this.pushBuffer(Buffer.from(chunk));
      else this.text += chunk;
      this.pendingBytes += chunk.length;
    } else {
      if (this.text.length > 0) {
        this.pushBuffer(Buffer.from(this.text));
        this.text = "";
      }
      this.pushBuffer(chunk);
      this.pendingBytes += chunk.length;
    }
    // After the append: marking may flush at once, and must take this chunk along.
    if (!this.queued) {
      this.queued = true;
      markDirty(this);
    }
    // The peer is not reading: cut it rather than hold its backlog without bound.
    if (this.backlog + this.pendingBytes > this.maxOutboundBytes) this.destroy(CloseReason.SlowConsumer);
  }

  writeParts(a: Buffer, b: Buffer): void {
    this.write(a);
    if (b.length > 0) this.write(b);
  }

  private pushBuffer(b: Buffer): void {
    this.buffers.push(b);
    this.bufBytes += b.length;
  }

  /** Text places are even (2 × its length), buffer places odd (2 × bytes + 1): a cut across a change of form is refused. */
  heldMark(): number {
    if (this.closed || this.ending) return -1;
    if (!this.queued) return 0;
    return this.buffers.length === 0 ? 2 * this.text.length : 2 * this.bufBytes + 1;
  }

  cutHeld(from: number, to: number): boolean {
    // Gone: nothing held will be written, so nothing is to be taken back.
    if (this.closed) return true;
    if (this.ending || to < from) return false;
    if (from === to) return true;
    if (!this.queued) return false;
    const inText = this.buffers.length === 0;
    // A place of 0 was taken with nothing queued: either form.
    if ((from !== 0 && (from & 1) !== (inText ? 0 : 1)) || (to & 1) !== (inText ? 0 : 1)) return false;
    const a = from >> 1;
    const b = to >> 1;
    if (inText) {
      if (b > this.text.length) return false;
      this.text = this.text.slice(0, a) + this.text.slice(b);
    } else {
      if (b > this.bufBytes) return false;
      const kept: Buffer[] = [];
      let at = 0;
      for (const buf of this.buffers) {
        const end = at + buf.length;
        if (end <= a || at >= b) kept.push(buf);
        else {
          if (at < a) kept.push(buf.subarray(0, a - at));
          if (end > b) kept.push(buf.subarray(b - at));
        }
        at = end;
      }
      this.buffers = kept;
      this.bufBytes -= b - a;
    }
    this.pendingBytes = Math.max(0, this.pendingBytes - (b - a));
    return true;
  }

  /**
   * This connection's output goes now, outside the turn's flush: through the hooks all the same (with force), so
   * that it still follows the bus batch it must not leave ahead of (custody's confirmations, resume-record copies).
   */
  private release(): void {
    if (this.queued) flushClientWrites();
    this.flush();
  }

  /** Hands this turn's output to the socket. */
  flush(): void {
    if (!this.queued) return;
    this.queued = false;
    this.pendingBytes = 0;
    this.bufBytes = 0;
    const s = this.socket;
    if (this.closed) {
      this.text = "";
      this.buffers = [];
      return;
    }
    if (this.slot >= 0) {
      // One record per connection per turn, as one write(2) would be.
      const w = this.writerThread!;
      if (this.text.length > 0) w.write(this.slot, this.text);
      else if (this.buffers.length === 1) w.write(this.slot, this.buffers[0]);
      else if (this.buffers.length > 1) w.writeAll(this.slot, this.buffers);
      this.text = "";
      this.buffers = [];
      return;
    }
    if (this.text.length > 0) {
      const t = this.text;
      this.text = "";
      s.write(t);
      return;
    }
    const bufs = this.buffers;
    if (bufs.length === 0) return;
    this.buffers = [];
    if (bufs.length === 1) {
      s.write(bufs[0]);
      return;
    }
    s.cork();
    for (let i = 0; i < bufs.length; i++) s.write(bufs[i]);
    s.uncork();
  }

  /**
   * STARTTLS (RFC 6120 §5): continue over TLS on the same TCP connection.
   * Bytes already buffered stay with the old parser state; the caller restarts its stream.
   */
  startTls(context: SecureContext): void {
    const raw = this.socket;
    this.release();
    raw.removeListener("data", onSocketData);
    raw.removeListener("close", onSocketClose);
    raw.removeListener("error", onSocketError);
    raw.removeListener("end", onSocketEnd);
    (raw as Tagged)[CONN] = undefined;
    const tls = new TLSSocket(raw, { isServer: true, secureContext: context });
    this.socket = tls;
    this.bind(tls);
  }

  end(reason = "closed by server"): void {
    if (this.closed || this.ending) return;
    this.reason = reason;
    this.release();
    this.ending = true;
    if (this.slot < 0) {
      this.socket.end();
      this.socket.setTimeout(5000, () => this.socket.destroy());
      return;
    }
    // The writer thread sends FIN after the data; the socket closes once that is out, or after 5 s.
    const w = this.writerThread!;
    w.shutdown(this.slot);
    const until = performance.now() + 5000;
    const check = () => {
      if (this.closed) return;
      if (w.backlog(this.slot) === 0 || performance.now() > until) this.socket.destroy();
      else setTimeout(check, 10).unref();
    };
    check();
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
    if (this.slot >= 0) {
      this.writerThread!.close(this.slot);
      this.slot = -1;
    }
    this.onClose(this.reason || reason);
  }
}
