import { createServer, isIP, type Server as NetServer, type Socket } from "node:net";
import { lookup } from "node:dns/promises";
import type { Worker } from "node:cluster";
import type { ListenerConfig } from "../config/config.js";
import type { Logger } from "../log/logger.js";
import type { Server } from "../server/server.js";
import { bindShared, sendFirst, type BoundHandle } from "../transport/node-internals.js";

/*
 * A host's listeners under several workers (docs/architecture.md, "How connections reach a worker").
 *
 * The primary binds each listener's socket and never accepts from it; it sends the socket to every worker
 * once, and the workers accept from it themselves, as node:cluster's SCHED_NONE does: a new connection waits in
 * the kernel's queue only until a worker's event loop next turns, where handing each one over Node's IPC channel
 * (one descriptor per round trip) kept a login storm's connections waiting seconds.
 *
 * The balance node:cluster's round-robin lacks (a restarted worker takes new connections until the counts are
 * even; a stopped one takes none) comes from a gate. Each worker counts its open sockets and may accept while
 * it holds fewer than its *ceiling*: the fewest any other running worker reported, plus a margin (marginFor). At its ceiling a
 * worker closes its copies of the listening sockets, at once, in the same turn as the accept, and reports; it
 * gets them again from the primary when the others' counts have raised its ceiling. The kernel's queue belongs
 * to the socket, which the primary holds, so a connection not yet accepted waits there, whoever holds a copy:
 * a worker that dies takes with it only the connections it had accepted, as a worker's death always did. A
 * worker the primary has not heard from for QUIET_MS (stopped, stuck) counts for no other's ceiling, and one
 * not accepting because it is stopped leaves the queue to the others. The worker with the fewest is always
 * below its ceiling, so some worker always accepts (after one report at most).
 */

/** primary → worker: the ceiling (null: none, it is the only worker running). */
interface Ceiling {
  sbCeil: number | null;
}
/** primary → worker, with a listener's bound socket: listen on it for config.listeners[sbListen]; `gen` names this giving. */
interface Give {
  sbListen: number;
  gen: number;
}
/** primary → worker, with an accepted socket: only where this Node.js cannot share a bound socket (bindShared null). */
interface Handed {
  sbConn: number;
}
/** worker → primary: sockets open now, and accepted so far; whether it holds the listening sockets of giving `gen`. */
interface Load {
  sbLoad: true;
  open: number;
  accepted: number;
  holding: boolean;
  /** It listens on every listener (at least one copy of each). */
  all: boolean;
  gen: number;
}

/** A worker's load report when its count changed: at most this often. A gate closing reports at once. */
const REPORT_MS = 20;
/** Unchanged, a worker still reports every QUIET_MS / 2 (the primary, and the hand-off relay, hear it runs). */
const QUIET_MS = 1000;
/**
 * Copies (descriptors) of each listening socket a worker listens on. libuv accepts one connection per ready
 * descriptor per turn of the event loop (measured: a worker whose turns take 2 ms accepts 500 a second from one
 * descriptor, while 2,000 arrive), and in a login storm a worker's turns are that long: each copy is one more
 * accept per turn. An idle worker pays for it with COPIES − 1 accept calls that find nothing, per connection.
 */
const COPIES = 32;
/**
 * The kernel's queue of connections not yet accepted (capped by net.core.somaxconn). Node's default, 511, fills in
 * half a second of a login storm that the workers serve more slowly than it comes; past it the kernel drops the
 * handshake and the client tries again after 1, 3, 7 s.
 */
const BACKLOG = 4096;
/** The primary recomputes the ceilings this often too, for a worker that went quiet. */
const TICK_MS = 200;

/** How long the workers' reports take to raise each other's ceilings, generously: the margin covers what arrives meanwhile. */
const CATCH_UP_MS = 500;
/** The accept rate is sampled over this much time at least, and counts when this many samples in a row show it. */
const RATE_MS = 100;
const SUSTAINED = 3;

/**
 * How far past the fewest a worker may go: 1 for a few connections; in a storm, what arrives while the reports
 * travel (else the workers would take turns, each waiting for the other's report); and an eighth of the mean.
 */
export const marginFor = (mean: number, perSecond: number): number =>
  Math.max(1, Math.floor(mean / 8), Math.floor((perSecond * CATCH_UP_MS) / 1000));

interface Slot {
  worker: Worker;
  /** Sockets open, and accepted so far, as last reported. */
  open: number;
  accepted: number;
  /** It listens (or copies are on their way: given, and no report of that giving yet). */
  holding: boolean;
  /** The last giving. */
  gen: number;
  /** The ceiling last sent (undefined: none yet). */
  ceiling: number | null | undefined;
  /** When the worker last said anything. */
  heardAt: number;
  /** Resolved once it has listened on every listener (the host's start waits for it: until then a connect is refused). */
  listening: Promise<void>;
  listened: () => void;
}

export class Balancer {
  /** Each listener's bound socket (shared with the workers), or its accepting server (the fallback). */
  private handles: BoundHandle[] = [];
  private readonly servers: NetServer[] = [];
  private readonly slots = new Map<number, Slot>();
  private bound: Promise<void> | null = null;
  private tick: NodeJS.Timeout | null = null;
  /** Connections accepted by all workers so far; at the last rate sample; the last samples; the sustained rate (per second). */
  private total = 0;
  private sampled = { at: Date.now(), total: 0 };
  private rate = 0;
  private readonly rates: number[] = [];
  /** The fallback's turn among equals. */
  private next = 0;

  constructor(
    private readonly listeners: readonly ListenerConfig[],
    private readonly log: Logger,
  ) {}

  /** Binds every listener, once (at the first worker that serves: until then connections are refused, not held). */
  bind(): Promise<void> {
    this.bound ??= Promise.all(this.listeners.map((l, i) => this.listen(l, i))).then(() => {
      this.tick = setInterval(() => this.rebalance(), TICK_MS).unref();
    });
    return this.bound;
  }

  private async listen(l: ListenerConfig, index: number): Promise<void> {
    const host = isIP(l.host) !== 0 ? l.host : (await lookup(l.host)).address;
    // libuv reports a port in use only at listen(2), which the workers do: find out here, so that the host
    // stops with "cannot listen" rather than run without the listener.
    if (l.port !== 0) await probe(host, l.port);
    const h = bindShared(host, l.port);
    if (h !== null) {
      this.handles[index] = h;
      const a: { port?: number } = {};
      h.getsockname(a);
      this.log.info("listening", { protocol: l.protocol, transport: l.transport, host: l.host, port: a.port ?? l.port });
      return;
    }
    const server = createServer({ pauseOnConnect: true }, (socket) => this.hand(index, socket));
    this.servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(l.port, host, () => {
        server.removeListener("error", reject);
        const a = server.address();
        this.log.info("listening", { protocol: l.protocol, transport: l.transport, host: l.host, port: typeof a === "object" && a !== null ? a.port : l.port });
        resolve();
      });
    });
  }

  /** Worker `i` serves: it accepts from now on, within its ceiling. */
  serve(i: number, worker: Worker): void {
    let listened = () => {};
    const listening = new Promise<void>((resolve) => (listened = resolve));
    const slot: Slot = { worker, open: 0, accepted: 0, holding: false, gen: 0, ceiling: undefined, heardAt: Date.now(), listening, listened };
    // The fallback: the primary accepts itself, so the worker takes connections from the start.
    if (this.handles.length === 0) listened();
    this.slots.set(i, slot);
    worker.on("message", (m: Load) => {
      if (typeof m !== "object" || m === null || this.slots.get(i) !== slot) return;
      slot.heardAt = Date.now();
      if (m.sbLoad !== true) return;
      slot.open = m.open;
      this.total += Math.max(0, m.accepted - slot.accepted);
      slot.accepted = m.accepted;
      // A report from before the last giving arrived says nothing of what it holds now.
      if (m.gen === slot.gen) slot.holding = m.holding;
      if (m.all) slot.listened();
      this.rebalance();
    });
    this.rebalance();
  }

  /** Resolves once worker `i` (served) listens on every listener, or at once where the primary accepts (the fallback). */
  listening(i: number): Promise<void> {
    return this.slots.get(i)?.listening ?? Promise.resolve();
  }

  /** Worker `i` died or stops: its ceiling no longer bounds the others (what it did not accept is in the kernel's queue). */
  gone(i: number): void {
    if (this.slots.delete(i)) this.rebalance();
  }

  /** Open sockets per worker index, as last reported. */
  loads(): Map<number, number> {
    return new Map([...this.slots].map(([i, s]) => [i, s.open]));
  }

  private indexOf(s: Slot): number {
    for (const [i, x] of this.slots) if (x === s) return i;
    return -1;
  }

  /** Sends each worker its ceiling, and the listening sockets to those below it that do not hold them. */
  private rebalance(): void {
    if (this.handles.length === 0) return;
    const now = Date.now();
    const dt = now - this.sampled.at;
    if (dt >= RATE_MS) {
      this.rates.push(((this.total - this.sampled.total) * 1000) / dt);
      if (this.rates.length > SUSTAINED) this.rates.shift();
      // Sustained: the lowest of the last few samples (a burst of a few connections is not a storm).
      this.rate = this.rates.length < SUSTAINED ? 0 : Math.min(...this.rates);
      this.sampled = { at: now, total: this.total };
    }
    const quietBefore = now - QUIET_MS;
    const live = [...this.slots.values()].filter((s) => s.worker.isConnected() && s.heardAt >= quietBefore);
    const mean = live.reduce((n, s) => n + s.open, 0) / Math.max(1, live.length);
    const margin = marginFor(mean, this.rate);
    for (const s of this.slots.values()) {
      if (!s.worker.isConnected()) continue;
      let fewest = Infinity;
      for (const o of live) if (o !== s && o.open < fewest) fewest = o.open;
      const ceiling = fewest === Infinity ? null : fewest + margin;
      if (ceiling !== s.ceiling) {
        s.ceiling = ceiling;
        // Ahead of the descriptors Node holds back on the channel (copies being given, hand-offs): a ceiling late by a
        // few of the worker's turns stops it while the other has long raised it.
        sendFirst(s.worker.process, { sbCeil: ceiling } satisfies Ceiling, undefined, {}, () => {});
      }
      if (!s.holding && live.includes(s) && (ceiling === null || s.open < ceiling)) this.give(s);
    }
  }

  private give(s: Slot): void {
    s.holding = true;
    s.gen++;
    // A failed send is a worker that died: its "exit" (gone) takes it out.
    const gen = s.gen;
    // One descriptor at a time (Node passes one per round trip anyway), each listener's first copy first: when the
    // worker reaches its ceiling meanwhile, what is left of this giving is not sent, and the next giving does not
    // wait behind it.
    let n = 0;
    const next = () => {
      if (n >= COPIES * this.handles.length || s.gen !== gen || !s.holding || this.slots.get(this.indexOf(s)) !== s) return;
      const k = n % this.handles.length;
      n++;
      s.worker.send({ sbListen: k, gen } satisfies Give, this.handles[k] as never, undefined, (e: Error | null) => {
        if (e === null) next();
      });
    };
    next();
  }

  /** The fallback (no shared socket on this Node.js): the primary accepts and passes the socket to the worker with the fewest. */
  private hand(index: number, socket: Socket): void {
    const all = [...this.slots.values()].filter((s) => s.worker.isConnected());
    let best: Slot | undefined;
    for (let k = 0; k < all.length; k++) {
      const s = all[(this.next + k) % all.length];
      if (best === undefined || s.open < best.open) best = s;
    }
    this.next = (this.next + 1) % Math.max(1, all.length);
    if (best === undefined) return void socket.destroy();
    best.open++;
    best.worker.send({ sbConn: index } satisfies Handed, socket, undefined, () => {});
  }

  /** No new connections: the primary's copies close, and the workers close theirs as they stop (acceptShared). */
  close(): void {
    if (this.tick !== null) clearInterval(this.tick);
    for (const h of this.handles) h.close();
    this.handles = [];
    for (const s of this.servers) s.close();
  }
}

/** Listens on host:port and closes at once: rejects with the error (EADDRINUSE, EACCES) a listen would meet. */
function probe(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen({ port, host, exclusive: true }, () => s.close(() => resolve()));
  });
}

/**
 * In a worker: accept from the listening sockets the primary gives, within the ceiling it sets, and report the
 * load. Returns close(): no more accepting here (the worker stops).
 */
export function acceptShared(server: Server, log: Logger): { close(): void } {
  /** Per listener, the copies of its socket this worker listens on. */
  const held: NetServer[][] = server.listeners.map(() => []);
  let ceiling = Infinity;
  let gen = 0;
  let closed = false;
  let accepted = 0;
  const open = () => server.listeners.reduce((n, l) => n + l.openSockets, 0);
  const holding = () => held.some((c) => c.length > 0);

  let last = "";
  let lastAt = 0;
  const report = (now = false) => {
    const n = open();
    const h = holding();
    const all = held.every((c) => c.length > 0);
    const key = `${n} ${accepted} ${h} ${all} ${gen}`;
    const t = Date.now();
    if (!process.connected || (!now && key === last && t - lastAt < QUIET_MS / 2)) return;
    last = key;
    lastAt = t;
    sendFirst(process, { sbLoad: true, open: n, accepted, holding: h, all, gen } satisfies Load, undefined, {}, () => {});
  };
  const shut = () => {
    for (const copies of held) for (const s of copies.splice(0)) s.close();
  };
  /** At the ceiling: the kernel's queue is left to the others until the primary gives the sockets again. */
  const atCeiling = () => {
    if (open() < ceiling || !holding()) return;
    shut();
    report(true);
  };

  process.on("message", (m: Ceiling | Give | Handed, handle: unknown) => {
    if (typeof m !== "object" || m === null) return;
    if ("sbCeil" in m) {
      ceiling = m.sbCeil ?? Infinity;
      atCeiling();
    } else if ("sbListen" in m) {
      const h = handle as BoundHandle | undefined;
      if (h === undefined) return;
      if (m.gen > gen) gen = m.gen;
      const l = server.listeners[m.sbListen];
      if (closed || l === undefined || held[m.sbListen].length >= COPIES || open() >= ceiling) {
        h.close();
        atCeiling();
        report(true);
        return;
      }
      const k = m.sbListen;
      const s = createServer((socket) => {
        accepted++;
        l.accept(socket);
        atCeiling();
      });
      s.on("error", (e) => log.error("accepting", { protocol: l.config.protocol, transport: l.config.transport, error: e.message }));
      held[k].push(s);
      s.listen(h, BACKLOG);
      report(true);
    } else if ("sbConn" in m) {
      const l = server.listeners[m.sbConn];
      const socket = handle as Socket | undefined;
      if (l === undefined) socket?.destroy();
      else if (socket !== undefined) l.accept(socket);
    }
  });
  const timer = setInterval(() => report(), REPORT_MS);
  timer.unref();
  return {
    close: () => {
      closed = true;
      shut();
      report(true);
    },
  };
}
