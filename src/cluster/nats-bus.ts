import { randomUUID } from "node:crypto";
import { Events, type NatsConnection } from "nats";
import type { Membership } from "../router/router.js";
import type { PayloadCodecs } from "../envelope/payload-codec.js";
import type { Logger } from "../log/logger.js";
import type { BusEndpoint, BusMessage, ClusterBus, MembershipListener } from "./bus.js";
import { BusWire, STALE_TAG } from "./wire.js";
import { monotonicMs } from "../timer/clock.js";
import { WireWriter } from "./wire-buf.js";
import { ConfigError } from "../config/config.js";
import { JoinGuard, ringOf, type Beat } from "./join-guard.js";
import { connectRetrying } from "./nats-connect.js";
import { OpsResponder, serverRtt, type OpsSource } from "./ops.js";
import { HostLinks, MAX_MESSAGE, type HostLinksOptions } from "./host-links.js";
import { PeerView } from "./peer-view.js";

export interface NatsBusOptions {
  servers: string[];
  /** Subject prefix: clusters sharing a NATS server keep apart by it. */
  subject: string;
  heartbeatMs: number;
  vnodes: number;
  workerId: string;
  hostAddress: string;
  /** How long the first connection is tried (docs/configuration.md); default 0: once. */
  connectTimeoutMs?: number;
  /** A refusal after joining (JoinGuard): the worker must stop. Default: only logged. */
  onRefuse?: (reason: string) => void;
  /** Workers of this host send each other bus messages over Unix domain sockets (src/cluster/host-links.ts), not through NATS. */
  links?: HostLinksOptions;
  /**
   * A turn's batches go at most once per this many ms (0: at the end of every turn). At high rates a batch
   * then carries several turns' messages: fewer system calls and wake-ups per bus message, for at most this
   * much more latency on a crossing (docs/configuration.md, cluster.coalesceMs).
   */
  coalesceMs?: number;
}

interface Member {
  host: string;
  inc: string;
  gen: number;
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
/** `moved` messages kept for a worker that has joined the bus and not attached yet. */
const MAX_EARLY = 100_000;

export class NatsBus implements ClusterBus {
  private readonly members = new Map<string, Member>();
  private readonly listeners: MembershipListener[] = [];
  private readonly inc = randomUUID();
  /** Renewals of this worker's touch with the others (Beat.gen). */
  private gen = 0;
  /** Incarnations of workers expired here: the same one back was stalled or cut off, not restarted. */
  private readonly expiredInc = new Map<string, string>();
  /** Incarnations of workers whose death the host's primary told (peerDied): a beat of theirs still on its way is stale. */
  private readonly deadInc = new Map<string, string>();
  private readonly wire: BusWire;
  private endpoint: BusEndpoint | null = null;
  /** Rooms handed to this worker before it attached (once, at start); null after. */
  private early: BusMessage[] | null = [];
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Between nats.js's disconnect and reconnect events it buffers what we publish; members may expire meanwhile. */
  private disconnected = false;
  /**
   * Messages per destination worker, encoded straight into the batch (each behind its length), published
   * together once this event-loop turn has read all its sockets.
   */
  private readonly outq = new Map<string, { w: WireWriter; messages: number }>();
  private flushQueued = false;
  /** performance.now() of the last flush: with coalesceMs the next one waits until this + coalesceMs. */
  private lastFlush = -Infinity;
  /** performance.now() of the last heartbeat sent (timer or publish). */
  private lastBeat = 0;
  private flushTimer: NodeJS.Timeout | null = null;
  /** When the batches in outq began (monotonicMs): one published a heal window later was gathered before a stall. */
  private batchAt = 0;
  /** Publishing batches gathered before a stall: each goes wrapped (STALE_TAG). */
  private wrapStale = false;
  /** Reading such a batch from a peer (ClusterBus.readingStale). */
  readingStale = false;
  /** Batches published late past the heal window (a stall, SIGSTOP), and read so. */
  staleSent = 0;
  staleRead = 0;
  /** Called at the end of each turn's publish (ClusterBus.onFlushed). */
  private readonly flushed: (() => void)[] = [];
  /** Called after each publish, with nothing held (ClusterBus.afterPublish). */
  private readonly after: (() => void)[] = [];
  /** Called at each publish before any batch is written (ClusterBus.onPublishing). */
  private readonly publishing: (() => string)[] = [];
  /** Called once at the start of this turn's publish (ClusterBus.beforePublish). */
  private before: (() => void)[] = [];
  /** Bus messages that could not be read (a bug or a foreign publisher), or were sent after close: counted and dropped. */
  private droppedHere = 0;
  private readonly guard: JoinGuard;
  /** Messages to and from other workers (not the batches that carry them). */
  sent = 0;
  received = 0;
  /** Generations this worker renewed (a NATS reconnect): every peer resyncs with it. */
  renewals = 0;
  /** Peers this worker resynced with (welcomed, or welcomed by): each side dropped the other's bindings and bound again. */
  resyncs = 0;
  /** Heartbeat timers that fired late past the expiry window (a stall): no renewal, PeerView watches. */
  lateBeats = 0;
  /** What peers' beats say they hold of this worker. */
  private readonly view: PeerView;
  private ops: OpsResponder | null = null;
  /** Same-host peers, straight over Unix domain sockets; null: everything through NATS. */
  private readonly links: HostLinks | null;
  /** `<host token>-w`: a worker id with this prefix and a number is a worker of this host (workerIdOf). */
  private readonly hostPrefix: string;
  /** hostIndexOf's answers by worker id. */
  private readonly hostIndex = new Map<string, number>();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly opts: NatsBusOptions,
    codecs: PayloadCodecs,
    private readonly log: Logger | null,
  ) {
    this.wire = new BusWire(codecs, (e) => {
      this.droppedHere++;
      this.log?.warn("cluster bus stanza unreadable where it was read: dropped", { error: e.message });
    });
    this.guard = new JoinGuard(opts.workerId, this.inc, ringOf(opts.vnodes), 3 * opts.heartbeatMs, log);
    this.guard.onRefuse = opts.onRefuse ?? null;
    this.view = new PeerView(3 * opts.heartbeatMs);
    this.members.set(opts.workerId, { host: opts.hostAddress, inc: this.inc, gen: 0, seen: Infinity });
    this.hostPrefix = workerIdOf(opts.hostAddress, 0).slice(0, -1);
    this.links = opts.links === undefined ? null : new HostLinks(opts.links, (data, start, end) => this.receiveOne(data, start, end), (i) => this.linkLost(i), log);
  }

  static async connect(opts: NatsBusOptions, codecs: PayloadCodecs, log: Logger | null = null): Promise<NatsBus> {
    if (!WORKER_ID.test(opts.workerId)) throw new Error(`worker id ${JSON.stringify(opts.workerId)} must match ${WORKER_ID}`);
    const nc = await connectRetrying({ servers: opts.servers, name: `switchboard ${opts.workerId}`, maxReconnectAttempts: -1, noAsyncTraces: true }, opts.connectTimeoutMs ?? 0, log);
    const bus = new NatsBus(nc, opts, codecs, log);
    try {
      await bus.start();
    } catch (e) {
      await nc.close();
      throw e;
    }
    return bus;
  }

  get workerId(): string {
    return this.opts.workerId;
  }

  get hostAddress(): string {
    return this.opts.hostAddress;
  }

  /** Workers see a change up to a heartbeat apart, and each may take one to notice it stalled: three beats. */
  get healMs(): number {
    return 3 * this.opts.heartbeatMs;
  }

  /** Unreadable messages, those sent after close, and those lost with a host link. */
  get dropped(): number {
    return this.droppedHere + (this.links?.dropped ?? 0);
  }

  get connected(): boolean {
    return !this.closed && !this.disconnected && !this.nc.isClosed();
  }

  private inbox(workerId: string): string {
    return `${this.opts.subject}.w.${workerId}`;
  }

  private async start(): Promise<void> {
    const o = this.opts;
    this.nc.subscribe(`${o.subject}.hb`, { callback: (_err, m) => this.onBeat(m.data) });
    // The probe (JoinGuard): answered by everyone, counted by no one; our inbox is not subscribed yet.
    this.beat(true);
    await this.nc.flush();
    const until = Date.now() + Math.min(250, o.heartbeatMs / 2);
    while (Date.now() < until && this.guard.refusal === null) await new Promise((r) => setTimeout(r, 10));
    if (this.guard.refusal !== null) throw new ConfigError("cluster", `refusing to join: ${this.guard.refusal}`);
    this.guard.join();
    // Peers' beats hold this worker once they have heard it: not before.
    this.view.unsettled(Date.now());
    // Listening before the hello below: a peer that hears it sends at once, over the link too.
    await this.links?.listen();
    this.nc.subscribe(this.inbox(o.workerId), { callback: (_err, m) => this.onMessage(m.data) });
    this.beat(true);
    let last = Date.now();
    this.timer = setInterval(() => {
      const now = Date.now();
      const gap = now - last;
      last = now;
      // Late ourselves (a long turn of the event loop): the others' beats wait unread in our socket, so silence proves nothing.
      const late = gap > 2 * o.heartbeatMs;
      // Late past the expiry window (a stall, SIGSTOP): a peer that dropped this worker meanwhile welcomes it back
      // when it hears this beat (onBeat, `back`), and one that did not kept its bindings: no renewal towards all.
      // PeerView checks what the peers' beats say they hold (docs/architecture.md, "Healing").
      if (gap >= 3 * o.heartbeatMs) {
        this.lateBeats++;
        this.view.unsettled(now);
        this.log?.debug("cluster heartbeat late past the expiry window: peers that dropped this worker will welcome it back", { lateMs: gap });
      }
      this.beat(false);
      if (!late) this.expire();
    }, o.heartbeatMs);
    this.timer.unref();
    void (async () => {
      for await (const s of this.nc.status()) {
        if (s.type === Events.Disconnect) this.disconnected = true;
        else if (s.type === Events.Reconnect) {
          this.disconnected = false;
          // Nobody was heard while cut off: each peer gets a fresh expiry window from now.
          const now = Date.now();
          for (const m of this.members.values()) if (m.seen !== Infinity) m.seen = now;
          // What was published meanwhile may have reached a peer before it had subscribed again: bind everything again.
          this.renew("reconnected", 0);
        }
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
    while (Date.now() < until && (expect <= 1 || this.members.size < expect) && this.guard.refusal === null) await new Promise((r) => setTimeout(r, 50));
    if (this.guard.refusal !== null) throw new ConfigError("cluster", `refusing to join: ${this.guard.refusal}`);
  }

  send(workerId: string, msg: BusMessage): void {
    if (workerId === this.opts.workerId) {
      this.endpoint?.receive(msg);
      return;
    }
    let q = this.outq.get(workerId);
    if (q === undefined) {
      q = { w: new WireWriter(), messages: 0 };
      this.outq.set(workerId, q);
    }
    const before = q.w.pending;
    this.wire.encodeInto(q.w, msg);
    const size = q.w.pending - before;
    if (size > MAX_MESSAGE) {
      // A bug, not traffic: every op that can grow is split by its sender. It would cost the link and all it carries.
      q.w.at -= size;
      this.droppedHere++;
      this.log?.error("cluster bus message too large: dropped", { op: msg.op, bytes: size });
      return;
    }
    this.sent++;
    q.messages++;
    if (q.w.pending < BATCH_BYTES) return this.schedule();
    if (before === 0 || q.messages === 1) return this.publish(workerId, q);
    // The batch before this message goes alone, then the message: no batch is much past BATCH_BYTES (NATS's max_payload).
    const out = q.w.take();
    const messages = q.messages;
    q.messages = 0;
    this.publishBytes(workerId, out.subarray(0, before), messages - 1);
    this.publishBytes(workerId, out.subarray(before), 1);
  }

  /**
   * nats.js writes at the end of each callback: one write per client message. After the poll phase
   * (setImmediate) one message per peer carries everything this turn routed to it — or, within coalesceMs
   * of the last flush, everything the turns until then routed.
   */
  private schedule(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    this.batchAt = monotonicMs();
    const w = this.opts.coalesceMs ?? 0;
    const wait = w > 0 ? this.lastFlush + w - performance.now() : 0;
    if (wait < 0.5) setImmediate(this.flush);
    // +1: Node's timers count whole milliseconds from the loop's clock as the turn began, so a timer of `wait`
    // fires up to a millisecond early (with a 1 ms window, batches went every 0.63 ms on average). Node also
    // truncates the delay to whole ms, so a rest under a millisecond could still go early, batches as little as
    // 0.0x ms apart with the default 1 ms window (session 26's review): `windowDone` checks the clock.
    else this.flushTimer = setTimeout(this.windowDone, wait + 1);
  }

  /** The window's timer: the batch goes, unless the timer came early (above) — then it waits for the rest. */
  private readonly windowDone = (): void => {
    const rest = this.lastFlush + (this.opts.coalesceMs ?? 0) - performance.now();
    if (rest > 0.25) this.flushTimer = setTimeout(this.windowDone, rest + 1);
    else this.flush();
  };

  flushNow(): void {
    this.flush();
  }

  beforePublish(cb: () => void): void {
    this.before.push(cb);
    this.schedule();
  }

  get pending(): boolean {
    return this.flushQueued;
  }

  /** A window of a few ms against a heartbeat of 100 ms or more: a batch a heartbeat old was held up, not coalesced. */
  get ridesConfirmations(): boolean {
    return this.opts.heartbeatMs >= 10 * ((this.opts.coalesceMs ?? 0) + 1);
  }

  get coalescing(): boolean {
    return this.flushTimer !== null;
  }

  get windowOpen(): boolean {
    return performance.now() < this.lastFlush + (this.opts.coalesceMs ?? 0);
  }

  afterPublish(cb: () => void): void {
    this.after.push(cb);
  }

  private readonly flush = (): void => {
    if (this.flushTimer !== null) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    this.lastFlush = performance.now();
    // Gathered a heal window ago or more: this worker was stopped (SIGSTOP, a stall) between gathering and
    // publishing, and its peers may have taken it off the ring and routed again, or had resent, what it
    // carries. The endpoint voids what its own sessions caused; the peers drop the held messages in it.
    const age = this.batchAt > 0 ? monotonicMs() - this.batchAt : 0;
    const stale = age >= this.healMs;
    this.batchAt = 0;
    // A heartbeat late: far past any window or busy turn, and short of the three a custodian waits before it routes
    // a message again. What rides this batch is taken back rather than confirmed that late.
    if (age >= this.opts.heartbeatMs) this.endpoint?.lateFlush?.(this.opts.heartbeatMs);
    if (stale) {
      this.log?.debug("cluster bus batch gathered before a stall: published marked stale", { healMs: this.healMs });
      this.endpoint?.stalled?.();
    }
    if (this.before.length > 0) {
      const cbs = this.before;
      this.before = [];
      for (const cb of cbs) cb();
    }
    let last = "";
    for (const cb of this.publishing) {
      const w = cb();
      if (w !== "") last = w;
    }
    this.wrapStale = stale;
    for (const [id, q] of this.outq) if (q.messages > 0 && id !== last) this.publish(id, q);
    const lastq = last === "" ? undefined : this.outq.get(last);
    if (lastq !== undefined && lastq.messages > 0) this.publish(last, lastq);
    this.wrapStale = false;
    // Still "queued" while the hooks run: what they send goes now, behind what went above, not in a later turn.
    for (const cb of this.flushed) cb();
    for (const [id, q] of this.outq) if (q.messages > 0) this.publish(id, q);
    // A heartbeat overdue: this worker is in a turn longer than a heartbeat (reading a backlog from every ready
    // socket at once under overload), where the beat's timer cannot fire. It is alive and publishing, so it says so
    // with this batch rather than let its peers take it off the ring and route again all they hold. Not after a
    // stall (a stale batch): the timer's own late beat and its checks come first then, as before.
    if (!stale && this.guard.joined && performance.now() - this.lastBeat >= this.opts.heartbeatMs) this.beat(false);
    this.written();
    this.flushQueued = false;
    for (const cb of this.after) cb();
  };

  /**
   * What this publish handed nats.js goes to its socket now, not in the microtask nats.js queued for it: after
   * the rest of the callback that published, and after the client output the `after` hooks write. A worker
   * stopped in between (SIGSTOP) kept a batch it had published, unmarked, and wrote it on SIGCONT: its
   * messages arrived 5 s late next to their senders' second copies, sent again from where the clients resumed
   * by keepers' counts that the same unwritten batch carried (the three-host stop-worker duplicate, session 21).
   * And the client output was meant to follow the publish on the wire (beforeClientWrites), not precede it.
   */
  private written(): void {
    if (this.nc.isClosed()) return;
    (this.nc as unknown as { protocol?: { flushPending?: () => void } }).protocol?.flushPending?.();
  }

  onFlushed(cb: () => void): void {
    this.flushed.push(cb);
  }

  onPublishing(cb: () => string): void {
    this.publishing.push(cb);
  }

  /** A batch is its messages one after another, each behind its u32 length: a view of the writer's slab, never written again. */
  private publish(workerId: string, q: { w: WireWriter; messages: number }): void {
    const messages = q.messages;
    q.messages = 0;
    this.publishBytes(workerId, q.w.take(), messages);
  }

  private publishBytes(workerId: string, out: Uint8Array, messages: number): void {
    if (this.wrapStale) {
      // One frame holding the whole batch behind STALE_TAG: read as one, so the mark covers exactly these messages.
      const inner = out;
      const wrapped = Buffer.allocUnsafe(5 + inner.length);
      wrapped.writeUInt32BE(1 + inner.length, 0);
      out = wrapped;
      out[4] = STALE_TAG;
      out.set(inner, 5);
      messages = 1;
      this.staleSent++;
    }
    const peer = this.links === null ? -1 : this.hostIndexOf(workerId);
    if (peer >= 0) return this.links!.write(peer, out, messages);
    if (this.nc.isClosed()) return;
    try {
      this.nc.publish(this.inbox(workerId), out);
    } catch {
      // Draining at close: what is sent after the goodbye has nobody to wait for it.
      this.droppedHere++;
    }
  }

  /** Worker `i` of this host (workerIdOf) → i; any other worker → -1. Remembered: asked at every publish. */
  private hostIndexOf(workerId: string): number {
    let i = this.hostIndex.get(workerId);
    if (i !== undefined) return i;
    i = -1;
    if (workerId.startsWith(this.hostPrefix)) {
      const n = Number(workerId.slice(this.hostPrefix.length));
      if (Number.isInteger(n) && n >= 0 && workerIdOf(this.opts.hostAddress, n) === workerId) i = n;
    }
    // Bounded by the workers ever seen: peers of a cluster, not anything a client sends.
    if (this.hostIndex.size < 4096) this.hostIndex.set(workerId, i);
    return i;
  }

  /**
   * Messages to worker `index` of this host were dropped with its link (it stopped reading): as after a
   * bus outage, both sides drop the other's bindings and bind again (welcome, resynced). Custody
   * routes the held messages among them again after confirmTimeoutMs.
   */
  private linkLost(index: number): void {
    const id = workerIdOf(this.opts.hostAddress, index);
    const m = this.members.get(id);
    if (m === undefined || this.closed) return;
    this.welcome(id);
    this.changed([], [id]);
  }

  private onMessage(data: Uint8Array): void {
    this.frames(data);
  }

  /** Each message of a batch (behind its u32 length) in data[from, to), in order; read in place, without a view each. */
  private frames(data: Uint8Array, from = 0, to = data.length): void {
    let at = from;
    while (at + 4 <= to) {
      const len = ((data[at] << 24) | (data[at + 1] << 16) | (data[at + 2] << 8) | data[at + 3]) >>> 0;
      if (at + 4 + len > to) break;
      this.receiveOne(data, at + 4, at + 4 + len);
      at += 4 + len;
    }
    if (at !== to) {
      this.droppedHere++;
      this.log?.warn("cluster bus batch with a truncated message", { bytes: to - from });
    }
  }

  private receiveOne(data: Uint8Array, start: number, end: number): void {
    if (end > start && data[start] === STALE_TAG) {
      // A batch its sender gathered before a stall (flush): its messages are read with the mark set.
      this.staleRead++;
      const was = this.readingStale;
      this.readingStale = true;
      try {
        this.frames(data, start + 1, end);
      } finally {
        this.readingStale = was;
      }
      return;
    }
    let msg: BusMessage;
    try {
      msg = this.wire.decode(data, start, end);
    } catch (e) {
      this.droppedHere++;
      this.log?.warn("unreadable cluster bus message dropped", { error: (e as Error).message });
      return;
    }
    this.received++;
    if (msg.op === "welcome") return this.welcomed(msg.from, msg.inc);
    if (this.endpoint === null) {
      // Joined but not attached yet (the worker is starting): rooms its peers hand it already are kept for it
      // (service-moves.ts); anything else is dropped as before (custody and binding again cover those).
      if (this.early !== null && msg.op === "moved" && this.early.length < MAX_EARLY) this.early.push(msg);
      return;
    }
    try {
      this.endpoint.receive(msg);
    } catch (e) {
      // nats.js calls back from its parser: a throw here would cost the bus connection, not one message.
      this.log?.error("cluster bus message failed", { op: msg.op, error: (e as Error).stack });
    }
  }

  /**
   * This worker may have been dropped by its peers, or bus messages lost: a new generation makes every
   * peer drop its bindings from here and welcome it, and each welcome makes this side bind its
   * sessions there again (docs/architecture.md, "Healing").
   */
  private renew(why: string, lateMs: number): void {
    this.gen++;
    this.renewals++;
    this.view.unsettled(Date.now());
    this.log?.warn("cluster bus lost touch: binding again", { why, gen: this.gen, ...(lateMs > 0 ? { lateMs } : {}) });
    this.beat(true);
  }

  private beat(hello: boolean): void {
    if (this.nc.isClosed()) return;
    this.lastBeat = performance.now();
    const holds: Record<string, string> = {};
    for (const [id, m] of this.members) if (id !== this.opts.workerId) holds[id] = PeerView.token(m.inc, m.gen);
    const b: Beat = { id: this.opts.workerId, host: this.opts.hostAddress, inc: this.inc, gen: this.gen, up: !this.closed, ring: this.guard.ring, holds, ...(hello ? { hello } : {}), ...(this.guard.joined ? {} : { probe: true }) };
    try {
      this.nc.publish(`${this.opts.subject}.hb`, Buffer.from(JSON.stringify(b)));
    } catch {
      // Draining at close: the goodbye went first.
    }
  }

  private onBeat(data: Uint8Array): void {
    let b: Beat;
    try {
      b = JSON.parse(Buffer.from(data).toString("utf8")) as Beat;
      if (typeof b.id !== "string" || typeof b.host !== "string" || typeof b.inc !== "string") throw new Error("bad heartbeat");
    } catch {
      this.droppedHere++;
      return;
    }
    if (b.id === this.opts.workerId && b.inc === this.inc) return;
    if (this.deadInc.size !== 0 && this.deadInc.get(b.id) === b.inc) return;
    // Answered whoever asks, before it is judged: a newcomer learns who is here, and may refuse.
    if (b.hello === true) this.beat(false);
    if (!this.guard.admit(b)) return;
    const known = this.members.get(b.id);
    if (!b.up) {
      // An older incarnation's goodbye does not remove the newer one.
      if (known !== undefined && known.inc === b.inc) {
        this.members.delete(b.id);
        this.changed([]);
      }
      return;
    }
    const gen = typeof b.gen === "number" ? b.gen : 0;
    if (known !== undefined && known.inc === b.inc && known.host === b.host) {
      const now = Date.now();
      known.seen = now;
      if (gen > known.gen) {
        known.gen = gen;
        this.welcome(b.id);
        this.changed([], [b.id]);
      } else if (this.view.heard(b.id, b.holds, this.opts.workerId, PeerView.token(this.inc, this.gen), now)) {
        this.log?.warn("cluster peer does not hold this worker: binding again there", { workerId: b.id });
        this.welcome(b.id);
        this.changed([], [b.id]);
      }
      return;
    }
    // Expired here, and back as the same process: it was stalled or cut off, and its sessions live.
    const back = known === undefined && this.expiredInc.get(b.id) === b.inc;
    this.expiredInc.delete(b.id);
    this.members.set(b.id, { host: b.host, inc: b.inc, gen, seen: Date.now() });
    this.view.forget(b.id);
    // Another incarnation: a link to the one before, if any, leads nowhere (host-links.ts, reset).
    if (!back && known?.inc !== b.inc) {
      const peer = this.links === null ? -1 : this.hostIndexOf(b.id);
      if (peer >= 0) this.links!.reset(peer);
    }
    this.welcome(b.id);
    if (back) this.changed([], [b.id]);
    else this.changed([b.id], []);
  }

  /** Ahead of anything else this worker sends the other now (the binds that follow): see Welcome in bus.ts. */
  private welcome(workerId: string): void {
    if (this.closed) return;
    this.send(workerId, { op: "welcome", from: this.opts.workerId, inc: this.inc });
  }

  /** A peer (re)learned of this worker and dropped its bindings from here: drop its, bind ours there again. */
  private welcomed(from: string, inc: string): void {
    const m = this.members.get(from);
    // Not known yet: its beat will make it joined here, which does the same. Another incarnation's: stale.
    if (m === undefined || m.inc !== inc || from === this.opts.workerId) return;
    this.endpoint?.welcomedBy?.(from);
    this.changed([], [from]);
  }

  /**
   * The host's primary saw worker `workerId` exit (SIGKILL, a crash): it leaves now, not three heartbeats from its
   * last beat — what custody held for it is routed again, and requests to its sessions fail, that much sooner. Its
   * restart is a new incarnation and joins as one; a beat of the dead one still on its way is ignored.
   */
  peerDied(workerId: string): void {
    const m = this.members.get(workerId);
    if (m === undefined || workerId === this.opts.workerId) return;
    this.members.delete(workerId);
    this.deadInc.set(workerId, m.inc);
    this.expiredInc.delete(workerId);
    this.log?.warn("cluster worker died (told by the host): removed", { workerId });
    this.changed([]);
  }

  private expire(): void {
    // Cut off from NATS ourselves: silence proves nothing, and what we publish waits in nats.js for the reconnect.
    if (this.disconnected) return;
    const limit = Date.now() - 3 * this.opts.heartbeatMs;
    let gone = false;
    for (const [id, m] of this.members) {
      if (m.seen < limit) {
        this.members.delete(id);
        this.expiredInc.set(id, m.inc);
        gone = true;
        this.log?.warn("cluster worker not heard from: removed", { workerId: id });
      }
    }
    if (gone) this.changed([]);
  }

  private changed(joined: readonly string[], resynced: readonly string[] = []): void {
    const m = this.membership();
    this.resyncs += resynced.length;
    this.log?.info("cluster membership changed", { workers: [...this.members.keys()].sort().join(" "), joined: joined.join(" "), resynced: resynced.join(" ") });
    for (const cb of this.listeners) cb(m, joined, resynced);
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
    const early = this.early ?? [];
    this.early = null;
    for (const msg of early) endpoint.receive(msg);
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
    // Only a member says goodbye.
    if (this.guard.joined) this.beat(false);
    this.endpoint = null;
    this.links?.close();
    try {
      await this.nc.drain();
    } catch {
      // already closed
    }
  }
}
