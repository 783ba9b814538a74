import type { Socket } from "node:net";
import type { Worker } from "node:cluster";
import type { Logger } from "../log/logger.js";
import type { HandoffPort } from "../session/context.js";
import type { Listening } from "../transport/listener.js";
import { sendFirst, startReading, stopReading } from "../transport/node-internals.js";
import { workerIdOf } from "../cluster/nats-bus.js";
import { FdChannel } from "../transport/fd-channel.js";

/*
 * Connections on their owner (cluster.handoff, docs/architecture.md): a plain
 * TCP connection moves, after SASL, from the worker that accepted it to the
 * worker of this host that owns its user. node:cluster workers pass
 * descriptors only through the primary, so the socket goes source → primary
 * → owner, and the move is decided in the primary, in two steps, so that the
 * connection is never lost and never read by two processes:
 *
 *   source  --offer+socket-->  primary  --adopt+socket-->  owner
 *   source  <--moved-------    primary  <--have---------   owner   (owner holds it, not reading)
 *                              primary  --go----------->   owner   (owner reads it from here on)
 *
 * The source stopped reading before the offer and keeps its own descriptor
 * (keepOpen) until `moved`; `stay` instead (the owner is gone, refused, did
 * not answer in ADOPT_MS, the send failed) and it reads the connection again
 * itself. The primary and the owner stop reading a socket the moment it
 * arrives (Node starts reading any socket it receives); what Node may have
 * read before that travels on as the protocol's unparsed input. An owner
 * that says `have` after the primary gave up on it is told `drop`: it closes
 * its descriptor, which leaves the connection open in the source.
 *
 * That path passes one descriptor per round trip on each channel and waits
 * for the receiving event loop to acknowledge it: in a login storm 30-50 moves
 * a second per owner. Where the optional addon is built, the workers pass
 * descriptors to each other directly (FdChannel, Unix seqpacket sockets in a
 * private directory the primary makes), with the same two steps and the
 * source as the judge, since no primary sees the move:
 *
 *   source  --offer+socket-->  owner    (the owner holds it, not reading)
 *   source  <--have----------  owner
 *   source  --go------------>  owner    (the owner reads it from here on)
 *
 * The source keeps its descriptor until it sends `go`, and sends it only
 * within ADOPT_MS of its offer; `refuse`, or no `have` in time, and it reads
 * the connection again itself (a late `have` gets `drop`). An owner that holds
 * a socket for HOLD_MS without `go` or `drop` (its source died) closes its
 * copy, after taking any packet already sent to it. Where the direct send
 * fails (the owner not listening, its buffer full) the offer takes the
 * primary's path.
 */

/** The primary waits this long for the owner's `have`; then the connection stays where it is. */
const ADOPT_MS = 1000;
/** An owner the primary has not heard from for this long (stopped, stuck) is not offered connections: they stay at once. */
const SILENT_MS = 1000;
/**
 * Hand-offs a worker has under way at once; past it a login stays where it is (a login waits for its verdict,
 * and a worker that cannot get verdicts quickly should not make more of them wait). 8 until the workers accepted
 * themselves (session 18): a storm's logins now reach SASL together, and 8 kept a third of them off their owner.
 */
const MAX_IN_FLIGHT = 64;
/** Hand-offs the primary has under way to one owner at once (several sources); past it, stay. */
const MAX_PENDING_PER_OWNER = 2 * MAX_IN_FLIGHT;
/** Direct hand-offs (FdChannel) a worker has under way at once: nothing queues behind them. */
const MAX_DIRECT_IN_FLIGHT = 512;
/** An owner holds a socket offered directly this long for its `go` (the source decides within ADOPT_MS). */
const HOLD_MS = 3 * ADOPT_MS;

/** The packets of a direct hand-off (JSON). `pid` tells a source's incarnations apart; `from`/`owner`: who sent it. */
type Direct =
  | { t: "offer"; id: number; from: number; pid: number; listener: number; state: unknown }
  | { t: "have" | "refuse"; id: number; pid: number; owner: number }
  | { t: "go" | "drop"; id: number; pid: number; from: number };

function parseDirect(data: Buffer): Direct | null {
  try {
    const m = JSON.parse(data.toString("utf8")) as Direct;
    return typeof m === "object" && m !== null && typeof m.t === "string" && typeof m.id === "number" && typeof m.pid === "number" ? m : null;
  } catch {
    return null;
  }
}

/** A direct offer's at the source: waiting for the owner's answer. */
interface Offered {
  to: number;
  timer: NodeJS.Timeout;
  verdict: (moved: boolean) => void;
}

/** A socket offered directly, at the owner: held, not reading, until `go` or `drop`. */
interface Holding {
  socket: Socket;
  listener: number;
  state: unknown;
  timer: NodeJS.Timeout;
}

type Msg =
  | { sbHandoff: "offer"; id: number; to: number; listener: number; state: unknown }
  | { sbHandoff: "adopt"; key: string; listener: number; state: unknown }
  | { sbHandoff: "have" | "refuse" | "go" | "drop"; key: string }
  | { sbHandoff: "moved" | "stay"; id: number };

const isMsg = (m: unknown): m is Msg => typeof m === "object" && m !== null && typeof (m as { sbHandoff?: unknown }).sbHandoff === "string";

/** Bytes Node read into a received socket before it was stopped, for the protocol's input (base64, as its state carries them). */
function alreadyRead(socket: Socket): string[] {
  const out: string[] = [];
  // read() only when something is buffered: otherwise it could ask the handle to read again.
  if (socket.readableLength === 0) return out;
  for (let b = socket.read() as Buffer | null; b !== null; b = socket.read() as Buffer | null) out.push(b.toString("base64"));
  return out;
}

/** `state` with more unparsed input appended (the protocol's state carries it as `chunks`). */
function withInput(state: unknown, more: string[]): unknown {
  if (more.length === 0) return state;
  const s = state as { chunks?: unknown };
  return { ...s, chunks: [...(Array.isArray(s.chunks) ? s.chunks : []), ...more] };
}

/**
 * Every message of a hand-off goes ahead of those Node.js holds back on the channel (sendFirst): Node passes one
 * descriptor per round trip and queues everything behind it, and the primary's channel to a worker carries other
 * descriptors (until session 18 every new connection, thousands in a login storm: a verdict took seconds behind them,
 * benchmarks.md, "Connections on their owner in a login storm"; now copies of the listening sockets, balancer.ts).
 * Ahead of them it waits for one acknowledgement at most.
 */
const send = (to: NodeJS.Process | Worker, m: Msg, socket?: Socket, keepOpen = false, done: (e: Error | null) => void = () => {}): void => {
  try {
    // A failed send (the other side gone) calls back with the error.
    sendFirst(to === process ? process : (to as Worker).process, m, socket, socket === undefined ? {} : { keepOpen }, done);
  } catch (e) {
    done(e as Error);
  }
};

/**
 * The index of `owner` when it is a worker of this host (its id is `prefix` and a number, workerIdOf) other
 * than `self`; else null: an owner on another host, or this worker, or none known, keeps the connection here.
 */
export function otherWorkerOfHost(owner: string | undefined, prefix: string, self: number): number | null {
  if (owner === undefined || !owner.startsWith(prefix)) return null;
  const rest = owner.slice(prefix.length);
  if (!/^\d+$/.test(rest)) return null;
  const i = Number(rest);
  return i !== self ? i : null;
}

/** In a worker: both ends of a hand-off (HandoffPort for the protocol), over the IPC channel to the primary. */
export class WorkerHandoff implements HandoffPort {
  private readonly prefix: string;
  private seq = 0;
  private readonly verdicts = new Map<number, (moved: boolean) => void>();
  /** Sockets received and not yet adopted (waiting for `go`), by the primary's key. */
  private readonly held = new Map<string, { socket: Socket; listener: number; state: unknown }>();
  private ownerOf: (bare: string) => string | undefined = () => undefined;
  private listeners: readonly Listening[] = [];
  private stopping = () => true;

  /** The direct path between this host's workers (null: only the primary's). */
  private direct: FdChannel | null = null;
  private readonly offered = new Map<number, Offered>();
  private readonly holding = new Map<string, Holding>();
  /** Owners whose last direct offer went unanswered and who have sent nothing since (stopped, stuck). */
  private readonly unanswered = new Set<number>();
  /** Direct hand-offs decided at this source (the primary counts the others): tests and logs read them. */
  directMoved = 0;
  directStayed = 0;

  constructor(
    private readonly index: number,
    hostAddress: string,
    private readonly log: Logger,
    /** The host's private directory for the direct path (SWITCHBOARD_HANDOFF_DIR); undefined: the primary's path only. */
    dir?: string,
  ) {
    // workerIdOf(host, i) is this prefix and i.
    this.prefix = workerIdOf(hostAddress, 0).slice(0, -1);
    process.on("message", (m: unknown, socket: unknown) => {
      if (isMsg(m)) this.onMessage(m, socket as Socket | undefined);
    });
    // The primary is gone: nobody will answer; the process stops anyway (host.ts), connections stay until then.
    process.on("disconnect", () => {
      for (const v of [...this.verdicts.values()]) v(false);
      this.verdicts.clear();
    });
    if (dir !== undefined) {
      const c = FdChannel.open(dir, index, (data, socket) => this.onDirect(data, socket));
      if (typeof c === "string") log.info("connection hand-offs go through the primary", { why: c });
      else this.direct = c;
    }
  }

  /** Whether hand-offs go straight to their owner (the addon's FdChannel). */
  get directPath(): boolean {
    return this.direct !== null;
  }

  /** Stops the direct path: sockets held for a `go` are closed (their sources still have them). */
  close(): void {
    for (const h of this.holding.values()) {
      clearTimeout(h.timer);
      h.socket.destroy();
    }
    this.holding.clear();
    for (const o of [...this.offered.keys()]) this.settleDirect(o, false);
    this.direct?.close();
    this.direct = null;
  }

  /** The server is up: owners are looked up on its rings, adopted connections go to its listeners. */
  serve(ownerOf: (bare: string) => string | undefined, listeners: readonly Listening[], stopping: () => boolean): void {
    this.ownerOf = ownerOf;
    this.listeners = listeners;
    this.stopping = stopping;
  }

  target(bare: string): number | null {
    if (this.stopping()) return null;
    // Room on either path: the direct one, or the primary's.
    const direct = this.direct !== null && this.offered.size < MAX_DIRECT_IN_FLIGHT;
    if (!direct && !(process.connected && this.verdicts.size < MAX_IN_FLIGHT)) return null;
    return otherWorkerOfHost(this.ownerOf(bare), this.prefix, this.index);
  }

  offer(socket: Socket, to: number, listener: number, state: unknown, verdict: (moved: boolean) => void): void {
    const id = ++this.seq;
    if (this.offerDirect(id, socket, to, listener, state, verdict)) return;
    if (this.verdicts.size >= MAX_IN_FLIGHT || !process.connected) return verdict(false);
    this.verdicts.set(id, verdict);
    // keepOpen: this descriptor stays open (and not read) until the primary says `moved`.
    send(process, { sbHandoff: "offer", id, to, listener, state }, socket, true, (e) => {
      if (e !== null) this.settle(id, false);
    });
  }

  /** The direct path: true once the offer is in the owner's buffer (the verdict follows), false to take the primary's. */
  private offerDirect(id: number, socket: Socket, to: number, listener: number, state: unknown, verdict: (moved: boolean) => void): boolean {
    const d = this.direct;
    // An owner that left the last offer unanswered and said nothing since would make this login wait ADOPT_MS for nothing.
    if (d === null || this.offered.size >= MAX_DIRECT_IN_FLIGHT || this.unanswered.has(to)) return false;
    const packet: Direct = { t: "offer", id, from: this.index, pid: process.pid, listener, state };
    if (d.send(to, Buffer.from(JSON.stringify(packet)), socket) !== 0) return false;
    const timer = setTimeout(() => {
      if (!this.offered.has(id)) return;
      this.unanswered.add(to);
      this.settleDirect(id, false);
    }, ADOPT_MS);
    this.offered.set(id, { to, timer, verdict });
    return true;
  }

  private settleDirect(id: number, moved: boolean): void {
    const o = this.offered.get(id);
    if (o === undefined) return;
    this.offered.delete(id);
    clearTimeout(o.timer);
    if (moved) this.directMoved++;
    else this.directStayed++;
    o.verdict(moved);
  }

  private sendDirect(to: number, m: Direct): boolean {
    return this.direct !== null && this.direct.send(to, Buffer.from(JSON.stringify(m))) === 0;
  }

  private onDirect(data: Buffer, socket: Socket | null): void {
    const m = parseDirect(data);
    if (m === null) {
      // Only this host's workers can reach the directory: a packet this worker cannot read is a bug, and costs only itself.
      this.log.error("a direct hand-off packet this worker cannot read; dropped");
      socket?.destroy();
      return;
    }
    switch (m.t) {
      case "offer": {
        this.unanswered.delete(m.from);
        if (socket === null) return void this.sendDirect(m.from, { t: "refuse", id: m.id, pid: m.pid, owner: this.index });
        const l = this.listeners[m.listener];
        if (l === undefined || !l.open || this.stopping() || this.holding.size >= MAX_DIRECT_IN_FLIGHT * 4) {
          // Our descriptor only: the source still holds the connection.
          socket.destroy();
          return void this.sendDirect(m.from, { t: "refuse", id: m.id, pid: m.pid, owner: this.index });
        }
        const key = `${m.from}.${m.pid}.${m.id}`;
        const timer = setTimeout(() => {
          // A `go` already sent must not be overtaken by this deadline: take what has arrived first.
          this.direct?.poll();
          const h = this.holding.get(key);
          if (h === undefined) return;
          this.holding.delete(key);
          h.socket.destroy();
        }, HOLD_MS);
        this.holding.set(key, { socket, listener: m.listener, state: m.state, timer });
        if (!this.sendDirect(m.from, { t: "have", id: m.id, pid: m.pid, owner: this.index })) {
          // The source cannot hear us (gone, or its buffer full): it will stay at its deadline.
          clearTimeout(timer);
          this.holding.delete(key);
          socket.destroy();
        }
        return;
      }
      case "have":
      case "refuse": {
        socket?.destroy();
        this.unanswered.delete(m.owner);
        const o = m.pid === process.pid ? this.offered.get(m.id) : undefined;
        if (m.t === "refuse" || o === undefined || o.to !== m.owner) {
          // Too late (this source already stayed), or for an earlier incarnation of this worker: the owner lets go.
          if (m.t === "have") this.sendDirect(m.owner, { t: "drop", id: m.id, pid: m.pid, from: this.index });
          if (o !== undefined && o.to === m.owner) this.settleDirect(m.id, false);
          return;
        }
        // `go` in the owner's buffer, or stay: without it the owner never reads the socket and lets go at HOLD_MS.
        this.settleDirect(m.id, this.sendDirect(m.owner, { t: "go", id: m.id, pid: m.pid, from: this.index }));
        return;
      }
      case "go":
      case "drop": {
        socket?.destroy();
        this.unanswered.delete(m.from);
        const key = `${m.from}.${m.pid}.${m.id}`;
        const h = this.holding.get(key);
        if (h === undefined) return;
        this.holding.delete(key);
        clearTimeout(h.timer);
        if (m.t === "drop") return void h.socket.destroy();
        this.adopt(h.socket, h.listener, h.state);
        return;
      }
      default:
        socket?.destroy();
        return;
    }
  }

  /** A connection this worker now reads: its listener takes it, and the protocol continues from `state`. */
  private adopt(socket: Socket, listener: number, state: unknown): void {
    const l = this.listeners[listener];
    if (l === undefined || !l.adopt(socket, state)) {
      // The listener closed between the offer and `go` (a stop began): the connection ends, as it would here.
      this.log.warn("a connection handed over arrived at a closed listener; closing it");
      socket.destroy();
      return;
    }
    // A socket from the IPC channel: Node started a read when it made it, and the primary stopped it. From the
    // direct path: none started. Either way the handle reads from here.
    startReading(socket);
  }

  private settle(id: number, moved: boolean): void {
    const v = this.verdicts.get(id);
    if (v === undefined) return;
    this.verdicts.delete(id);
    v(moved);
  }

  private onMessage(m: Msg, socket: Socket | undefined): void {
    switch (m.sbHandoff) {
      case "moved":
      case "stay":
        return this.settle(m.id, m.sbHandoff === "moved");
      case "adopt": {
        if (socket === undefined) return send(process, { sbHandoff: "refuse", key: m.key });
        // Before any read: Node started reading the socket it made for the descriptor.
        const stopped = stopReading(socket);
        const l = this.listeners[m.listener];
        if (!stopped || l === undefined || !l.open || this.stopping()) {
          // Our descriptor only: the source still holds the connection.
          socket.destroy();
          return send(process, { sbHandoff: "refuse", key: m.key });
        }
        this.held.set(m.key, { socket, listener: m.listener, state: withInput(m.state, alreadyRead(socket)) });
        return send(process, { sbHandoff: "have", key: m.key });
      }
      case "go": {
        const h = this.held.get(m.key);
        if (h === undefined) return;
        this.held.delete(m.key);
        return this.adopt(h.socket, h.listener, h.state);
      }
      case "drop": {
        this.held.get(m.key)?.socket.destroy();
        this.held.delete(m.key);
        return;
      }
      default:
        return;
    }
  }
}

interface Pending {
  from: number;
  id: number;
  to: number;
  timer: NodeJS.Timeout;
}

/** In the primary: passes offered sockets on to their owners and decides each hand-off (see the top of this file). */
export class HandoffRelay {
  private readonly workers = new Map<number, Worker>();
  private readonly pending = new Map<string, Pending>();
  /** When each worker last said anything. */
  private readonly heard = new WeakMap<Worker, number>();
  private seq = 0;
  /** Hand-offs decided: moved to their owner, or stayed (for the primary's log at stop; tests read it). */
  moved = 0;
  stayed = 0;

  constructor(private readonly log: Logger) {}

  /** Worker `i` runs (a fork, or its restart). */
  watch(i: number, w: Worker): void {
    this.workers.set(i, w);
    this.heard.set(w, Date.now());
    w.on("message", (m: unknown, socket: unknown) => {
      // Any message: a worker reports its load at least every half second (balancer.ts), so silence means stopped or stuck.
      this.heard.set(w, Date.now());
      if (isMsg(m)) this.onMessage(i, w, m, socket as Socket | undefined);
    });
    // After "disconnect" no message of that worker can come: what it was to adopt stays with its source.
    w.on("disconnect", () => {
      if (this.workers.get(i) === w) this.workers.delete(i);
      for (const [key, p] of [...this.pending]) if (p.to === i) this.decide(key, false);
    });
  }

  private onMessage(from: number, w: Worker, m: Msg, socket: Socket | undefined): void {
    switch (m.sbHandoff) {
      case "offer": {
        const reply = (moved: boolean) => send(w, { sbHandoff: moved ? "moved" : "stay", id: m.id });
        if (socket === undefined) return reply(false);
        // At once: Node reads every socket it receives, and this copy must not take the client's bytes.
        const stopped = stopReading(socket);
        const state = withInput(m.state, alreadyRead(socket));
        const owner = this.workers.get(m.to);
        // An owner silent for a while would keep the login waiting ADOPT_MS for nothing: it stays at once.
        const silent = owner === undefined || (this.heard.get(owner) ?? 0) < Date.now() - SILENT_MS;
        if (!stopped || owner === undefined || !owner.isConnected() || silent || m.to === from || this.pendingTo(m.to) >= MAX_PENDING_PER_OWNER) {
          socket.destroy();
          this.stayed++;
          return reply(false);
        }
        const key = `${from}.${m.id}.${++this.seq}`;
        this.pending.set(key, { from, id: m.id, to: m.to, timer: setTimeout(() => this.decide(key, false), ADOPT_MS) });
        // keepOpen false: Node closes this copy once the owner has it (or at once when the send fails).
        send(owner, { sbHandoff: "adopt", key, listener: m.listener, state }, socket, false, (e) => {
          if (e !== null) this.decide(key, false);
        });
        return;
      }
      case "have": {
        if (!this.pending.has(m.key)) return send(w, { sbHandoff: "drop", key: m.key });
        this.decide(m.key, true);
        return;
      }
      case "refuse":
        return this.decide(m.key, false);
      default:
        return;
    }
  }

  private pendingTo(i: number): number {
    let n = 0;
    for (const p of this.pending.values()) if (p.to === i) n++;
    return n;
  }

  private decide(key: string, moved: boolean): void {
    const p = this.pending.get(key);
    if (p === undefined) return;
    this.pending.delete(key);
    clearTimeout(p.timer);
    if (moved) {
      this.moved++;
      const owner = this.workers.get(p.to);
      if (owner !== undefined) send(owner, { sbHandoff: "go", key });
    } else this.stayed++;
    const source = this.workers.get(p.from);
    if (source !== undefined) send(source, { sbHandoff: moved ? "moved" : "stay", id: p.id });
    else if (!moved) this.log.warn("a connection hand-off failed after its worker died", { worker: p.from });
  }
}
