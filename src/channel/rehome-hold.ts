import type { Envelope } from "../envelope/envelope.js";
import { bareOf } from "../address/address.js";
import { monotonicMs } from "../timer/clock.js";

export interface HoldLimits {
  /** Envelopes held at most, over every user. */
  maxCount: number;
  /** Their payloads' bytes at most (estimated for parsed payloads). */
  maxBytes: number;
}

export const DEFAULT_HOLD_LIMITS: HoldLimits = { maxCount: 50_000, maxBytes: 32 * 1024 * 1024 };

/** What held envelopes became: counters for metrics. */
export class HoldStats {
  held = 0;
  /** Delivered when a binding for their user arrived. */
  released = 0;
  /** Sent on to another owner after a later membership change. */
  rerouted = 0;
  /** The window closed with no binding: treated as for an offline user. */
  expired = 0;
  /** Not held because the hold was full. */
  overflow = 0;
}

/** A parsed payload's size is not known without serializing it: a stanza's usual size stands in. */
const PARSED_BYTES = 512;
const OVERHEAD = 128;

function sizeOf(env: Envelope): number {
  // A stanza that came over the bus unread is measured as its text, not parsed to be measured.
  const text = env.wireText;
  if (text !== null) return OVERHEAD + text.length;
  const p = env.payload;
  if (p instanceof Uint8Array) return OVERHEAD + p.byteLength;
  if (typeof p === "string") return OVERHEAD + p.length;
  return OVERHEAD + (p === null || p === undefined ? 0 : PARSED_BYTES);
}

/**
 * What an owner holds, right after a membership change, for users it has no
 * binding for: their sessions' binds may still be on their way (workers see a
 * change up to a heartbeat apart; a welcome is a round trip), and a user
 * online must not be treated as offline because of a bus event. Held per bare
 * address, in arrival order, until a binding for the user arrives (then
 * delivered), the ring moves the user elsewhere (sent on), or the window
 * closes (then undeliverable as before). Bounded in count and bytes: past the
 * bounds, an envelope takes the offline path at once.
 */
export class RehomeHold {
  private readonly byBare = new Map<string, Envelope[]>();
  private count = 0;
  private bytes = 0;
  /** Monotonic ms until which envelopes are held; 0: not holding. */
  private until = 0;
  private timer: NodeJS.Timeout | null = null;
  readonly stats = new HoldStats();

  constructor(
    /** Called when the window closes, with what is still held, in arrival order per user. */
    private readonly onClosed: (envs: Envelope[]) => void,
    private readonly limits: HoldLimits = DEFAULT_HOLD_LIMITS,
  ) {}

  get size(): number {
    return this.count;
  }

  /** A membership change: hold for `ms` from now (0: do not hold). */
  open(ms: number): void {
    if (ms <= 0) return;
    this.until = Math.max(this.until, monotonicMs() + ms);
    if (this.count > 0) this.schedule();
  }

  /** Holds env if the window is open and there is room; false: the caller treats it as undeliverable. */
  take(env: Envelope): boolean {
    if (this.until === 0 || monotonicMs() >= this.until) return false;
    const size = sizeOf(env);
    if (this.count >= this.limits.maxCount || this.bytes + size > this.limits.maxBytes) {
      this.stats.overflow++;
      return false;
    }
    const bare = bareOf(env.to);
    let list = this.byBare.get(bare);
    if (list === undefined) this.byBare.set(bare, (list = []));
    // Routed again by its custodian (no confirmation within confirmTimeoutMs) while held here: one copy is enough.
    else if (env.ref !== "" && list.some((e) => e.ref === env.ref)) return true;
    list.push(env);
    this.count++;
    this.bytes += size;
    this.stats.held++;
    this.schedule();
    return true;
  }

  /** A binding for `bare` arrived: what was held for it, to deliver now. */
  release(bare: string): Envelope[] | undefined {
    if (this.count === 0) return undefined;
    const list = this.byBare.get(bare);
    if (list === undefined) return undefined;
    this.forget(bare, list);
    this.stats.released += list.length;
    return list;
  }

  /** The ring changed: what is held for users no longer owned here, to send to their new owner. */
  moved(ownsHere: (bare: string) => boolean): Envelope[] {
    const out: Envelope[] = [];
    if (this.count === 0) return out;
    for (const [bare, list] of this.byBare) {
      if (ownsHere(bare)) continue;
      this.forget(bare, list);
      for (const env of list) out.push(env);
    }
    this.stats.rerouted += out.length;
    return out;
  }

  /** Stops the timer; what is held stays (a stopped worker's hold is not drained). */
  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private forget(bare: string, list: Envelope[]): void {
    this.byBare.delete(bare);
    this.count -= list.length;
    for (const env of list) this.bytes -= sizeOf(env);
  }

  private schedule(): void {
    if (this.timer !== null) return;
    this.timer = setTimeout(this.closed, Math.max(1, this.until - monotonicMs()));
    this.timer.unref();
  }

  private readonly closed = (): void => {
    this.timer = null;
    // Re-opened meanwhile by another membership change: wait for the new end.
    if (monotonicMs() < this.until) return this.schedule();
    this.until = 0;
    const out: Envelope[] = [];
    for (const list of this.byBare.values()) for (const env of list) out.push(env);
    this.byBare.clear();
    this.count = 0;
    this.bytes = 0;
    this.stats.expired += out.length;
    this.onClosed(out);
  };
}
