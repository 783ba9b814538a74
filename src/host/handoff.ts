import type { Socket } from "node:net";
import type { Worker } from "node:cluster";
import type { Logger } from "../log/logger.js";
import type { HandoffPort } from "../session/context.js";
import type { Listening } from "../transport/listener.js";
import { sendFirst, startReading, stopReading } from "../transport/node-internals.js";
import { workerIdOf } from "../cluster/nats-bus.js";

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

  constructor(
    private readonly index: number,
    hostAddress: string,
    private readonly log: Logger,
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
  }

  /** The server is up: owners are looked up on its rings, adopted connections go to its listeners. */
  serve(ownerOf: (bare: string) => string | undefined, listeners: readonly Listening[], stopping: () => boolean): void {
    this.ownerOf = ownerOf;
    this.listeners = listeners;
    this.stopping = stopping;
  }

  target(bare: string): number | null {
    if (this.stopping() || !process.connected || this.verdicts.size >= MAX_IN_FLIGHT) return null;
    return otherWorkerOfHost(this.ownerOf(bare), this.prefix, this.index);
  }

  offer(socket: Socket, to: number, listener: number, state: unknown, verdict: (moved: boolean) => void): void {
    const id = ++this.seq;
    this.verdicts.set(id, verdict);
    // keepOpen: this descriptor stays open (and not read) until the primary says `moved`.
    send(process, { sbHandoff: "offer", id, to, listener, state }, socket, true, (e) => {
      if (e !== null) this.settle(id, false);
    });
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
        if (!this.listeners[h.listener].adopt(h.socket, h.state)) {
          // The listener closed between `have` and `go` (a stop began): the connection ends, as it would here.
          this.log.warn("a connection handed over arrived at a closed listener; closing it");
          h.socket.destroy();
          return;
        }
        // Node's stream thinks a read is under way (it started one when it made the socket): the handle reads again.
        startReading(h.socket);
        return;
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
