import cluster, { type Worker } from "node:cluster";
import type { Config } from "../config/config.js";
import { createLogger, type Logger } from "../log/logger.js";
import { migrateStorage } from "../store/open.js";
import { Server } from "../server/server.js";
import { workerIdOf } from "../cluster/nats-bus.js";
import { AdminServer } from "../admin/http.js";
import { workerSource } from "../admin/worker.js";
import { PrimarySource, answerPrimary } from "../admin/cluster.js";

const WORKER_ENV = "SWITCHBOARD_WORKER";
/** After drainTimeoutMs: time for the bus and the store to close before a process is killed. */
const KILL_MARGIN_MS = 5000;

/**
 * One host. One worker: this process. More: `workers` processes under
 * node:cluster, each a worker of the local ring (seed 000) with its own event
 * loop, talking over the cluster bus. The primary only hands out accepted
 * connections (round-robin) and restarts a worker that dies; everything else
 * happens in the workers.
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
    server = await Server.start(config, { log });
  } catch (e) {
    await admin?.close();
    throw e;
  }
  admin?.serve(workerSource(server));
  stopOn(server, ["SIGINT", "SIGTERM"]);
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
  const byIndex = new Map<number, Worker>();
  const started = new Map<number, number>();
  const backoff = new Map<number, number>();
  const restarts = new Map<number, number>();
  const idOf = (i: number) => workerIdOf(config.cluster.hostAddress, i);
  admin?.serve(new PrimarySource(() => Array.from({ length: n }, (_, i) => ({ id: idOf(i), worker: byIndex.get(i), restarts: restarts.get(i) ?? 0 }))));
  let stopping = false;

  const fork = (i: number) => {
    const w = cluster.fork({ [WORKER_ENV]: String(i) });
    byIndex.set(i, w);
    started.set(i, Date.now());
    w.on("exit", (code, signal) => {
      if (byIndex.get(i) === w) byIndex.delete(i);
      if (stopping) {
        if (byIndex.size === 0) process.exit(0);
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
    log.info(`received ${signal}, stopping workers`);
    if (byIndex.size === 0) process.exit(0);
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
  const server = await Server.start(config, { log: createLogger(config.log, { worker: workerId }), workerId, expectWorkers: n, migrated: true });
  if (config.admin.enabled) answerPrimary(server);
  // SIGINT from a terminal reaches the whole group: the primary decides when workers stop.
  process.on("SIGINT", () => {});
  // "disconnect": the primary is gone (even by SIGKILL), and nobody would restart or stop this worker.
  stopOn(server, ["SIGTERM", "disconnect"]);
}
