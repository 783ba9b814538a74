import type { Socket } from "node:net";
import type { Authenticator } from "../auth/authenticator.js";
import type { Config } from "../config/config.js";
import type { Logger } from "../log/logger.js";
import type { Core } from "./core.js";
import type { Metrics } from "../metrics/metrics.js";

/** What a protocol front end is given by the composition root. */
export interface SessionContext {
  core: Core;
  auth: Authenticator;
  config: Config;
  log: Logger;
  /** Counters incremented inline (src/metrics/metrics.ts). */
  metrics: Metrics;
  /** Cached once: per-message logging is gated on it. */
  debug: boolean;
  /** A host of several workers with cluster.handoff on: where a connection moves to its user's owner (src/host/handoff.ts). */
  handoff?: HandoffPort | null;
}

/**
 * Where a host's worker hands a connection over to another worker of the host
 * (src/host/handoff.ts: straight to it, or through the primary's IPC). The protocol decides when and
 * what travels (src/xmpp/handoff.ts); the port only moves the descriptor.
 */
export interface HandoffPort {
  /** The index of the worker of this host that owns `bare` when that is another worker; else null (stay). */
  target(bare: string): number | null;
  /**
   * Sends `socket` (not reading, nothing left to write) with the protocol's JSON-able `state` to worker `to`,
   * for its listener `listener`. `verdict(true)`: the owner has it, this copy is to be closed; false: it stays
   * here. Exactly one verdict comes, unless this process dies first.
   */
  offer(socket: Socket, to: number, listener: number, state: unknown, verdict: (moved: boolean) => void): void;
  /** Of the moves out of this worker, those that went straight to the owner rather than through the primary. */
  readonly directMoved?: number;
}
