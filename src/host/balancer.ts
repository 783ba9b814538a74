import { createServer, isIP, type Server as NetServer, type Socket } from "node:net";
import { lookup } from "node:dns/promises";
import type { Worker } from "node:cluster";
import type { ListenerConfig } from "../config/config.js";
import type { Logger } from "../log/logger.js";
import type { Server } from "../server/server.js";
import { bindShared, type BoundHandle } from "../transport/node-internals.js";

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
 * it holds fewer than its *ceiling*: the fewest any other running worker reported, plus a margin (1, or a
 * sixteenth of the mean, so that in a storm the workers rarely wait for each other's reports). At its ceiling a
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
/** worker → primary: sockets open now; whether it holds the listening sockets of giving `gen`. */
interface Load {
  sbLoad: true;
  open: number;
  holding: boolean;
  gen: number;
}

/** A worker's load report when its count changed: at most this often. A gate closing reports at once. */
const REPORT_MS = 20;
/** Unchanged, a worker still reports every QUIET_MS / 2 (the primary, and the hand-off relay, hear it runs). */
const QUIET_MS = 1000;
/** The primary recomputes the ceilings this often too, for a worker that went quiet. */
const TICK_MS = 200;

/** How far past the fewest a worker may go: 1 for a few connections, a sixteenth of the mean for many. */
export const marginFor = (mean: number): number => Math.max(1, Math.floor(mean / 16));

interface Slot {
  worker: Worker;
  /** Sockets open, as last reported. */
  open: number;
  /** It holds the listening sockets (or they are on their way: given, and no report of that giving yet). */
  holding: boolean;
  /** The last giving. */
  gen: number;
  /** The ceiling last sent (undefined: none yet). */
  ceiling: number | null | undefined;
  /** When the worker last said anything. */
  heardAt: number;
}

export class Balancer {
  /** Each listener's bound socket (shared with the workers), or its accepting server (the fallback). */
  private handles: BoundHandle[] = [];
  private readonly servers: NetServer[] = [];
  private readonly slots = new Map<number, Slot>();
  private bound: Promise<void> | null = null;
  private tick: NodeJS.Timeout | null = null;
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
    const slot: Slot = { worker, open: 0, holding: false, gen: 0, ceiling: undefined, heardAt: Date.now() };
    this.slots.set(i, slot);
    worker.on("message", (m: Load) => {
      if (typeof m !== "object" || m === null || this.slots.get(i) !== slot) return;
      slot.heardAt = Date.now();
      if (m.sbLoad !== true) return;
      slot.open = m.open;
      // A report from before the last giving arrived says nothing of what it holds now.
      if (m.gen === slot.gen) slot.holding = m.holding;
      this.rebalance();
    });
    this.rebalance();
  }

  /** Worker `i` died or stops: its ceiling no longer bounds the others (what it did not accept is in the kernel's queue). */
  gone(i: number): void {
    if (this.slots.delete(i)) this.rebalance();
  }

  /** Open sockets per worker index, as last reported. */
  loads(): Map<number, number> {
    return new Map([...this.slots].map(([i, s]) => [i, s.open]));
  }

  /** Sends each worker its ceiling, and the listening sockets to those below it that do not hold them. */
  private rebalance(): void {
    if (this.handles.length === 0) return;
    const quietBefore = Date.now() - QUIET_MS;
    const live = [...this.slots.values()].filter((s) => s.worker.isConnected() && s.heardAt >= quietBefore);
    const mean = live.reduce((n, s) => n + s.open, 0) / Math.max(1, live.length);
    const margin = marginFor(mean);
    for (const s of this.slots.values()) {
      if (!s.worker.isConnected()) continue;
      let fewest = Infinity;
      for (const o of live) if (o !== s && o.open < fewest) fewest = o.open;
      const ceiling = fewest === Infinity ? null : fewest + margin;
      if (ceiling !== s.ceiling) {
        s.ceiling = ceiling;
        s.worker.send({ sbCeil: ceiling } satisfies Ceiling, undefined, undefined, () => {});
      }
      if (!s.holding && live.includes(s) && (ceiling === null || s.open < ceiling)) this.give(s);
    }
  }

  private give(s: Slot): void {
    s.holding = true;
    s.gen++;
    // A failed send is a worker that died: its "exit" (gone) takes it out.
    this.handles.forEach((h, k) => s.worker.send({ sbListen: k, gen: s.gen } satisfies Give, h as never, undefined, () => {}));
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

/**
 * In a worker: accept from the listening sockets the primary gives, within the ceiling it sets, and report the
 * load. Returns close(): no more accepting here (the worker stops).
 */
export function acceptShared(server: Server, log: Logger): { close(): void } {
  const held: (NetServer | null)[] = server.listeners.map(() => null);
  let ceiling = Infinity;
  let gen = 0;
  let closed = false;
  const open = () => server.listeners.reduce((n, l) => n + l.openSockets, 0);
  const holding = () => held.some((s) => s !== null);

  let last = "";
  let lastAt = 0;
  const report = (now = false) => {
    const n = open();
    const h = holding();
    const key = `${n} ${h} ${gen}`;
    const t = Date.now();
    if (!process.connected || (!now && key === last && t - lastAt < QUIET_MS / 2)) return;
    last = key;
    lastAt = t;
    process.send!({ sbLoad: true, open: n, holding: h, gen } satisfies Load, undefined, undefined, () => {});
  };
  const shut = () => {
    for (let k = 0; k < held.length; k++) {
      held[k]?.close();
      held[k] = null;
    }
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
      if (closed || l === undefined || held[m.sbListen] !== null || open() >= ceiling) {
        h.close();
        atCeiling();
        report(true);
        return;
      }
      const k = m.sbListen;
      const s = createServer((socket) => {
        l.accept(socket);
        atCeiling();
      });
      s.on("error", (e) => log.error("accepting", { protocol: l.config.protocol, transport: l.config.transport, error: e.message }));
      held[k] = s;
      s.listen(h);
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
