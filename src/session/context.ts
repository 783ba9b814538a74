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
}
