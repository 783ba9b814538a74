/** What the relay benchmark's load process and its two loops (ours, NATS) share: the spec, the result, the loop's state. */
import { Histogram } from "../lib/stats.js";

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
