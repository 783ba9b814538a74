import { randomUUID } from "node:crypto";
import { connect, Events, type NatsConnection } from "nats";
import type { Membership } from "../router/router.js";
import type { PayloadCodecs } from "../envelope/payload-codec.js";
import type { Logger } from "../log/logger.js";
import type { BusEndpoint, BusMessage, ClusterBus, MembershipListener } from "./bus.js";
import { BusWire } from "./wire.js";
import { OpsResponder, serverRtt, type OpsSource } from "./ops.js";

export interface NatsBusOptions {
  servers: string[];
  /** Subject prefix: clusters sharing a NATS server keep apart by it. */
  subject: string;
  heartbeatMs: number;
  vnodes: number;
  workerId: string;
  hostAddress: string;
}

/** What each worker says on `<subject>.hb`. `inc` changes when a worker restarts under the same id. */
interface Beat {
  id: string;
  host: string;
  inc: string;
  up: boolean;
  /** A newcomer asks everyone to beat at once instead of on their next tick. */
  hello?: boolean;
}

interface Member {
  host: string;
  inc: string;
  seen: number;
}

/** A batch is published once it reaches this size (NATS's default max_payload is 1 MiB). */
const BATCH_BYTES = 256 * 1024;

/** Worker ids become subject tokens: no wildcards, separators or spaces. */
const WORKER_ID = /^[A-Za-z0-9_\-:]+$/;

/** Worker `index` of the host at `hostAddress`, as a subject token: 10.0.0.7 → 10_0_0_7-w3. */
export function workerIdOf(hostAddress: string, index: number): string {
  return `${hostAddress.replace(/[^A-Za-z0-9_\-:]/g, "_")}-w${index}`;
}

/**
 * The bus across processes and hosts: each worker listens on its own subject
 * `<subject>.w.<workerId>`; envelopes go there as BusWire bytes, batched into
 * the connection's writes by nats.js. Membership rides on heartbeats: a
 * worker not heard for three beats has left.
 */
export class NatsBus implements ClusterBus {
  private readonly members = new Map<string, Member>();
  private readonly listeners: MembershipListener[] = [];
  private readonly inc = randomUUID();
  private readonly wire: BusWire;
  private endpoint: BusEndpoint | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Between nats.js's disconnect and reconnect events it buffers what we publish; members may expire meanwhile. */
  private disconnected = false;
  /** Encoded messages per destination worker, published together once this event-loop turn has read all its sockets. */
  private readonly outq = new Map<string, { parts: Uint8Array[]; bytes: number }>();
  private flushQueued = false;
  /** Bus messages that could not be read (a bug or a foreign publisher): counted and dropped. */
  dropped = 0;
  /** Messages to and from other workers (not the batches that carry them). */
  sent = 0;
  received = 0;
  private ops: OpsResponder | null = null;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly opts: NatsBusOptions,
    codecs: PayloadCodecs,
    private readonly log: Logger | null,
  ) {
    this.wire = new BusWire(codecs);
    this.members.set(opts.workerId, { host: opts.hostAddress, inc: this.inc, seen: Infinity });
  }

  static async connect(opts: NatsBusOptions, codecs: PayloadCodecs, log: Logger | null = null): Promise<NatsBus> {
    if (!WORKER_ID.test(opts.workerId)) throw new Error(`worker id ${JSON.stringify(opts.workerId)} must match ${WORKER_ID}`);
    const nc = await connect({ servers: opts.servers, name: `switchboard ${opts.workerId}`, maxReconnectAttempts: -1, noAsyncTraces: true });
    const bus = new NatsBus(nc, opts, codecs, log);
    bus.start();
    return bus;
  }

  get workerId(): string {
    return this.opts.workerId;
  }

  get hostAddress(): string {
    return this.opts.hostAddress;
  }

  get connected(): boolean {
    return !this.closed && !this.disconnected && !this.nc.isClosed();
  }

  private inbox(workerId: string): string {
    return `${this.opts.subject}.w.${workerId}`;
  }

  private start(): void {
    const o = this.opts;
    this.nc.subscribe(this.inbox(o.workerId), { callback: (_err, m) => this.onMessage(m.data) });
    this.nc.subscribe(`${o.subject}.hb`, { callback: (_err, m) => this.onBeat(m.data) });
    this.beat(true);
    let last = Date.now();
    this.timer = setInterval(() => {
      const now = Date.now();
      // Late ourselves (a long turn of the event loop): the others' beats wait unread in our socket, so silence proves nothing.
      const late = now - last > 2 * o.heartbeatMs;
      last = now;
      this.beat(false);
      if (!late) this.expire();
    }, o.heartbeatMs);
    this.timer.unref();
    void (async () => {
      for await (const s of this.nc.status()) {
        if (s.type === Events.Disconnect) this.disconnected = true;
        else if (s.type === Events.Reconnect) this.disconnected = false;
      }
    })();
    void this.nc.closed().then((e) => {
      if (!this.closed) this.log?.error("cluster bus connection closed", { error: e ? String(e) : "" });
    });
  }

  /** At most two heartbeats: by then every live worker has answered our hello. */
  async ready(expect: number): Promise<void> {
    await this.nc.flush();
    const until = Date.now() + 2 * this.opts.heartbeatMs;
    // expect ≤ 1 (another host's count is unknown): the full wait.
    while (Date.now() < until && (expect <= 1 || this.members.size < expect)) await new Promise((r) => setTimeout(r, 50));
  }

  send(workerId: string, msg: BusMessage): void {
    if (workerId === this.opts.workerId) {
      this.endpoint?.receive(msg);
      return;
    }
    const bytes = this.wire.encode(msg);
    this.sent++;
    let q = this.outq.get(workerId);
    if (q === undefined) {
      q = { parts: [], bytes: 0 };
      this.outq.set(workerId, q);
    }
    q.parts.push(bytes);
    q.bytes += 4 + bytes.length;
    if (q.bytes >= BATCH_BYTES) this.publish(workerId, q);
    else if (!this.flushQueued) {
      // nats.js writes at the end of each callback: one write per client message. After the poll phase
      // (setImmediate) one NATS message per peer carries everything this turn routed to it.
      this.flushQueued = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushQueued = false;
    for (const [id, q] of this.outq) if (q.parts.length > 0) this.publish(id, q);
  };

  /** A batch is its messages one after another, each behind its u32 length. */
  private publish(workerId: string, q: { parts: Uint8Array[]; bytes: number }): void {
    const out = Buffer.allocUnsafe(q.bytes);
    let at = 0;
    for (const p of q.parts) {
      out.writeUInt32BE(p.length, at);
      out.set(p, at + 4);
      at += 4 + p.length;
    }
    q.parts = [];
    q.bytes = 0;
    if (!this.nc.isClosed()) this.nc.publish(this.inbox(workerId), out);
  }

  private onMessage(data: Uint8Array): void {
    let at = 0;
    while (at + 4 <= data.length) {
      const len = ((data[at] << 24) | (data[at + 1] << 16) | (data[at + 2] << 8) | data[at + 3]) >>> 0;
      if (at + 4 + len > data.length) break;
      this.receiveOne(data.subarray(at + 4, at + 4 + len));
      at += 4 + len;
    }
    if (at !== data.length) {
      this.dropped++;
      this.log?.warn("cluster bus batch with a truncated message", { bytes: data.length });
    }
  }

  private receiveOne(data: Uint8Array): void {
    let msg: BusMessage;
    try {
      msg = this.wire.decode(data);
    } catch (e) {
      this.dropped++;
      this.log?.warn("unreadable cluster bus message dropped", { error: (e as Error).message });
      return;
    }
    this.received++;
    try {
      this.endpoint?.receive(msg);
    } catch (e) {
      // nats.js calls back from its parser: a throw here would cost the bus connection, not one message.
      this.log?.error("cluster bus message failed", { op: msg.op, error: (e as Error).stack });
    }
  }

  private beat(hello: boolean): void {
    if (this.nc.isClosed()) return;
    const b: Beat = { id: this.opts.workerId, host: this.opts.hostAddress, inc: this.inc, up: !this.closed, ...(hello ? { hello } : {}) };
    this.nc.publish(`${this.opts.subject}.hb`, Buffer.from(JSON.stringify(b)));
  }

  private onBeat(data: Uint8Array): void {
    let b: Beat;
    try {
      b = JSON.parse(Buffer.from(data).toString("utf8")) as Beat;
      if (typeof b.id !== "string" || typeof b.host !== "string" || typeof b.inc !== "string") throw new Error("bad heartbeat");
    } catch {
      this.dropped++;
      return;
    }
    if (b.id === this.opts.workerId) {
      if (b.inc !== this.inc) this.log?.error("another worker has the same id", { workerId: b.id });
      return;
    }
    if (b.hello === true) this.beat(false);
    const known = this.members.get(b.id);
    if (!b.up) {
      if (known !== undefined) {
        this.members.delete(b.id);
        this.changed([]);
      }
      return;
    }
    if (known !== undefined && known.inc === b.inc && known.host === b.host) {
      known.seen = Date.now();
      return;
    }
    this.members.set(b.id, { host: b.host, inc: b.inc, seen: Date.now() });
    this.changed([b.id]);
  }

  private expire(): void {
    const limit = Date.now() - 3 * this.opts.heartbeatMs;
    let gone = false;
    for (const [id, m] of this.members) {
      if (m.seen < limit) {
        this.members.delete(id);
        gone = true;
        this.log?.warn("cluster worker not heard from: removed", { workerId: id });
      }
    }
    if (gone) this.changed([]);
  }

  private changed(joined: readonly string[]): void {
    const m = this.membership();
    this.log?.info("cluster membership changed", { workers: [...this.members.keys()].sort().join(" "), joined: joined.join(" ") });
    for (const cb of this.listeners) cb(m, joined);
  }

  membership(): Membership {
    const hosts: Record<string, string[]> = {};
    for (const [id, m] of this.members) (hosts[m.host] ??= []).push(id);
    for (const ids of Object.values(hosts)) ids.sort();
    return { hosts, vnodes: this.opts.vnodes };
  }

  onMembership(cb: MembershipListener): void {
    this.listeners.push(cb);
  }

  attach(endpoint: BusEndpoint): void {
    this.endpoint = endpoint;
  }

  /** Answer `switchboard cluster status` and `switchboard sessions` with what `source` reports (src/cluster/ops.ts). */
  serveOps(source: OpsSource): void {
    this.ops ??= new OpsResponder(this.nc, { subject: this.opts.subject, workerId: this.opts.workerId, hostAddress: this.opts.hostAddress }, () => this.membership(), source, this.log);
  }

  /** worker → nats-server → worker, in ms (a PING/PONG): the bus round trip the metrics show. */
  rtt(): Promise<number> {
    return serverRtt(this.nc);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.flush();
    this.beat(false);
    this.endpoint = null;
    try {
      await this.nc.drain();
    } catch {
      // already closed
    }
  }
}
