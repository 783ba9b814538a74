import type { Membership } from "../router/router.js";
import type { BusEndpoint, BusMessage, ClusterBus, MembershipListener } from "./bus.js";

/**
 * In-process hub: the embedded default (one worker) and, with several workers
 * in one process, a test bed for routing across the local ring.
 */
export class LocalHub {
  readonly endpoints = new Map<string, LocalBus>();
  constructor(readonly vnodes: number) {}

  join(workerId: string, hostAddress: string): LocalBus {
    if (this.endpoints.has(workerId)) throw new Error(`worker ${workerId} already joined`);
    const bus = new LocalBus(this, workerId, hostAddress);
    this.endpoints.set(workerId, bus);
    this.changed([workerId]);
    return bus;
  }

  leave(workerId: string): void {
    if (this.endpoints.delete(workerId)) this.changed([]);
  }

  membership(): Membership {
    const hosts: Record<string, string[]> = {};
    for (const b of this.endpoints.values()) (hosts[b.hostAddress] ??= []).push(b.workerId);
    return { hosts, vnodes: this.vnodes };
  }

  private changed(joined: readonly string[]): void {
    const m = this.membership();
    for (const b of this.endpoints.values()) for (const cb of b.listeners) cb(m, joined, []);
  }
}

export class LocalBus implements ClusterBus {
  endpoint: BusEndpoint | null = null;
  readonly listeners: MembershipListener[] = [];
  dropped = 0;
  sent = 0;
  /** Rooms handed to this worker before it attached (once, at start); null after. */
  early: BusMessage[] | null = [];
  received = 0;
  private closed = false;

  constructor(
    private readonly hub: LocalHub,
    readonly workerId: string,
    readonly hostAddress: string,
  ) {}

  send(workerId: string, msg: BusMessage): void {
    const to = this.hub.endpoints.get(workerId);
    const target = to?.endpoint;
    if (target) {
      this.sent++;
      to!.received++;
      target.receive(msg);
    } else if (to !== undefined && to.early !== null && msg.op === "moved") {
      // Joined, not attached yet (starting): rooms handed to it are kept for it (service-moves.ts).
      this.sent++;
      to.early.push(msg);
    } else this.dropped++;
  }

  membership(): Membership {
    return this.hub.membership();
  }

  onMembership(cb: MembershipListener): void {
    this.listeners.push(cb);
  }

  get connected(): boolean {
    return !this.closed;
  }

  /** Members of an in-process hub join synchronously: nobody to wait for. */
  async ready(): Promise<void> {}

  attach(endpoint: BusEndpoint): void {
    this.endpoint = endpoint;
    const early = this.early ?? [];
    this.early = null;
    for (const msg of early) {
      this.received++;
      endpoint.receive(msg);
    }
  }

  close(): void {
    this.closed = true;
    this.hub.leave(this.workerId);
    this.endpoint = null;
  }
}
