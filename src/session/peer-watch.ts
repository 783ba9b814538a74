import { monotonicMs } from "../timer/clock.js";

/** What a protocol does when its peer has been silent: ask it for a sign of life, or give it up. */
export interface PeerProbe {
  /** Send something the peer must answer (XEP-0199 ping, relay `ping`). */
  ping(): void;
  /** The ping went unanswered: the peer is gone. Called once; the watch has stopped. */
  gone(): void;
}

/**
 * Notices a dead peer (a NAT that forgot the mapping, a phone that changed
 * networks) with one timer per connection, re-armed only when it fires, so
 * traffic costs a timestamp and nothing more. After `afterMs` of silence:
 * probe.ping(); any traffic within `timeoutMs` after it answers (the pong, a
 * whitespace keepalive, a stanza); none: probe.gone(). afterMs 0: off.
 */
export class PeerWatch {
  private lastSeen = monotonicMs();
  /** When the outstanding ping was sent; -1: none outstanding. */
  private pingedAt = -1;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly afterMs: number,
    private readonly timeoutMs: number,
    private readonly probe: PeerProbe,
  ) {
    if (afterMs > 0) this.arm(afterMs);
  }

  seen(): void {
    this.lastSeen = monotonicMs();
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(delay: number): void {
    this.timer = setTimeout(() => this.fire(), delay);
    // A connection keeps the process alive, not its watch.
    this.timer.unref();
  }

  private fire(): void {
    const now = monotonicMs();
    if (this.pingedAt >= 0) {
      // Traffic at or after the ping answers it, even within the same millisecond.
      if (this.lastSeen < this.pingedAt) {
        this.timer = null;
        return this.probe.gone();
      }
      this.pingedAt = -1;
    }
    const quiet = now - this.lastSeen;
    if (quiet < this.afterMs) return this.arm(Math.max(1, this.afterMs - quiet));
    this.pingedAt = now;
    this.arm(this.timeoutMs);
    this.probe.ping();
  }
}
