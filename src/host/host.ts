import cluster, { type Worker } from "node:cluster";
import { performance } from "node:perf_hooks";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, type Config } from "../config/config.js";
import { createLogger, type Logger } from "../log/logger.js";
import { migrateStorage } from "../store/open.js";
import { Server } from "../server/server.js";
import { workerIdOf } from "../cluster/nats-bus.js";
import { AdminServer } from "../admin/http.js";
import { workerSource } from "../admin/worker.js";
import { PrimarySource, answerPrimary } from "../admin/cluster.js";
import { Balancer, acceptShared } from "./balancer.js";
import { UploadHttp } from "../upload/http.js";
import { loadUploadKey } from "../upload/slot.js";
import { HandoffRelay, WorkerHandoff } from "./handoff.js";

const WORKER_ENV = "SWITCHBOARD_WORKER";
/** The host's directory of worker sockets (src/cluster/host-links.ts), when cluster.hostLinks is on. */
const LINKS_ENV = "SWITCHBOARD_LINKS";
/** The private directory where the workers pass connections to each other (cluster.handoff's direct path). */
const HANDOFF_ENV = "SWITCHBOARD_HANDOFF_DIR";
/** The URL of the host's XEP-0363 listener, which the primary runs, told to its workers. */
const UPLOAD_ENV = "SWITCHBOARD_UPLOAD_URL";
/** sysexits.h: a configuration refused (other ring parameters, a worker id already running); the CLI exits so too. */
const EX_CONFIG = 78;
/** A worker tells the primary it serves (IPC). */
const STARTED = { sbHost: "started" } as const;
/** primary → worker: it listens on every listener, so it is started (it logs "switchboard started"). */
const SERVING = { sbHost: "serving" } as const;
/** primary → the other workers: this one's process exited (SIGKILL, a crash); they drop it from the ring now (NatsBus.peerDied). */
interface Died {
  sbHost: "died";
  workerId: string;
}
/** After drainTimeoutMs: time for the bus and the store to close before a process is killed. */
const KILL_MARGIN_MS = 5000;

/**
 * One host. One worker: this process. More: `workers` processes under
 * node:cluster, each a worker of the local ring (seed 000) with its own event
 * loop, talking over the cluster bus. The primary only binds the listeners
 * (the workers accept, within a share it sets: src/host/balancer.ts), restarts
 * a worker that dies, and stops the host, non-zero, when a worker cannot
 * start; everything else happens in the workers.
 *
 * The admin listener (`admin`) is the host's: this process's when it is the
 * only worker, else the primary's, which asks its workers (src/admin/cluster.ts).
 * It is bound before anything else starts, so a port in use stops the start.
 */
export async function runHost(config: Config, workers: number): Promise<void> {
  if (workers <= 1) await single(config);
  else if (cluster.isPrimary) await primary(config, workers, createLogger(config.log, { worker: "primary" }));
  else await worker(config, workers, Number(process.env[WORKER_ENV]));
}

async function single(config: Config): Promise<void> {
  const log = createLogger(config.log);
  const admin = config.admin.enabled ? await AdminServer.start(config.admin, log) : null;
  let server: Server;
  try {
    server = await startRefusable(config, { log });
  } catch (e) {
    await admin?.close();
    throw e;
  }
  admin?.serve(workerSource(server));
  stopOn(server, ["SIGINT", "SIGTERM"]);
}

/**
 * Server.start, and a refusal that comes after it (JoinGuard: a duplicate or foreign
 * worker heard within the first heartbeats) stops the server and exits EX_CONFIG.
 */
async function startRefusable(config: Config, opts: Parameters<typeof Server.start>[1] & { log: Logger }): Promise<Server> {
  let server: Server | null = null;
  let refused = false;
  const leave = (s: Server) => void s.stop().finally(() => process.exit(EX_CONFIG));
  server = await Server.start(config, {
    ...opts,
    onRefused: () => {
      refused = true;
      if (server !== null) leave(server);
    },
  });
  if (refused) leave(server);
  return server;
}

/** The server stops cleanly, and the process exits 0, at the first of these process events. */
function stopOn(server: Server, events: string[]): void {
  const stop = async (why: string) => {
    server.log.info(`received ${why}, stopping`);
    // stop() ends within drainTimeoutMs; this covers a bus or store that hangs after it.
    setTimeout(() => {
      server.log.error("stop did not finish in time; exiting", { drainTimeoutMs: server.config.drainTimeoutMs });
      process.exit(1);
    }, server.config.drainTimeoutMs + KILL_MARGIN_MS).unref();
    await server.stop();
    process.exit(0);
  };
  for (const ev of events) process.once(ev, () => void stop(ev));
}

async function primary(config: Config, n: number, log: Logger): Promise<void> {
  // Every store's schema is brought up to date once here (PostgreSQL: under its advisory lock), not raced by n workers.
  await migrateStorage(config.storage, log);
  const admin = config.admin.enabled ? await AdminServer.start(config.admin, log) : null;
  // XEP-0363's HTTP listener is the host's, like admin (docs/xmpp.md, "HTTP File Upload"): one port, one sweeper,
  // and the quota's uploads under way in one process; the key is made here, before any worker reads it.
  const upload = config.upload.enabled ? await UploadHttp.start(config.upload, loadUploadKey(config.upload.secret, config.upload.path!), config.domain, log) : null;
  const byIndex = new Map<number, Worker>();
  const started = new Map<number, number>();
  const backoff = new Map<number, number>();
  const restarts = new Map<number, number>();
  const idOf = (i: number) => workerIdOf(config.cluster.hostAddress, i);
  admin?.serve(new PrimarySource(() => Array.from({ length: n }, (_, i) => ({ id: idOf(i), worker: byIndex.get(i), restarts: restarts.get(i) ?? 0 }))));
  let stopping = false;
  /** The exit code once stopping: 0 only for a host that had started and was told to stop. */
  let stopCode = 0;
  /** Workers that have served at least once; the host has started when all have. */
  const served = new Set<number>();
  const hostStarted = () => served.size === n;
  const balancer = new Balancer(config.listeners, log);
  // Connections moving to their user's owner worker after SASL pass through here (cluster.handoff).
  const relay = config.cluster.handoff ? new HandoffRelay(log) : null;
  // The workers' bus messages to each other go over Unix sockets here (mkdtemp: mode 0700, this user only).
  const links = config.cluster.hostLinks ? mkdtempSync(join(tmpdir(), "switchboard-links-")) : null;
  if (links !== null) process.on("exit", () => rmSync(links, { recursive: true, force: true }));
  // Hand-offs go from worker to worker over Unix sockets here where the addon is built (src/host/handoff.ts).
  const handoffDir = config.cluster.handoff ? mkdtempSync(join(tmpdir(), "switchboard-handoff-")) : null;
  if (handoffDir !== null) process.on("exit", () => rmSync(handoffDir, { recursive: true, force: true }));

  const fork = (i: number) => {
    const w = cluster.fork({ [WORKER_ENV]: String(i), ...(links !== null ? { [LINKS_ENV]: links } : {}), ...(handoffDir !== null ? { [HANDOFF_ENV]: handoffDir } : {}), ...(upload !== null ? { [UPLOAD_ENV]: upload.baseUrl } : {}) });
    byIndex.set(i, w);
    started.set(i, Date.now());
    relay?.watch(i, w);
    w.on("message", (m: unknown) => {
      if (typeof m !== "object" || m === null || (m as { sbHost?: unknown }).sbHost !== STARTED.sbHost || stopping) return;
      balancer.bind().then(
        () => {
          if (stopping || byIndex.get(i) !== w) return;
          balancer.serve(i, w);
          // Started once it listens on every listener: the listening sockets reach it a round trip later, and a
          // connect before any worker listens is refused (the primary binds them, never listens).
          return balancer.listening(i).then(() => {
            if (stopping || byIndex.get(i) !== w) return;
            // The worker's "switchboard started" waits for this (a restart's too).
            if (w.isConnected()) w.send(SERVING, undefined, {}, () => {});
            if (served.has(i)) return;
            served.add(i);
            if (hostStarted()) log.info("all workers started", { workers: n });
          });
        },
        (e: Error) => {
          log.error("cannot listen", { error: e.message });
          stopCode = 1;
          stop("a listener that cannot bind");
        },
      );
    });
    w.on("exit", (code, signal) => {
      balancer.gone(i);
      if (byIndex.get(i) === w) byIndex.delete(i);
      if (stopping) {
        if (byIndex.size === 0) process.exit(stopCode);
        return;
      }
      // The others would learn it from its silence, three heartbeats on: custody routes again, and requests to its
      // sessions fail, as soon as they hear it from here.
      for (const o of byIndex.values()) if (o.isConnected()) o.send({ sbHost: "died", workerId: idOf(i) } satisfies Died, undefined, {}, () => {});
      // A worker that cannot start (NATS out of reach for cluster.nats.connectTimeoutMs, a refused configuration)
      // would not start again: the host stops, non-zero, for its supervisor to see. So does a refusal at any time.
      if (!hostStarted() || code === EX_CONFIG) {
        log.error("a worker could not start or was refused; stopping the host", { workerId: idOf(i), code, signal });
        stopCode = code === EX_CONFIG ? EX_CONFIG : 1;
        stop("a worker's failure");
        return;
      }
      // A worker that dies at once would die again at once: wait longer each time, up to 30 s.
      const quick = Date.now() - (started.get(i) ?? 0) < 10_000;
      const delay = quick ? Math.min(30_000, (backoff.get(i) ?? 500) * 2) : 500;
      backoff.set(i, delay);
      log.error("worker died; restarting it", { workerId: idOf(i), code, signal, inMs: delay });
      setTimeout(() => {
        if (stopping) return;
        restarts.set(i, (restarts.get(i) ?? 0) + 1);
        fork(i);
      }, delay);
    });
  };
  for (let i = 0; i < n; i++) fork(i);
  log.info("switchboard host started", { workers: n, pid: process.pid });

  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    // Stopped before it ever served: not the clean stop of a host that ran.
    if (stopCode === 0 && !hostStarted()) stopCode = 1;
    log.info(`received ${signal}, stopping workers`, { exitCode: stopCode });
    // The direct path's moves are the workers' own (switchboard_cluster_handoffs_total).
    if (relay !== null) log.info("connection hand-offs through the primary", { moved: relay.moved, stayed: relay.stayed });
    // New connections are refused from now on; the workers drain theirs.
    balancer.close();
    // Uploads under way get the workers' drain time to finish (the process exits when the workers have).
    void upload?.close(performance.now() + config.drainTimeoutMs);
    if (byIndex.size === 0) process.exit(stopCode);
    for (const w of byIndex.values()) w.process.kill("SIGTERM");
    // Longer than the workers' own drain, so a draining worker is not cut short.
    setTimeout(() => {
      for (const w of byIndex.values()) w.process.kill("SIGKILL");
      process.exit(1);
    }, config.drainTimeoutMs + KILL_MARGIN_MS).unref();
  };
  process.once("SIGINT", () => stop("SIGINT"));
  process.once("SIGTERM", () => stop("SIGTERM"));
}

async function worker(config: Config, n: number, index: number): Promise<void> {
  const workerId = workerIdOf(config.cluster.hostAddress, index);
  const log = createLogger(config.log, { worker: workerId });
  let server: Server;
  const handoff = config.cluster.handoff ? new WorkerHandoff(index, config.cluster.hostAddress, log, process.env[HANDOFF_ENV]) : undefined;
  try {
    const links = process.env[LINKS_ENV];
    const uploadUrl = process.env[UPLOAD_ENV];
    server = await startRefusable(config, { log, workerId, expectWorkers: n, migrated: true, handed: true, handoff, ...(links ? { links: { dir: links, index } } : {}), ...(uploadUrl ? { uploadUrl } : {}) });
  } catch (e) {
    // The IPC channel to the primary would keep this process alive: exit, with the code the primary acts on.
    log.error("worker could not start", { error: (e as Error).message });
    process.exit(e instanceof ConfigError ? EX_CONFIG : 1);
  }
  const gate = acceptShared(server, log);
  // Stopping: no new connection is accepted here; the kernel's queue is left to the others (or closes with the host).
  for (const ev of ["SIGTERM", "disconnect"]) process.once(ev, () => gate.close());
  const s = server;
  handoff?.serve((bare) => s.proxy.ownerOf(bare), s.listeners, () => s.draining);
  let started = false;
  process.on("message", (m: unknown) => {
    if (typeof m !== "object" || m === null) return;
    const what = (m as { sbHost?: unknown }).sbHost;
    if (what === SERVING.sbHost && !started) {
      started = true;
      log.info("switchboard started", { domain: config.domain, worker: workerId });
    } else if (what === "died" && typeof (m as Died).workerId === "string") s.bus.peerDied?.((m as Died).workerId);
  });
  process.send?.(STARTED);
  if (config.admin.enabled) answerPrimary(server);
  // SIGINT from a terminal reaches the whole group: the primary decides when workers stop.
  process.on("SIGINT", () => {});
  // "disconnect": the primary is gone (even by SIGKILL), and nobody would restart or stop this worker.
  stopOn(server, ["SIGTERM", "disconnect"]);
}
