/**
 * bench:scale (issue 14, "Scale"): N XMPP sessions log in and stay idle; what
 * each costs the server in memory (RSS, V8 heap, external memory after a full
 * GC, minus the empty server's), and the server's CPU at rest with its timers
 * (XEP-0199 pings, XEP-0198 <r/>) running. See docs/benchmarks.md, "Idle
 * sessions and 100,000 connections".
 */
import { fork, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { sleep } from "../lib/proc.js";
import { REPO } from "../lib/switchboard.js";
import { Scrape } from "../lib/scrape.js";
import type { ClientSpec, ScaleCommand, ScaleEvent } from "./client.js";
import type { Memory } from "./inspector.js";
import { startScaleServer } from "./server.js";

export interface ScaleParams {
  sessions: number;
  workers: number;
  /** Client processes (each holds at most ~16,000 sockets: 20,000 open files per process here). */
  clients: number;
  /** Source addresses 127.0.0.2 … for the clients (about 28,000 ephemeral ports each). */
  addresses: number;
  /** Logins in flight per client process. */
  window: number;
  sm: boolean;
  keepaliveMs: number;
  /** After the last login, before measuring: login-time timers (the first XEP-0198 <r/>) run out. */
  settleS: number;
  /** The window over which CPU at rest is measured. */
  idleS: number;
  /**
   * The server's io.writerThread. Off by default here: the thread writes to its own dup() of each
   * socket, so with it a worker limited to 20,000 descriptors holds only ~10,600 connections.
   */
  writerThread: boolean;
  /** Server settings under `xmpp` (pingAfterMs, pingTimeoutMs, sm). */
  xmpp: Record<string, unknown>;
  /** PBKDF2 iterations of the accounts: the cost of each PLAIN check, which is not what this measures. */
  iterations: number;
  loginTimeoutMs: number;
  /** taskset CPUs for the server and the clients; null: unpinned. */
  serverCpu: string | null;
  /** Write a heap snapshot of the first worker here after the idle window. */
  snapshot: string | null;
}

export interface WorkerMemory {
  baseline: Memory;
  loaded: Memory;
}

export interface ScaleResult {
  params: ScaleParams;
  node: string;
  online: number;
  failed: number;
  firstError: string;
  loginSeconds: number;
  loginServerCpuSeconds: number;
  workers: WorkerMemory[];
  /** Per session, over all workers: after − baseline, divided by the sessions online. */
  perSession: { rss: number; heapUsed: number; external: number; arrayBuffers: number };
  /** Server processes (host, workers, nats-server): CPU over the idle window, in % of one core. */
  idleCpuPercent: number;
  idleServerCpuSeconds: number;
  idleClientCpuSeconds: number;
  /** Stanzas the server read and wrote during the idle window (pings, their answers, presence…). */
  idleStanzas: { in: number; out: number };
  /** Cluster healing over the whole run, every worker summed (admin /metrics after the final probe; NaN where the server lacks the metric). */
  cluster: { busSent: number; membershipChanges: number; renewals: number; resyncs: number; bindsSent: number; bindBatches: number };
  /** During the idle window: server pings answered, <r/> answered, keepalives sent; dropped: sessions the server closed, ever. */
  clientStats: { pings: number; acks: number; keepalives: number; dropped: number };
  alive: number;
  dead: number;
  hostRssMiB: number;
}

const HZ = 100;
function cpuTicks(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}
const cpuOf = (pids: number[]) => pids.reduce((n, p) => n + cpuTicks(p), 0) / HZ;
function rssKb(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

type Stats = Extract<ScaleEvent, { ev: "stats" }>;
const sum = (xs: Stats[], k: "cpuSeconds" | "pings" | "acks" | "keepalives" | "dropped") => xs.reduce((n, e) => n + e[k], 0);

/** Waits for one event of each client (`pick` true), up to `timeoutMs`. */
function collect<E extends ScaleEvent>(clients: ChildProcess[], pick: (e: ScaleEvent) => e is E, send: ScaleCommand | null, timeoutMs: number): Promise<E[]> {
  return new Promise((resolve, reject) => {
    const got = new Map<ChildProcess, E>();
    const timer = setTimeout(() => reject(new Error(`clients did not answer within ${timeoutMs} ms (${got.size}/${clients.length})`)), timeoutMs);
    const handlers = clients.map((c) => {
      const h = (e: ScaleEvent) => {
        if (!pick(e)) return;
        got.set(c, e);
        if (got.size === clients.length) {
          clearTimeout(timer);
          clients.forEach((cc, i) => cc.off("message", handlers[i]));
          resolve(clients.map((cc) => got.get(cc)!));
        }
      };
      c.on("message", h);
      return h;
    });
    if (send !== null) for (const c of clients) c.send(send);
  });
}

export async function runScale(p: ScaleParams, log: (s: string) => void = () => {}): Promise<ScaleResult> {
  const server = await startScaleServer({ sessions: p.sessions, workers: p.workers, iterations: p.iterations, xmpp: p.xmpp, writerThread: p.writerThread, cpu: p.serverCpu });
  const clients: ChildProcess[] = [];
  try {
    // The empty server, as it will be measured loaded.
    const baseline = await Promise.all(server.workers.map((w) => w.memoryAfterGc()));
    const per = Math.ceil(p.sessions / p.clients);
    const t0 = performance.now();
    const cpu0 = cpuOf(server.pids());
    const logins = new Map<ChildProcess, Extract<ScaleEvent, { ev: "login" }>>();
    for (let k = 0; k < p.clients; k++) {
      const spec: ClientSpec = {
        host: "127.0.0.1",
        port: server.port,
        domain: "localhost",
        from: k * per,
        to: Math.min(p.sessions, (k + 1) * per),
        localAddress: `127.0.0.${2 + (k % p.addresses)}`,
        window: p.window,
        sm: p.sm,
        keepaliveMs: p.keepaliveMs,
        loginTimeoutMs: p.loginTimeoutMs,
      };
      const c = fork(join(REPO, "dist/bench/scale/client.js"), [JSON.stringify(spec)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
      c.on("message", (e: ScaleEvent) => {
        if (e.ev === "login") logins.set(c, e);
      });
      clients.push(c);
    }
    // Logins: until every client process is done, or nothing moved for loginTimeoutMs.
    let last = -1;
    let lastMove = performance.now();
    for (;;) {
      await sleep(500);
      const all = [...logins.values()];
      const online = all.reduce((n, e) => n + e.online, 0);
      const failed = all.reduce((n, e) => n + e.failed, 0);
      if (online + failed !== last) {
        last = online + failed;
        lastMove = performance.now();
        log(`logins: ${online} online, ${failed} failed`);
      }
      if (all.length === clients.length && all.every((e) => e.done)) break;
      if (performance.now() - lastMove > p.loginTimeoutMs + 5000) throw new Error(`logins stalled at ${online} online, ${failed} failed: ${all.find((e) => e.firstError)?.firstError ?? ""}`);
    }
    const loginSeconds = (performance.now() - t0) / 1000;
    const loginServerCpuSeconds = cpuOf(server.pids()) - cpu0;
    const done = [...logins.values()];
    const online = done.reduce((n, e) => n + e.online, 0);
    const failed = done.reduce((n, e) => n + e.failed, 0);
    log(`${online} online, ${failed} failed${failed > 0 ? ` (${done.find((e) => e.firstError)?.firstError})` : ""} in ${loginSeconds.toFixed(1)} s; settling ${p.settleS} s`);
    await sleep(p.settleS * 1000);

    const loaded = await Promise.all(server.workers.map((w) => w.memoryAfterGc()));
    const diff = (k: keyof Memory) => loaded.reduce((n, m, i) => n + m[k] - baseline[i][k], 0) / Math.max(1, online);
    const hostRssMiB = server.pids().reduce((n, pid) => n + rssKb(pid), 0) / 1024;

    log(`idle for ${p.idleS} s`);
    const isStats = (e: ScaleEvent): e is Extract<ScaleEvent, { ev: "stats" }> => e.ev === "stats";
    const before = await Scrape.of(server.adminPort);
    const stats0 = await collect(clients, isStats, { cmd: "stats" }, 10_000);
    const idle0 = cpuOf(server.pids());
    await sleep(p.idleS * 1000);
    const idleServerCpuSeconds = cpuOf(server.pids()) - idle0;
    const stats = await collect(clients, isStats, { cmd: "stats" }, 10_000);
    const after = await Scrape.of(server.adminPort);
    const stanzas = (s: Scrape, direction: string) => s.get("switchboard_xmpp_stanzas_total", { direction });

    if (p.snapshot !== null) {
      log(`heap snapshot of worker 0 to ${p.snapshot}`);
      await server.workers[0].snapshot(p.snapshot);
    }
    const isProbe = (e: ScaleEvent): e is Extract<ScaleEvent, { ev: "probe" }> => e.ev === "probe";
    const probes = await collect(clients, isProbe, { cmd: "probe", timeoutMs: 30_000 }, 60_000);
    // After the probe, whose burst of pings is itself a load on the cluster (late heartbeats).
    const end = await Scrape.of(server.adminPort);
    return {
      params: p,
      node: process.version,
      online,
      failed,
      firstError: done.find((e) => e.firstError)?.firstError ?? "",
      loginSeconds,
      loginServerCpuSeconds,
      workers: baseline.map((b, i) => ({ baseline: b, loaded: loaded[i] })),
      perSession: { rss: diff("rss"), heapUsed: diff("heapUsed"), external: diff("external"), arrayBuffers: diff("arrayBuffers") },
      idleCpuPercent: (idleServerCpuSeconds / p.idleS) * 100,
      idleServerCpuSeconds,
      idleClientCpuSeconds: sum(stats, "cpuSeconds") - sum(stats0, "cpuSeconds"),
      idleStanzas: { in: stanzas(after, "in") - stanzas(before, "in"), out: stanzas(after, "out") - stanzas(before, "out") },
      clientStats: {
        pings: sum(stats, "pings") - sum(stats0, "pings"),
        acks: sum(stats, "acks") - sum(stats0, "acks"),
        keepalives: sum(stats, "keepalives") - sum(stats0, "keepalives"),
        dropped: sum(stats, "dropped"),
      },
      alive: probes.reduce((n, e) => n + e.alive, 0),
      dead: probes.reduce((n, e) => n + e.dead, 0),
      hostRssMiB,
      cluster: {
        busSent: end.get("switchboard_cluster_bus_messages_total", { direction: "sent" }),
        membershipChanges: end.get("switchboard_cluster_membership_changes_total"),
        renewals: end.get("switchboard_cluster_renewals_total"),
        resyncs: end.get("switchboard_cluster_resyncs_total"),
        bindsSent: end.get("switchboard_cluster_rebinds_total", { unit: "sessions" }),
        bindBatches: end.get("switchboard_cluster_rebinds_total", { unit: "messages" }),
      },
    };
  } finally {
    for (const c of clients) if (c.connected) c.send({ cmd: "stop" } satisfies ScaleCommand);
    await Promise.all(clients.map((c) => (c.exitCode !== null ? null : new Promise((r) => c.once("exit", r)))));
    await server.stop();
  }
}
