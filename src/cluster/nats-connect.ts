import { connect, type ConnectionOptions, type NatsConnection } from "nats";
import type { Logger } from "../log/logger.js";

/** The first retry waits this long, each next one twice as long, up to MAX_DELAY_MS. */
const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 5000;

/** NATS could not be reached within cluster.nats.connectTimeoutMs: the worker cannot start. */
export class BusUnreachableError extends Error {}

/**
 * The first connection to NATS, tried again with backoff for up to `timeoutMs`
 * (0: once), each failure logged with its attempt and the next delay. Once
 * connected, nats.js itself reconnects for ever (maxReconnectAttempts -1).
 */
export async function connectRetrying(opts: ConnectionOptions & { servers: string[] }, timeoutMs: number, log: Logger | null): Promise<NatsConnection> {
  const started = Date.now();
  let delay = FIRST_DELAY_MS;
  for (let attempt = 1; ; attempt++) {
    const left = timeoutMs - (Date.now() - started);
    try {
      // nats.js's own connect timeout (20 s) would outlast a short window.
      return await connect({ ...opts, timeout: Math.max(1000, Math.min(left, 20_000)) });
    } catch (e) {
      const error = (e as Error).message;
      const remaining = timeoutMs - (Date.now() - started);
      if (remaining <= 0) {
        log?.error("cannot reach NATS: giving up", { attempt, servers: opts.servers.join(" "), error, connectTimeoutMs: timeoutMs });
        throw new BusUnreachableError(`cannot reach NATS at ${opts.servers.join(", ")} within cluster.nats.connectTimeoutMs (${timeoutMs} ms, ${attempt} attempts): ${error}`);
      }
      const next = Math.min(delay, remaining);
      log?.warn("cannot reach NATS: retrying", { attempt, nextDelayMs: next, servers: opts.servers.join(" "), error, giveUpInMs: remaining });
      await new Promise((r) => setTimeout(r, next));
      delay = Math.min(MAX_DELAY_MS, delay * 2);
    }
  }
}
