import type { Logger } from "../log/logger.js";
import { monotonicMs } from "../timer/clock.js";
import type { ConnCounts, Metrics } from "./metrics.js";

/**
 * A session's life as operators see it: one info line when it starts (after
 * authentication and binding) and one when it ends, and the session counts.
 * Protocols make one at bind and call end() wherever the session goes; nothing
 * in between is logged above debug.
 */
export class SessionRecord {
  private readonly startedAt = monotonicMs();
  private ended = false;

  private constructor(
    private readonly kind: ConnCounts,
    private readonly log: Logger,
    private readonly address: string,
  ) {}

  /** `conn` is the connection the listener accepted (metrics names its kind by it). */
  static start(metrics: Metrics, log: Logger, protocol: string, address: string, conn: { readonly remoteAddress: string }): SessionRecord {
    const kind = metrics.kindOfConn(conn, protocol);
    kind.sessionsStarted++;
    log.info("session started", { address, remote: conn.remoteAddress, protocol: kind.protocol, transport: kind.transport });
    return new SessionRecord(kind, log, address);
  }

  /** Idempotent: a session may be closed by itself and then by its transport. */
  end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.kind.sessionsEnded++;
    const k = this.kind;
    this.log.info("session ended", { address: this.address, protocol: k.protocol, transport: k.transport, durationMs: Math.round(monotonicMs() - this.startedAt), reason });
  }
}
