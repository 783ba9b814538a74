import { Gauge, collectDefaultMetrics, type Registry } from "prom-client";
import { readdir, statSync } from "node:fs";
import { promisify } from "node:util";

/**
 * prom-client's default metrics that walk every open descriptor or libuv
 * handle on the event loop at each scrape: with 10,000 client sockets they
 * held the loop ~22 ms a scrape (readdirSync of /proc/self/fd ~12 ms, the
 * four handle and resource lists ~10 ms; docs/benchmarks.md, session 19),
 * which every message in flight waited out. The handle lists are left out
 * (`switchboard_connections` counts the sockets); the descriptor count is kept,
 * read without a walk (processOpenFds).
 */
const WALKING = ["process_open_fds", "nodejs_active_handles", "nodejs_active_handles_total", "nodejs_active_resources", "nodejs_active_resources_total"];

const readdirAsync = promisify(readdir);

/**
 * process_* and nodejs_* (CPU, memory, heap, GC, descriptors, event-loop
 * delay) into `reg`, none of them O(connections) on the event loop.
 */
export function processMetrics(reg: Registry): void {
  collectDefaultMetrics({ register: reg });
  for (const name of WALKING) reg.removeSingleMetric(name);
  if (process.platform !== "linux") return;
  new Gauge({
    name: "process_open_fds",
    help: "Number of open file descriptors.",
    registers: [reg],
    async collect() {
      const n = await processOpenFds().catch(() => NaN);
      if (!Number.isNaN(n)) this.set(n);
    },
  });
}

/**
 * Open descriptors of this process. Linux 6.2 and later give their number as
 * the size of /proc/self/fd (a count of the descriptor table's bits); older
 * kernels say 0 there, and the directory is listed on libuv's thread pool
 * instead, off the event loop (minus the descriptor the listing itself holds).
 */
export async function processOpenFds(): Promise<number> {
  const n = statSync("/proc/self/fd").size;
  if (n > 0) return n;
  return (await readdirAsync("/proc/self/fd")).length - 1;
}
