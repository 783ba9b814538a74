import { GlobalRouter } from "./global-router.js";
import { LocalRouter } from "./local-router.js";

export interface Membership {
  /** host address → the ids of its workers */
  hosts: Record<string, readonly string[]>;
  vnodes: number;
}

/** Algorithm 1 of seed 000: the worker that owns a bare address, found from the member list alone. */
export class Router {
  private global!: GlobalRouter;
  private locals = new Map<string, LocalRouter>();

  constructor(membership: Membership) {
    this.update(membership);
  }

  update(m: Membership): void {
    this.global = new GlobalRouter(Object.keys(m.hosts), m.vnodes);
    this.locals = new Map(Object.entries(m.hosts).map(([host, workers]) => [host, new LocalRouter(host, workers, m.vnodes)]));
  }

  /** The owner worker of a bare address, or undefined while no host is known. */
  ownerOf(bare: string): string | undefined {
    const host = this.global.hostOf(bare);
    return host === undefined ? undefined : this.locals.get(host)!.workerOf(bare);
  }

  get hosts(): readonly string[] {
    return this.global.ring.members;
  }
}
