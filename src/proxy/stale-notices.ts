import type { BusMessage } from "../cluster/bus.js";

/** What the desk needs of its worker (the ProxyDaemon). */
export interface StaleWorker {
  readonly self: string;
  /** Every worker the bus knows now, and those that left lately (a stalled one may come back with what it kept). */
  workers(): Iterable<string>;
  send(worker: string, msg: BusMessage): void;
}

/**
 * Core.stale / Core.onStale: a protocol keeps something in memory on the worker that uses it (XEP-0313:
 * each user's archive preferences on the user's owner) and changes it on any worker; the change is told
 * to every worker (bus op `stale`), not only to the present owner, since ownership moves with the ring
 * and a worker that owned the user before may own it again. Rare (a client setting its preferences):
 * one bus message per worker. A membership change tells every listener that anything may be stale
 * (key null): a worker out of the ring for a while may have missed notices.
 */
export class StaleNotices {
  private readonly listeners = new Map<string, ((key: string | null) => void)[]>();

  constructor(private readonly w: StaleWorker) {}

  listen(topic: string, cb: (key: string | null) => void): void {
    const list = this.listeners.get(topic);
    if (list === undefined) this.listeners.set(topic, [cb]);
    else list.push(cb);
  }

  /** This worker's listeners at once, then every other worker's as the bus brings it. */
  tell(topic: string, key: string): void {
    this.received(topic, key);
    const msg: BusMessage = { op: "stale", topic, key };
    for (const worker of this.w.workers()) if (worker !== this.w.self) this.w.send(worker, msg);
  }

  received(topic: string, key: string | null): void {
    for (const cb of this.listeners.get(topic) ?? []) cb(key);
  }

  membershipChanged(): void {
    for (const topic of this.listeners.keys()) this.received(topic, null);
  }
}
