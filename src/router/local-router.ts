import { HashRing } from "./hash-ring.js";

/**
 * Level 2 of Algorithm 1 (seed 000): hash(receiver + hostAddress) on the ring
 * of one host's workers. Hashing again with the host's address spreads the
 * keys over the whole ring; reusing hash(receiver) would crowd them into the
 * arc that host owns on the global ring.
 */
export class LocalRouter {
  readonly ring: HashRing;
  constructor(
    readonly hostAddress: string,
    workers: Iterable<string>,
    vnodes: number,
  ) {
    this.ring = new HashRing(workers, vnodes);
  }
  workerOf(receiver: string): string | undefined {
    return this.ring.ownerOf(receiver + this.hostAddress);
  }
}
