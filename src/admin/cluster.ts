import cluster, { type Worker } from "node:cluster";
import { AggregatorRegistry, Counter, Gauge, Registry } from "prom-client";
import { processMetrics } from "./process-metrics.js";
import type { Server } from "../server/server.js";
import type { AdminSource } from "./http.js";
import { workerRegistry } from "./registry.js";
import { workerProblems } from "./health.js";

/*
 * A host of several workers (node:cluster) has one admin port, on the
 * primary, as it has one port per listener: an operator scrapes and probes
 * the host, not each process. The primary asks every worker over the cluster's
 * IPC channel and answers with all of their series side by side (each carries
 * its `worker` label) plus its own. A worker that is starting, or does not
 * answer in time, costs only its own series (switchboard_worker_up 0) and
 * makes /readyz say which worker is not ready; it never fails the scrape.
 */

/** How long the primary waits for a worker's answer. */
const ASK_MS = 2000;

interface Ask {
  sbAdmin: "metrics" | "ready";
  id: number;
}
type Answer = { sbAdmin: "metrics"; id: number; metrics: object[] | null } | { sbAdmin: "ready"; id: number; problems: string[] } | { sbAdmin: "up" };

/** One worker slot of the host: its id, the process serving it now (none while restarting), its restarts so far. */
export interface WorkerSlot {
  id: string;
  worker: Worker | undefined;
  restarts: number;
}

/** The primary's admin routes over its workers. */
export class PrimarySource implements AdminSource {
  private readonly reg = new Registry();
  private readonly up: Gauge;
  /** Workers that said they answer admin requests (they do once their server has started). */
  private readonly serving = new WeakSet<Worker>();
  private readonly waiting = new Map<number, (a: Answer) => void>();
  private seq = 0;

  constructor(private readonly slots: () => WorkerSlot[]) {
    this.reg.setDefaultLabels({ worker: "primary" });
    processMetrics(this.reg);
    this.up = new Gauge({ name: "switchboard_worker_up", help: "1 when the worker answered this scrape, 0 when it is starting, restarting or did not answer.", labelNames: ["worker"], registers: [this.reg] });
    new Counter({
      name: "switchboard_worker_restarts_total",
      help: "Workers restarted by the primary after they died.",
      labelNames: ["worker"],
      registers: [this.reg],
      collect() {
        this.reset();
        for (const s of slots()) this.inc({ worker: s.id }, s.restarts);
      },
    });
    cluster.on("message", (worker: Worker, m: Answer) => {
      if (typeof m !== "object" || m === null || !("sbAdmin" in m)) return;
      if (m.sbAdmin === "up") this.serving.add(worker);
      else this.waiting.get(m.id)?.(m);
    });
  }

  private ask(w: Worker | undefined, what: Ask["sbAdmin"]): Promise<Answer | null> {
    if (w === undefined || !this.serving.has(w) || !w.isConnected()) return Promise.resolve(null);
    const id = ++this.seq;
    return new Promise((resolve) => {
      const done = (a: Answer | null) => {
        clearTimeout(timer);
        w.removeListener("exit", gone);
        this.waiting.delete(id);
        resolve(a);
      };
      // Killed before the primary noticed: it will not answer, and the primary need not wait to know it.
      const gone = () => done(null);
      w.once("exit", gone);
      const timer = setTimeout(gone, ASK_MS);
      this.waiting.set(id, done);
      try {
        // A worker that died since isConnected(): the callback gets the error (without one it would be thrown at the primary).
        w.send({ sbAdmin: what, id } satisfies Ask, undefined, undefined, (e) => {
          if (e) done(null);
        });
      } catch {
        done(null);
      }
    });
  }

  async metrics(): Promise<{ contentType: string; text: string }> {
    const slots = this.slots();
    const answers = await Promise.all(slots.map((s) => this.ask(s.worker, "metrics")));
    const parts: object[][] = [];
    this.up.reset();
    slots.forEach((s, i) => {
      const a = answers[i];
      const ok = a !== null && a.sbAdmin === "metrics" && a.metrics !== null;
      this.up.set({ worker: s.id }, ok ? 1 : 0);
      if (ok) parts.push(a.metrics!);
    });
    parts.push(await this.reg.getMetricsAsJSON());
    // Series of different workers differ by their worker label: "sum" over one value each puts them side by side.
    // (prom-client's own aggregators would sum or omit some default metrics across workers.)
    for (const list of parts) for (const m of list) (m as { aggregator: string }).aggregator = "sum";
    const merged = AggregatorRegistry.aggregate(parts);
    return { contentType: merged.contentType, text: await merged.metrics() };
  }

  async problems(): Promise<string[]> {
    const slots = this.slots();
    const answers = await Promise.all(slots.map((s) => this.ask(s.worker, "ready")));
    const out: string[] = [];
    slots.forEach((s, i) => {
      const a = answers[i];
      if (a !== null && a.sbAdmin === "ready") for (const p of a.problems) out.push(`${s.id}: ${p}`);
      else out.push(`${s.id}: ${s.worker === undefined ? "not running" : this.serving.has(s.worker) ? "no answer" : "starting"}`);
    });
    return out;
  }
}

/** In a worker of a host: answer the primary's admin requests about this worker's server. */
export function answerPrimary(server: Server): void {
  if (process.send === undefined) return;
  const reg = workerRegistry(server);
  const reply = (a: Answer) => {
    // With a callback a closed channel is reported to it instead of as an 'error' event on process.
    if (process.connected) process.send!(a, undefined, undefined, () => {});
  };
  process.on("message", (m: Ask) => {
    if (typeof m !== "object" || m === null || typeof m.id !== "number") return;
    if (m.sbAdmin === "ready") void workerProblems(server).then((problems) => reply({ sbAdmin: "ready", id: m.id, problems }));
    else if (m.sbAdmin === "metrics")
      reg.getMetricsAsJSON().then(
        (metrics) => reply({ sbAdmin: "metrics", id: m.id, metrics }),
        () => reply({ sbAdmin: "metrics", id: m.id, metrics: null }),
      );
  });
  reply({ sbAdmin: "up" });
}
