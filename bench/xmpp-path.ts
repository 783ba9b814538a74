/**
 * `npm run bench:xmpp-path`: the user-space cost of one XMPP chat message
 * through the server (stream parse, routing, delivery rules, serialization),
 * without sockets or the kernel: real XmppSessions on in-memory connections.
 * CPU time per message, medians of runs; stable on a busy machine where
 * socket benchmarks are not. Run with --cpu-prof for a profile of this path alone.
 *
 * SM=1: every client enables XEP-0198 stream management after bind, sends an
 * <r/> with every SM_EVERY-th message (1, as Conversations does; 0: never) and
 * answers the server's <r/> with the count of stanzas it was written, right
 * after the message that brought it: the user-space part of `bench:xmpp --sm`
 * (the <a/> writes cost no system call here). SM_ANSWER_DELAY_MS, SM_ACK_EVERY_MS and SM_ACK_EVERY_STANZAS set
 * xmpp.sm.answerDelayMs, ackEveryMs and ackEveryStanzas (below).
 *
 * MAM=1: XEP-0313 archives on (an in-memory SQLite archive): the path's figure
 * is then what archiving adds to forwarding (stanza id, two queue entries per
 * message); the writer's batches run after each turn, measured apart (their
 * garbage is collected wherever the collector runs: some of it lands in the
 * path's figure). MAM=path: the same path, but the writer writes nothing (its
 * render step skips every entry): the forwarding path's own cost.
 *
 * MAM=file: archives on, in a SQLite file in a temp dir, as the server writes them: the batches go to the
 * archive's thread (sqlite-archive-thread.ts). With MAIN_ONLY=1 (any mode) CPU is that of the main thread
 * alone (the optional addon's clock_gettime(CLOCK_THREAD_CPUTIME_ID), else /proc/self/task/<pid>/schedstat), as
 * `bench:xmpp` reports "main threads": the writer's figure
 * is then what the event loop spends after each turn (the archive's preferences, rendering, hand-over, and
 * whatever else the turn left for later), not the thread; with archives off that "after the turn" is
 * measured too, so that the sums on and off compare. Compare the sums ("path + after the turn"): schedstat
 * charges a running thread's CPU at ticks and sleeps only, so the split between the two is not reliable
 * (the thread clock splits them right, but the path's garbage may be collected after the turn).
 * MAM=postgres: archives on, in a PostgreSQL 15 the bench starts (test/postgres.ts: initdb in a temp dir, a
 * free port), as a cluster's workers write them: the batches go to the archive's thread, which makes the rows
 * and runs one INSERT of arrays per batch (postgres-archive-thread-main.ts); the accounts stay in SQLite. With MAIN_ONLY=1 the wait for PostgreSQL's
 * answer is a sleep, not counted: the figure is the event loop's share, as with MAM=file.
 * WARMUP: unmeasured runs first (default 1), for the JIT. CALLGRIND=1: below.
 */
import { validate } from "../src/config/config.js";
import { silentLogger } from "../src/log/logger.js";
import { SqliteStore } from "../src/store/sqlite-store.js";
import { PgStore } from "../src/store/postgres-store.js";
import { startPostgres } from "../test/postgres.js";
import { OfflineWriter } from "../src/store/offline-writer.js";
import { ArchiveWriter } from "../src/store/archive-writer.js";
import { archivedText, renderArchived, RENDER_MODULE } from "../src/xmpp/modules/mam.js";
import { Authenticator } from "../src/auth/authenticator.js";
import { LocalHub } from "../src/cluster/local-bus.js";
import { ProxyDaemon } from "../src/proxy/proxy-daemon.js";
import { XmppFrontEnd } from "../src/xmpp/front-end.js";
import { XmppSession } from "../src/xmpp/xmpp-session.js";
import type { Conn } from "../src/transport/conn.js";
import { Metrics } from "../src/metrics/metrics.js";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadavg } from "node:os";
import { createRequire } from "node:module";
import { WriterThread } from "../src/transport/writer-thread.js";

const USERS = Number(process.env.USERS ?? 10000);
const MESSAGES = Number(process.env.MESSAGES ?? 200000);
const RUNS = Number(process.env.RUNS ?? 5);
const SM = process.env.SM === "1";
const SM_EVERY = Number(process.env.SM_EVERY ?? 1);
const PG = process.env.MAM === "postgres";
const MAM = process.env.MAM === "1" || process.env.MAM === "path" || process.env.MAM === "file" || PG;
const FILE = process.env.MAM === "file";
const MAIN_ONLY = process.env.MAIN_ONLY === "1";
const PATH_ONLY = process.env.MAM === "path";
/**
 * CALLGRIND=1: run under valgrind's callgrind by bench/xmpp-path-callgrind.ts, which counts the main thread's
 * instructions between markers: os.loadavg() (libuv's uv_loadavg, called by nothing else here) before each
 * measured run and after the last (callgrind --dump-before=uv_loadavg).
 */
const CALLGRIND = process.env.CALLGRIND === "1";
const SM_NS = "urn:xmpp:sm:3";
/** Connections whose client owes the server an <a/> (it read an <r/>). */
const owing: MemoryConn[] = [];
/** XEP-0198 traffic over the whole process (SM=1): the server's <r/> and <a/> written, the clients' <a/> sent. */
const smTraffic = { serverR: 0, serverA: 0, clientA: 0 };

class MemoryConn implements Conn {
  readonly remoteAddress = "127.0.0.1";
  readonly secure = false;
  readonly messageMode = false;
  readonly canStartTls = false;
  readonly tlsVersion = null;
  closed = false;
  readonly queuedBytes = 0;
  bytes = 0;
  /** XEP-0198: stanzas the client read since it enabled stream management. */
  handled = 0;
  onData: (chunk: Buffer) => void = () => {};
  onClose: (reason: string) => void = () => {};
  onShutdown: (() => void) | null = null;
  write(chunk: Buffer | string): void {
    // As a socket does before it encodes a string: flattened (a serialized stanza is a rope), its UTF-8 length taken.
    this.bytes += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length;
    if (!SM || typeof chunk !== "string") return;
    // The server writes one element per call: a stanza, or one of XEP-0198's own.
    // By the second character, cheaply (this is the client's work, not the server's): "<r " and "<a " are XEP-0198's
    // (no stanza is named so), "<enabled" starts the count (XEP-0198 §4); stanzas are <message>, <presence>, <iq>.
    const c = chunk.charCodeAt(1);
    if (c === 114 /* r */) {
      owing.push(this);
      smTraffic.serverR++;
    } else if (c === 97 /* a */) smTraffic.serverA++;
    else if (c === 101 /* e */ && chunk.startsWith("<enabled")) this.handled = 0;
    else this.handled++;
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

// SM_ANSWER_DELAY_MS: xmpp.sm.answerDelayMs (0: each <a/> at the end of its turn, as before held answers).
// SM_ACK_EVERY_STANZAS, SM_ACK_EVERY_MS: xmpp.sm.ackEveryStanzas and ackEveryMs (the server's <r/> policy). Its time
// triggers (ackEveryMs, answerDelayMs) make instruction counts depend on how fast the runs go (under valgrind, ~50
// times slower): for callgrind comparisons, SM_ACK_EVERY_MS=3600000 SM_ANSWER_DELAY_MS=5000 SM_ACK_EVERY_STANZAS=5
// keep every code path of the default policy but let the stanza count decide (docs/benchmarks.md, session 18).
const smPolicy: Record<string, number> = {};
for (const [env, key] of [["SM_ANSWER_DELAY_MS", "answerDelayMs"], ["SM_ACK_EVERY_MS", "ackEveryMs"], ["SM_ACK_EVERY_STANZAS", "ackEveryStanzas"]]) {
  if (process.env[env] !== undefined) smPolicy[key] = Number(process.env[env]);
}
const config = validate({ storage: { type: "sqlite", path: ":memory:" }, listeners: [], log: { level: "error" }, xmpp: { sm: smPolicy } });
const dir = FILE ? mkdtempSync(join(tmpdir(), "bench-xmpp-path-")) : null;
const store = new SqliteStore(dir === null ? ":memory:" : join(dir, "db.sqlite"));
const log = silentLogger();
const pgServer = PG ? await startPostgres() : null;
const pgStore = pgServer === null ? null : await PgStore.open(await pgServer.createDatabase("xmpppath"), log);
const archiveStore = pgStore === null ? store.archive : pgStore.archive;
const bus = new LocalHub(config.cluster.vnodes).join("w0", config.cluster.hostAddress);
const proxy = new ProxyDaemon(bus, { timeouts: { relay: config.timeouts.relay, xmpp: config.timeouts.xmpp }, sweepIntervalMs: 50, maxPendingPerSession: 1000, maxInboundPerSession: 10000, custody: config.cluster.custody });
const ctx = { core: proxy, auth: new Authenticator(store, 4096, null), config, log, metrics: new Metrics(), debug: false };
const offline = new OfflineWriter(store.xmpp, { cap: config.xmpp.offlineQueueMax, maxQueued: 10000, maxBatch: 100 }, log);
// Large enough for a whole run: the batches are written after it, measured apart.
const archive = MAM
  ? new ArchiveWriter(archiveStore, { defaultMode: "always", maxQueued: 4 * MESSAGES, maxBatch: 500, prefsCacheSize: 100000, retentionDays: 0, render: PATH_ONLY ? () => null : renderArchived, text: archivedText, renderModule: RENDER_MODULE, inRoster: async () => true }, log)
  : null;
const frontEnd = new XmppFrontEnd(ctx, store, store.xmpp, offline, store.profile, store.pep, archive === null ? null : { store: archiveStore, writer: archive, defaultMode: "always", maxPageSize: 100 });
proxy.archiveSink = frontEnd.archiveSink;

const HEADER = Buffer.from(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`);
const conns: MemoryConn[] = [];
for (let i = 0; i < USERS; i++) {
  const conn = new MemoryConn();
  const s = new XmppSession(conn, frontEnd.x, null);
  conn.onData(HEADER);
  // SASL and binding are what the socket benchmark measures; here the session goes straight to bound.
  s.authenticated(`user${i}`);
  s.bind("bench");
  conn.onData(Buffer.from("<presence/>"));
  if (SM) conn.onData(Buffer.from(`<enable xmlns='${SM_NS}' resume='true'/>`));
  conns.push(conn);
}
// Each session's roster is read at bind (asynchronously) and its <presence/> waits for it.
await new Promise((r) => setImmediate(r));

const stanzas: Buffer[] = [];
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
for (let i = 0; i < 4096; i++) {
  const to = Math.floor(rand() * USERS);
  const r = SM && SM_EVERY > 0 && i % SM_EVERY === 0 ? `<r xmlns='${SM_NS}'/>` : "";
  stanzas.push(Buffer.from(`<message to='user${to}@localhost' type='chat' id='m${i}'><body>1763761234567.123</body></message>${r}`));
}

/**
 * FLUSH=end: the turns do not wait for the archive's writes (only the run's end does), as a server's event loop
 * does not: the archive's thread writes beside the next turns. By default each turn waits for them (flushed()),
 * and the main thread sleeps meanwhile: on this VM a thread that slept ~30 ms runs its next turn slower (its
 * caches cold), which archives off never pay (docs/benchmarks.md, "Archives", session 17).
 */
const FLUSH_AT_END = process.env.FLUSH === "end";
/** Messages per event-loop turn: the archive's writer takes what a turn queued after it, as in the server. */
const TURN = Number(process.env.TURN ?? 500);

/**
 * The main thread's CPU clock, ns: the optional addon's threadCpuNs (clock_gettime(CLOCK_THREAD_CPUTIME_ID),
 * exact when read) where it is built, else /proc's schedstat (its first field: ns on the CPU, but brought up
 * to date only at scheduler ticks and sleeps: right to a tick per run). THREAD_CLOCK=schedstat forces the latter.
 */
function threadClock(): { name: string; ns: () => number } {
  const SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`;
  const schedstat = { name: "schedstat", ns: () => Number(readFileSync(SCHEDSTAT, "utf8").split(" ")[0]) };
  if (process.env.THREAD_CLOCK === "schedstat" || process.platform !== "linux") return schedstat;
  try {
    const native = createRequire(import.meta.url)(WriterThread.addonPath()) as { threadCpuNs?: () => number };
    if (typeof native.threadCpuNs === "function") return { name: "CLOCK_THREAD_CPUTIME_ID", ns: native.threadCpuNs };
  } catch {
    // Not built, or built before it had threadCpuNs: schedstat.
  }
  return schedstat;
}
const CLOCK = threadClock();
/** The main thread's CPU so far, µs. */
function mainCpu(): number {
  return CLOCK.ns() / 1000;
}

type Mark = NodeJS.CpuUsage | number;
function mark(): Mark {
  return MAIN_ONLY ? mainCpu() : process.cpuUsage();
}

/** µs since `since` (the process, or the main thread alone with MAIN_ONLY). */
function cpu(since: Mark): number {
  if (typeof since === "number") return mainCpu() - since;
  const used = process.cpuUsage(since);
  return used.user + used.system;
}

/** One run: the path's CPU per message, and the archive writer's (MAM=1), in ns. */
async function run(): Promise<[number, number]> {
  let path = 0;
  let writer = 0;
  for (let at = 0; at < MESSAGES; at += TURN) {
    const start = mark();
    const end = Math.min(MESSAGES, at + TURN);
    for (let i = at; i < end; i++) {
      conns[i % USERS].onData(stanzas[i & 4095]);
      // The clients that read an <r/> answer it now, as pump.c does once it has scanned the read.
      while (owing.length > 0) {
        const c = owing.pop()!;
        smTraffic.clientA++;
        c.onData(Buffer.from(`<a xmlns='${SM_NS}' h='${c.handled}'/>`));
      }
    }
    path += cpu(start);
    if (archive !== null && !FLUSH_AT_END) {
      const w = mark();
      await archive.flushed();
      writer += cpu(w);
    } else if (MAIN_ONLY || CALLGRIND || archive !== null) {
      // What the turn left for later (setImmediate, timers) runs here, counted as the writer's time is with
      // archives on: so that on − off (path + after the turn) is all that archiving costs the main thread.
      const w = mark();
      await new Promise((r) => setImmediate(r));
      writer += cpu(w);
    }
  }
  if (archive !== null && FLUSH_AT_END) {
    const w = mark();
    await archive.flushed();
    writer += cpu(w);
  }
  return [(path / MESSAGES) * 1000, (writer / MESSAGES) * 1000];
}

/** The main thread's minor page faults, and its user and system CPU in ticks (/proc's task stat: 10 ms each). */
function mainStat(): [faults: number, user: number, sys: number] {
  const st = readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8");
  const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
  return [Number(f[7]), Number(f[11]), Number(f[12])];
}
const WARMUP = Number(process.env.WARMUP ?? 1);
for (let w = 0; w < WARMUP; w++) await run(); // warm-up: JIT
const statBefore = MAIN_ONLY ? mainStat() : null;
const results: number[] = [];
const writes: number[] = [];
const sums: number[] = [];
for (let r = 0; r < RUNS; r++) {
  if (CALLGRIND) loadavg();
  const [p, w] = await run();
  results.push(p);
  writes.push(w);
  sums.push(p + w);
}
if (CALLGRIND) loadavg();
const statAfter = MAIN_ONLY ? mainStat() : null;
sums.sort((a, b) => a - b);
writes.sort((a, b) => a - b);
results.sort((a, b) => a - b);
const delivered = conns.reduce((n, c) => n + c.bytes, 0);
const unacked = frontEnd.x.metrics.sm.unacked;
// A session cut (a wrong h, a slow consumer) would make the figure meaningless.
const cut = conns.filter((c) => c.closed).length;
if (cut > 0) console.error(`${cut} sessions were cut`);
if (dir !== null) {
  await (store.archive as unknown as { close(): Promise<void> }).close();
  rmSync(dir, { recursive: true, force: true });
}
if (pgStore !== null) await pgStore.close();
if (pgServer !== null) await pgServer.stop();
const how = MAIN_ONLY ? `main thread's CPU, ${CLOCK.name}` : "process CPU";
if (archive === null && MAIN_ONLY) console.log(`after each turn (no archive): ${writes[writes.length >> 1].toFixed(0)} ns/message (runs ${writes.map((x) => x.toFixed(0)).join(", ")})`);
if (archive !== null) console.log(`archive writer (${PG ? "PostgreSQL, rows made and inserted on its thread" : `SQLite ${FILE ? "file, written on its thread" : "in memory"}`}, turns of ${TURN}; ${how}): ${writes[writes.length >> 1].toFixed(0)} ns/message (runs ${writes.map((x) => x.toFixed(0)).join(", ")}); ${archive.stats.archived} rows written (${(archive.stats.archived / ((RUNS + WARMUP) * MESSAGES)).toFixed(2)} per message: the sender's archive and the recipient's), ${archive.stats.dropped} dropped`);
if (SM) {
  const n = (RUNS + WARMUP) * MESSAGES;
  const per = (k: number) => ((k / n) * 1000).toFixed(0);
  console.log(`stream management, per 1,000 messages (warm-ups included): server <r/> ${per(smTraffic.serverR)}, server <a/> ${per(smTraffic.serverA)}, client <a h/> ${per(smTraffic.clientA)}`);
}
console.log(`xmpp message path${MAM ? (PATH_ONLY ? " with archives on, nothing written" : " with archives on") : ""}${SM ? ` with stream management (client <r/> every ${SM_EVERY}; ${unacked} unacked at the end)` : ""} (${how}): ${results[results.length >> 1].toFixed(0)} ns/message (median of ${RUNS} runs of ${MESSAGES}; runs ${results.map((x) => x.toFixed(0)).join(", ")}); ${USERS} sessions; ${(delivered / 1e6).toFixed(0)} MB written`);
// The split between the two is not reliable with MAIN_ONLY: schedstat brings a running thread's figure up to
// date only at a scheduler tick (4 ms here) or when it sleeps, and with archives on the wait for the thread's
// answer is such a sleep, which charges "after the turn" with the path's last milliseconds. Their sum per run is
// right to a tick per run (docs/benchmarks.md, "Archives", session 16): the figure to compare on and off.
if (statBefore !== null && statAfter !== null) {
  const n = RUNS * MESSAGES;
  console.log(`main thread in the runs: ${(((statAfter[0] - statBefore[0]) / n) * 1000).toFixed(1)} minor page faults per 1,000 messages; user ${((statAfter[1] - statBefore[1]) * 1e7 / n).toFixed(0)}, system ${((statAfter[2] - statBefore[2]) * 1e7 / n).toFixed(0)} ns/message (10 ms ticks)`);
}
if (MAIN_ONLY) console.log(`path + after the turn (main thread's CPU): ${sums[sums.length >> 1].toFixed(0)} ns/message (runs ${sums.map((x) => x.toFixed(0)).join(", ")})`);
process.exit(0);
