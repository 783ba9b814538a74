import { inputMs, monotonicMs } from "../timer/clock.js";

/**
 * What a protocol does when its peer has been silent: ask it for a sign of
 * life, or give it up. Sessions implement it themselves: no closures per
 * connection.
 */
export interface PeerProbe {
  /** Send something the peer must answer (XEP-0199 ping, relay `ping`). */
  pingPeer(): void;
  /** The ping went unanswered: the peer is gone. Called once; the watch has stopped. */
  peerGone(): void;
}

/**
 * The watches of every connection with the same periods, in one wheel: slots
 * of `res` ms, each a linked list of the watches due in it, and one interval
 * timer that runs while any watch is armed. An idle connection thus costs one
 * small object (no Timeout, no closure), and a server at rest one timer per
 * period setting. A watch fires in the first slot that ends at or after its
 * deadline: never early, late by less than `res`.
 */
class Wheel {
  private readonly slots = new Map<number, PeerWatch>();
  private timer: NodeJS.Timeout | null = null;
  /** The last slot run. */
  private done = 0;
  private size = 0;

  constructor(
    readonly afterMs: number,
    readonly timeoutMs: number,
    readonly res: number,
  ) {}

  add(w: PeerWatch, at: number): void {
    if (this.size++ === 0) {
      this.done = Math.floor(monotonicMs() / this.res);
      this.timer = setInterval(() => this.run(), this.res);
      // A connection keeps the process alive, not its watch.
      this.timer.unref();
    }
    const slot = Math.max(this.done + 1, Math.ceil(at / this.res));
    const head = this.slots.get(slot);
    w.slot = slot;
    w.prev = null;
    w.next = head ?? null;
    if (head !== undefined) head.prev = w;
    this.slots.set(slot, w);
  }

  remove(w: PeerWatch): void {
    if (w.slot < 0) return;
    if (w.next !== null) w.next.prev = w.prev;
    if (w.prev !== null) w.prev.next = w.next;
    else if (w.next !== null) this.slots.set(w.slot, w.next);
    else this.slots.delete(w.slot);
    w.prev = w.next = null;
    w.slot = -1;
    if (--this.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private run(): void {
    const to = Math.floor(monotonicMs() / this.res);
    // Slot by slot, each watch taken off before it fires: what a firing does to other watches (stops, re-arms) is safe.
    while (this.done < to && this.timer !== null) {
      const slot = ++this.done;
      for (let w = this.slots.get(slot); w !== undefined; w = this.slots.get(slot)) {
        this.remove(w);
        w.fire();
      }
    }
  }
}

const wheels = new Map<string, Wheel>();

function wheelFor(afterMs: number, timeoutMs: number): Wheel {
  const key = `${afterMs}/${timeoutMs}`;
  let w = wheels.get(key);
  if (w === undefined) {
    // A sixteenth of the shorter period, at most a second: 60 s / 30 s (the defaults) fire within 1 s of their deadline.
    const res = Math.min(1000, Math.max(1, Math.floor(Math.min(afterMs, timeoutMs) / 16)));
    wheels.set(key, (w = new Wheel(afterMs, timeoutMs, res)));
  }
  return w;
}

/**
 * Notices a dead peer (a NAT that forgot the mapping, a phone that changed
 * networks): traffic costs a timestamp and nothing more; the watch looks at
 * it only when its slot comes. After `afterMs` of silence: probe.pingPeer();
 * any traffic within `timeoutMs` after it answers (the pong, a whitespace
 * keepalive, a stanza); none: probe.peerGone(). afterMs 0: off.
 */
export class PeerWatch {
  private lastSeen = monotonicMs();
  /** When the outstanding ping was sent; -1: none outstanding. */
  private pingedAt = -1;
  private readonly wheel: Wheel | null;
  /** The wheel's slot this watch is due in, -1 when not armed; its neighbours there. */
  slot = -1;
  prev: PeerWatch | null = null;
  next: PeerWatch | null = null;

  constructor(
    afterMs: number,
    timeoutMs: number,
    private readonly probe: PeerProbe,
  ) {
    this.wheel = afterMs > 0 ? wheelFor(afterMs, timeoutMs) : null;
    this.wheel?.add(this, this.lastSeen + afterMs);
  }

  /** Traffic: stamped with the moment its read began (inputMs), no clock read of its own inside one. */
  seen(): void {
    this.lastSeen = inputMs();
  }

  stop(): void {
    this.wheel?.remove(this);
  }

  /** Its slot came (the wheel has taken it off). */
  fire(): void {
    const wheel = this.wheel!;
    const now = monotonicMs();
    if (this.pingedAt >= 0) {
      // Traffic at or after the ping answers it, even within the same millisecond.
      if (this.lastSeen < this.pingedAt) return this.probe.peerGone();
      this.pingedAt = -1;
    }
    const quiet = now - this.lastSeen;
    if (quiet < wheel.afterMs) return wheel.add(this, this.lastSeen + wheel.afterMs);
    this.pingedAt = now;
    wheel.add(this, now + wheel.timeoutMs);
    this.probe.pingPeer();
  }
}
