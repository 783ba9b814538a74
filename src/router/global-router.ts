import { HashRing } from "./hash-ring.js";

/** Level 1 of Algorithm 1 (seed 000): hash(receiver) on the ring of hosts. */
export class GlobalRouter {
  readonly ring: HashRing;
  constructor(hosts: Iterable<string>, vnodes: number) {
    this.ring = new HashRing(hosts, vnodes);
  }
  hostOf(receiver: string): string | undefined {
    return this.ring.ownerOf(receiver);
  }
}
