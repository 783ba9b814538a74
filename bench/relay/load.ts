/**
 * The load side of the relay benchmark, a child process pinned to the other
 * core. Closed loop: every requester keeps `inflight` requests outstanding.
 * Talks to the parent over IPC: "measuring" when the window opens, the result
 * when it closes, so the parent reads the server's CPU over the same window.
 */
import { Histogram } from "../lib/stats.js";
import { relayLoop } from "./relay-load.js";
import { natsLoop } from "./nats-load.js";

export interface LoadSpec {
  target: "switchboard" | "nats";
  port: number;
  requesters: number;
  responders: number;
  inflight: number;
  payload: number;
  warmupMs: number;
  measureMs: number;
  /** NATS only: share one reply inbox (mux) instead of one subscription per request. */
  natsMux: boolean;
  /**
   * Switchboard only: requests to each responder's full address (`full`), to its bare address (`bare`:
   * through the owner, one session per account), or to one account whose sessions are all the
   * responders (`pool`: docs/relay-protocol.md, "Pools").
   */
  to: "full" | "bare" | "pool";
}

export interface LoadResult {
  target: string;
  roundTrips: number;
  errors: number;
  firstError: string;
  seconds: number;
  latency: ReturnType<Histogram["toJSON"]>;
  clientCpuSeconds: number;
}

export class Loop {
  running = true;
  measuring = false;
  readonly hist = new Histogram();
  errors = 0;
  firstError = "";
  private starters: (() => void)[] = [];

  onStart(f: () => void): void {
    this.starters.push(f);
  }
  start(): void {
    for (const f of this.starters) f();
  }
  done(ms: number): void {
    if (this.measuring) this.hist.record(ms);
  }
  failed(why: string): void {
    this.errors++;
    this.firstError ||= why;
  }
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]) as LoadSpec;
  const loop = new Loop();
  const close = spec.target === "nats" ? await natsLoop(spec, loop) : await relayLoop(spec, loop);
  loop.start();
  await new Promise((r) => setTimeout(r, spec.warmupMs));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  loop.measuring = true;
  process.send!({ phase: "measuring" });
  await new Promise((r) => setTimeout(r, spec.measureMs));
  loop.measuring = false;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const result: LoadResult = {
    target: spec.target,
    roundTrips: loop.hist.n,
    errors: loop.errors,
    firstError: loop.firstError,
    seconds,
    latency: loop.hist.toJSON(),
    clientCpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
  process.send!({ phase: "done", result });
  loop.running = false;
  await new Promise((r) => setTimeout(r, 200));
  close();
  process.disconnect();
  setTimeout(() => process.exit(0), 500).unref();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
