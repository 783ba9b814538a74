import { createServer, type Server as NetServer, type Socket } from "node:net";
import type { Worker } from "node:cluster";
import type { ListenerConfig } from "../config/config.js";
import type { Logger } from "../log/logger.js";
import type { Server } from "../server/server.js";

/*
 * A host's listeners under several workers. node:cluster's round-robin hands
 * each connection to the next live worker: after a crash, every client that
 * reconnects while its worker restarts lands on the survivor, and later ones
 * are split evenly, so the survivor keeps the surplus for good. Here the
 * primary accepts (pauseOnConnect: not a byte is read in the primary) and
 * hands each socket over IPC, as node:cluster does, but to the worker with the
 * fewest connections: a restarted worker takes new connections until the
 * counts are even. The primary keeps its copy of each socket until the worker
 * acknowledges it, and hands it to another worker if that one died meanwhile
 * (node:cluster's own hand-off is acknowledged too: the same IPC cost). Each worker reports its open connections and how many
 * sockets it has received; the primary adds those handed and not yet received.
 */

/** primary → worker, with the socket: which of config.listeners accepted it; `seq` for the acknowledgement. */
interface Handed {
  sbConn: number;
  seq: number;
}
/** worker → primary: socket `seq` arrived (the primary closes its copy of the descriptor). */
interface Got {
  sbGot: number;
}
/** worker → primary: connections open now, sockets received so far. */
interface Load {
  sbLoad: true;
  open: number;
  received: number;
}

/** How often a worker reports its load; unchanged, it still reports every QUIET_MS / 2 (the primary hears it is running). */
const REPORT_MS = 200;
/** A socket handed and not acknowledged for this long marks its worker as not taking connections now. */
const STALLED_MS = 500;
/** A worker not heard from for this long is stopped or stuck: it gets no new connection while another can take it. */
const QUIET_MS = 1000;

interface Slot {
  worker: Worker;
  /** Handed and not yet acknowledged, by seq: the listener's index and the primary's copy of the socket. */
  unacked: Map<number, { index: number; socket: Socket; at: number }>;
  open: number;
  handed: number;
  received: number;
  /** When the worker last said anything (a report, an acknowledgement). */
  heardAt: number;
}

export class Balancer {
  private readonly servers: NetServer[] = [];
  private readonly slots = new Map<number, Slot>();
  private bound: Promise<void> | null = null;
  /** Where the scan for the least loaded starts: equal loads are taken in turn. */
  private next = 0;
  private seq = 0;

  constructor(
    private readonly listeners: readonly ListenerConfig[],
    private readonly log: Logger,
  ) {}

  /** Binds every listener, once (at the first worker that serves: until then connections are refused, not held). */
  bind(): Promise<void> {
    this.bound ??= Promise.all(this.listeners.map((l, i) => this.listen(l, i))).then(() => undefined);
    return this.bound;
  }

  private listen(l: ListenerConfig, index: number): Promise<void> {
    const server = createServer({ pauseOnConnect: true }, (socket) => this.hand(index, socket));
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(l.port, l.host, () => {
        server.removeListener("error", reject);
        const a = server.address();
        this.log.info("listening", { protocol: l.protocol, transport: l.transport, host: l.host, port: typeof a === "object" && a !== null ? a.port : l.port });
        resolve();
      });
    });
  }

  /** Worker `i` serves: it gets connections from now on. */
  serve(i: number, worker: Worker): void {
    const slot: Slot = { worker, unacked: new Map(), open: 0, handed: 0, received: 0, heardAt: Date.now() };
    this.slots.set(i, slot);
    worker.on("message", (m: Load | Got) => {
      if (typeof m !== "object" || m === null) return;
      slot.heardAt = Date.now();
      if ("sbGot" in m) {
        slot.unacked.get(m.sbGot)?.socket.destroy();
        slot.unacked.delete(m.sbGot);
      } else if (m.sbLoad === true) {
        slot.open = m.open;
        slot.received = m.received;
      }
    });
  }

  /** Worker `i` died or stops: no more connections for it; those it did not acknowledge go to another. */
  gone(i: number): void {
    const slot = this.slots.get(i);
    if (slot === undefined) return;
    this.slots.delete(i);
    for (const { index, socket } of slot.unacked.values()) this.hand(index, socket);
    slot.unacked.clear();
  }

  /** Open connections per worker index, as the primary counts them. */
  loads(): Map<number, number> {
    return new Map([...this.slots].map(([i, s]) => [i, load(s)]));
  }

  private hand(index: number, socket: Socket): void {
    const slot = this.pick();
    if (slot === undefined) {
      // No worker serves now (all restarting): as if nobody listened.
      socket.destroy();
      return;
    }
    const seq = ++this.seq;
    slot.handed++;
    slot.unacked.set(seq, { index, socket, at: Date.now() });
    // A failed send is a worker that died: its "exit" (gone) hands the socket on.
    slot.worker.send({ sbConn: index, seq } satisfies Handed, socket, { keepOpen: true }, () => {});
  }

  private pick(): Slot | undefined {
    const all = [...this.slots.values()];
    let best: Slot | undefined;
    let stalled: Slot | undefined;
    const now = Date.now();
    const late = now - STALLED_MS;
    for (let k = 0; k < all.length; k++) {
      const s = all[(this.next + k) % all.length];
      if (!s.worker.isConnected()) continue;
      // A worker that has not taken a socket handed to it a while ago, or has said nothing lately, is stopped or
      // overloaded: its reports are stale (the clients that left it are still counted, or not), so it gets new
      // connections only if all are.
      const oldest = s.unacked.values().next().value;
      if ((oldest !== undefined && oldest.at < late) || s.heardAt < now - QUIET_MS) {
        if (stalled === undefined || load(s) < load(stalled)) stalled = s;
        continue;
      }
      if (best === undefined || load(s) < load(best)) best = s;
    }
    this.next = (this.next + 1) % Math.max(1, all.length);
    return best ?? stalled;
  }

  /** No new connections (the ports are released); handed ones stay with their workers. */
  close(): void {
    for (const s of this.servers) s.close();
  }
}

const load = (s: Slot): number => s.open + Math.max(0, s.handed - s.received);

/** In a worker: take the sockets the primary hands over, and report the load. */
export function takeHanded(server: Server): void {
  let received = 0;
  process.on("message", (m: Handed, socket: unknown) => {
    if (typeof m !== "object" || m === null || typeof m.sbConn !== "number") return;
    received++;
    if (process.connected) process.send!({ sbGot: m.seq } satisfies Got, undefined, undefined, () => {});
    const l = server.listeners[m.sbConn];
    if (l === undefined) (socket as Socket | undefined)?.destroy();
    else if (socket !== undefined) l.accept(socket as Socket);
  });
  let last = "";
  let lastAt = 0;
  const report = () => {
    const open = server.listeners.reduce((n, l) => n + l.connections, 0);
    const key = `${open} ${received}`;
    const now = Date.now();
    if ((key === last && now - lastAt < QUIET_MS / 2) || !process.connected) return;
    last = key;
    lastAt = now;
    process.send!({ sbLoad: true, open, received } satisfies Load, undefined, undefined, () => {});
  };
  setInterval(report, REPORT_MS).unref();
}
