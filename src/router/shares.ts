import type { Membership } from "./router.js";
import { HashRing } from "./hash-ring.js";

export interface RingShares {
  /** Each host's fraction of the global ring (level 1 of Algorithm 1). */
  hosts: Record<string, number>;
  /** Each worker's fraction of its host's local ring (level 2), by worker id. */
  workers: Record<string, number>;
  /**
   * Each worker's fraction of all users: its host's share times its share of
   * the host. Level 2 hashes receiver + host address, independent of level 1,
   * so the product is what the two rings give a worker.
   */
  overall: Record<string, number>;
}

/** The shares of the 2^32 hash space that a membership gives, built as the Router builds its rings. */
export function ringShares(m: Membership): RingShares {
  const hosts = Object.fromEntries(new HashRing(Object.keys(m.hosts), m.vnodes).shares());
  const workers: Record<string, number> = {};
  const overall: Record<string, number> = {};
  for (const [host, ids] of Object.entries(m.hosts)) {
    for (const [w, share] of new HashRing(ids, m.vnodes).shares()) {
      workers[w] = share;
      overall[w] = (hosts[host] ?? 0) * share;
    }
  }
  return { hosts, workers, overall };
}
