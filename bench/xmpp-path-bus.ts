/**
 * `node dist/bench/xmpp-path-bus.js`: bench:xmpp-path with WORKERS (1 or 2) workers in this process whose
 * bus messages cross as the NATS bus and host links write them (BusWire bytes, batched per peer, a batch
 * read back and decoded on the other side), without sockets or the kernel. The user-space cost of a
 * message that crosses workers against one that does not, CPU time per message, medians of runs: stable on
 * a busy machine where the socket benchmark is not. Clients are placed without regard to owners (user i on
 * worker i mod WORKERS), as the primary places connections; custody is on, as configured by default.
 *
 * PLACE=owner: each client on its user's owner worker instead (what a connection handed to its owner after
 * SASL would give: no `session` hop), for the model of that proposal (docs/benchmarks.md).
 *
 * RECIPIENTS=local|cross (with PLACE=owner): each message goes to a user whose owner is its sender's worker, or
 * another worker, as bench:xmpp's --recipients does: a crossing against a local message in one deployment.
 *
 * BATCH: messages the clients send between two "turns" (a turn ends with the bus publishing what it
 * gathered, then custody's confirmations behind it, until nothing is left); 2 by default, as the socket
 * benchmark's batches carry one or two messages at 10,000 msg/s.
 *
 * Each client read and each batch read is a callback of its own, followed by its microtasks, as on a socket:
 * custody's confirmations (published at the end of the callback that delivered) go per batch read, as they
 * do through sockets. Before session 15 every batch was read within one synchronous drain, so they waited
 * for the next pause (every 1,000 messages): a confirm message per ~500 crossings instead of one per read,
 * and every held message kept alive, for the GC, until then.
 */
import { validate } from "../src/config/config.js";
import { silentLogger } from "../src/log/logger.js";
import { SqliteStore } from "../src/store/sqlite-store.js";
import { OfflineWriter } from "../src/store/offline-writer.js";
import { Authenticator } from "../src/auth/authenticator.js";
import { ProxyDaemon } from "../src/proxy/proxy-daemon.js";
import { XmppFrontEnd } from "../src/xmpp/front-end.js";
import { XmppSession } from "../src/xmpp/xmpp-session.js";
import type { Conn } from "../src/transport/conn.js";
import { Metrics } from "../src/metrics/metrics.js";
import { BusWire } from "../src/cluster/wire.js";
import type { BusEndpoint, BusMessage, ClusterBus, MembershipListener } from "../src/cluster/bus.js";
import { Router, type Membership } from "../src/router/router.js";
import { xmppPayloadCodec } from "../src/xmpp/payload-codec.js";
import { relayPayloadCodec } from "../src/relay/payload-codec.js";
import { loadavg } from "node:os";

const USERS = Number(process.env.USERS ?? 10000);
const MESSAGES = Number(process.env.MESSAGES ?? 100000);
const RUNS = Number(process.env.RUNS ?? 5);
const WORKERS = Number(process.env.WORKERS ?? 2);
const BATCH = Number(process.env.BATCH ?? 2);
const ON_OWNER = process.env.PLACE === "owner";
const RECIPIENTS = process.env.RECIPIENTS ?? "";
if (RECIPIENTS !== "" && (!ON_OWNER || (RECIPIENTS !== "local" && RECIPIENTS !== "cross"))) throw new Error("RECIPIENTS=local|cross needs PLACE=owner");
/** CUSTODY=off: messages crossing workers travel unheld (cluster.custody.maxHeld 0), the yardstick for custody's cost. */
const CUSTODY = process.env.CUSTODY !== "off";
/**
 * CALLGRIND=1: run under valgrind's callgrind by bench/xmpp-path-callgrind.ts (XMPP_PATH_JS=dist/bench/xmpp-path-bus.js),
 * which counts the main thread's instructions between markers: os.loadavg() before each measured run and after
 * the last, as bench:xmpp-path does. WARMUP: unmeasured runs first (default 1).
 */
const CALLGRIND = process.env.CALLGRIND === "1";
const WARMUP = Number(process.env.WARMUP ?? 1);

class MemoryConn implements Conn {
  readonly remoteAddress = "127.0.0.1";
  readonly secure = false;
  readonly messageMode = false;
  readonly canStartTls = false;
  readonly tlsVersion = null;
  closed = false;
  readonly queuedBytes = 0;
  bytes = 0;
  onData: (chunk: Buffer) => void = () => {};
  onClose: (reason: string) => void = () => {};
  onShutdown: (() => void) | null = null;
  write(chunk: Buffer | string): void {
    this.bytes += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length;
  }
  writeParts(a: Buffer, b: Buffer): void {
    this.bytes += a.length + b.length;
  }
  established(): void {}
  startTls(): void {}
  channelBinding(): Buffer | null {
    return null;
  }
  end(): void {
    this.closed = true;
  }
  destroy(): void {
    this.closed = true;
  }
}

const wire = new BusWire({ xmpp: xmppPayloadCodec, relay: relayPayloadCodec });
/** Bus protocol 2 writes into a per-peer WireWriter (absent before it: a buffer per message, copied into the batch). */
type Writer = { pending: number; take(): Buffer };
const writerModule = (await import(new URL("../src/cluster/wire-buf.js", import.meta.url).href).catch(() => null)) as { WireWriter: new () => Writer } | null;
const encodeInto = (wire as unknown as { encodeInto?: (w: Writer, m: BusMessage) => void }).encodeInto?.bind(wire);

const ids = Array.from({ length: WORKERS }, (_, i) => `127_0_0_1-w${i}`);
const buses = new Map<string, BenchBus>();
let busMessages = 0;
let batches = 0;

/** The NATS bus's send and flush (src/cluster/nats-bus.ts), with the batch handed straight to its peer's reader. */
class BenchBus implements ClusterBus {
  readonly hostAddress = "127.0.0.1";
  readonly connected = true;
  readonly dropped = 0;
  sent = 0;
  received = 0;
  endpoint: BusEndpoint | null = null;
  private readonly out = new Map<string, { parts: Uint8Array[]; bytes: number; w: Writer | null; n: number }>();
  private readonly flushedCbs: (() => void)[] = [];
  readonly listeners: MembershipListener[] = [];

  constructor(readonly workerId: string) {}

  send(workerId: string, msg: BusMessage): void {
    if (workerId === this.workerId) return this.endpoint!.receive(msg);
    let q = this.out.get(workerId);
    if (q === undefined) {
      q = { parts: [], bytes: 0, w: writerModule !== null && encodeInto !== undefined ? new writerModule.WireWriter() : null, n: 0 };
      this.out.set(workerId, q);
    }
    if (q.w !== null) encodeInto!(q.w, msg);
    else {
      const b = wire.encode(msg);
      q.parts.push(b);
      q.bytes += 4 + b.length;
    }
    q.n++;
    this.sent++;
  }

  /** Publishes what is queued; true if anything was. */
  publishAll(): boolean {
    let any = false;
    for (const [id, q] of this.out) {
      if (q.n === 0) continue;
      any = true;
      let batch: Uint8Array;
      if (q.w !== null) batch = q.w.take();
      else {
        const b = Buffer.allocUnsafe(q.bytes);
        let at = 0;
        for (const p of q.parts) {
          b.writeUInt32BE(p.length, at);
          b.set(p, at + 4);
          at += 4 + p.length;
        }
        q.parts = [];
        q.bytes = 0;
        batch = b;
      }
      q.n = 0;
      batches++;
      buses.get(id)!.inbox.push(batch);
    }
    return any;
  }

  flush(): boolean {
    const a = this.publishAll();
    for (const cb of this.flushedCbs) cb();
    return this.publishAll() || a;
  }

  /** Batches published to this worker and not read yet: each is read in a callback of its own (drain). */
  inbox: Uint8Array[] = [];

  /** Reads the first batch published to it (drain awaits its microtasks after, as after a socket read's callback). */
  readOne(): void {
    this.onBatch(this.inbox.shift()!);
  }

  private onBatch(data: Uint8Array): void {
    let at = 0;
    while (at + 4 <= data.length) {
      const len = ((data[at] << 24) | (data[at + 1] << 16) | (data[at + 2] << 8) | data[at + 3]) >>> 0;
      const msg = wire.decode(data, at + 4, at + 4 + len);
      at += 4 + len;
      busMessages++;
      this.received++;
      this.endpoint!.receive(msg);
    }
  }

  flushNow(): void {
    this.publishAll();
  }
  onFlushed(cb: () => void): void {
    this.flushedCbs.push(cb);
  }
  membership(): Membership {
    return { hosts: { "127.0.0.1": [...ids] }, vnodes: config.cluster.vnodes };
  }
  onMembership(cb: MembershipListener): void {
    this.listeners.push(cb);
  }
  attach(endpoint: BusEndpoint): void {
    this.endpoint = endpoint;
  }
  async ready(): Promise<void> {}
  close(): void {}
}

const config = validate({ storage: { type: "sqlite", path: ":memory:" }, listeners: [], log: { level: "error" } });
const store = new SqliteStore(":memory:");
const log = silentLogger();
const fronts = ids.map((id) => {
  const bus = new BenchBus(id);
  buses.set(id, bus);
  const proxy = new ProxyDaemon(bus, { timeouts: { relay: config.timeouts.relay, xmpp: config.timeouts.xmpp }, sweepIntervalMs: 50, maxPendingPerSession: 1000, maxInboundPerSession: 10000, custody: CUSTODY ? config.cluster.custody : { ...config.cluster.custody, maxHeld: 0 } });
  const ctx = { core: proxy, auth: new Authenticator(store, 4096, null), config, log, metrics: new Metrics(), debug: false };
  const offline = new OfflineWriter(store.xmpp, { cap: config.xmpp.offlineQueueMax, maxQueued: 10000, maxBatch: 100 }, log);
  return new XmppFrontEnd(ctx, store, store.xmpp, offline, store.profile, store.pep);
});
for (const b of buses.values()) for (const cb of b.listeners) cb(b.membership(), ids, []);
const busList = [...buses.values()];
const drain = async () => {
  for (let again = true; again; ) {
    again = false;
    for (let i = 0; i < busList.length; i++) if (busList[i].flush()) again = true;
    for (let i = 0; i < busList.length; i++) {
      const b = busList[i];
      while (b.inbox.length > 0) {
        b.readOne();
        await null;
        again = true;
      }
    }
  }
};

const HEADER = Buffer.from(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`);
const conns: MemoryConn[] = [];
const router = new Router(buses.get(ids[0])!.membership());
for (let i = 0; i < USERS; i++) {
  const conn = new MemoryConn();
  const worker = ON_OWNER ? ids.indexOf(router.ownerOf(`user${i}@localhost`)!) : i % WORKERS;
  const s = new XmppSession(conn, fronts[worker].x, null);
  conn.onData(HEADER);
  s.authenticated(`user${i}`);
  s.bind("bench");
  conn.onData(Buffer.from("<presence/>"));
  conns.push(conn);
  if (i % 100 === 99) await drain();
}
await drain();
await new Promise((r) => setImmediate(r));
await drain();

const stanzas: Buffer[] = [];
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
const ownerIndex = (i: number) => ids.indexOf(router.ownerOf(`user${i}@localhost`)!);
/** Stanza j's sender (run, below): with RECIPIENTS, fixed per stanza, so that its recipient can be chosen by owner. */
const senderOf = (i: number) => ((RECIPIENTS === "" ? i : i & 4095) * 7919) % USERS;
for (let i = 0; i < 4096; i++) {
  let to = Math.floor(rand() * USERS);
  if (RECIPIENTS !== "") {
    const from = ownerIndex(senderOf(i));
    while ((ownerIndex(to) === from) !== (RECIPIENTS === "local")) to = Math.floor(rand() * USERS);
  }
  stanzas.push(Buffer.from(`<message to='user${to}@localhost' type='chat' id='m${i}'><body>1763761234567.123</body></message>`));
}

async function run(): Promise<number> {
  const start = process.cpuUsage();
  for (let i = 0; i < MESSAGES; i++) {
    conns[senderOf(i)].onData(stanzas[i & 4095]);
    // The read's microtasks, as after a socket's callback.
    await null;
    if (i % BATCH === BATCH - 1) {
      await drain();
      // Timers (custody's sweep) run between turns, as they would.
      if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
    }
  }
  await drain();
  const used = process.cpuUsage(start);
  return ((used.user + used.system) / MESSAGES) * 1000;
}

for (let w = 0; w < WARMUP; w++) await run(); // warm-up: JIT
const m0 = busMessages;
const b0 = batches;
const results: number[] = [];
for (let r = 0; r < RUNS; r++) {
  if (CALLGRIND) loadavg();
  results.push(await run());
}
if (CALLGRIND) loadavg();
results.sort((a, b) => a - b);
const cut = conns.filter((c) => c.closed).length;
if (cut > 0) console.error(`${cut} sessions were cut`);
console.log(
  `xmpp message path, ${WORKERS} worker(s), batches of ${BATCH}${ON_OWNER ? ", clients on their owners" : ""}${RECIPIENTS !== "" ? `, ${RECIPIENTS} recipients` : ""}${CUSTODY ? "" : ", custody off"}: ${results[results.length >> 1].toFixed(0)} ns/message (median of ${RUNS} runs of ${MESSAGES}; runs ${results.map((x) => x.toFixed(0)).join(", ")}); ${((busMessages - m0) / (RUNS * MESSAGES)).toFixed(2)} bus messages (${((batches - b0) / (RUNS * MESSAGES)).toFixed(2)} batches) per message; ${encodeInto !== undefined ? "protocol 2" : "protocol 1"}`,
);
process.exit(0);
