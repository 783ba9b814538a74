import { PendingList, type PendingResponse, type Requester } from "../pending/pending-list.js";
import type { SessionRef } from "./session-ref.js";

/**
 * One pooled session of a user, as its owner counts it: the requests the owner
 * gave it and has not yet heard settled. A Requester of the owner's PoolLoad
 * list, so its entries go in O(its own) when it leaves.
 */
export class PoolMember implements Requester {
  outstanding = 0;
  firstPending: PendingResponse | null = null;
  constructor(readonly ref: SessionRef) {}
}

/**
 * The pooled sessions of one bare address (docs/relay-protocol.md, "Pools"),
 * in bind order; `turn` is where the next search for the least loaded starts,
 * so that ties rotate.
 */
export class Pool {
  readonly members: PoolMember[] = [];
  private turn = 0;

  add(ref: SessionRef): void {
    this.members.push(new PoolMember(ref));
  }

  /** Takes `ref` out of the pool; its member is returned for the owner to forget its counts. */
  remove(ref: SessionRef): PoolMember | undefined {
    const ms = this.members;
    const i = ms.findIndex((m) => m.ref === ref);
    if (i < 0) return undefined;
    const [m] = ms.splice(i, 1);
    // Keep the rotation where it was: the member after the removed one moved down by one.
    if (this.turn > i) this.turn--;
    if (this.turn >= ms.length) this.turn = 0;
    return m;
  }

  /** The available member with the fewest requests in flight; among equals, the first from `turn` on. */
  pick(): PoolMember | undefined {
    const ms = this.members;
    const n = ms.length;
    let best: PoolMember | undefined;
    let at = 0;
    for (let i = 0, j = this.turn; i < n; i++, j = j + 1 === n ? 0 : j + 1) {
      const m = ms[j];
      if (!m.ref.available) continue;
      if (best === undefined || m.outstanding < best.outstanding) {
        best = m;
        at = j;
        if (m.outstanding === 0) break;
      }
    }
    if (best !== undefined) this.turn = at + 1 === n ? 0 : at + 1;
    return best;
  }
}

/**
 * What the owner knows of its pools' load: one entry per request it gave a
 * pooled session, until that session's worker says the request is settled
 * (answered, failed, or its session left) or, should that notice never come
 * (lost, or its worker died), until the request's own deadline. The same
 * structure as the requesters' PendingList, swept on the same TimerDaemon tick:
 * no timer per request, and nothing outlives its deadline.
 */
export class PoolLoad {
  private readonly list = new PendingList();
  /** By the request's ref (`<requester's worker>.<n>`), which is what a settle notice names. */
  private readonly byRef = new Map<string, PendingResponse>();

  /** Requests counted and not yet settled, over every pool of this owner. */
  get size(): number {
    return this.byRef.size;
  }

  routed(m: PoolMember, requestRef: string, ttl: number, now: number): void {
    const p = this.list.add(m, requestRef, m.ref.address, ttl, now);
    const before = this.byRef.get(requestRef);
    // The same request routed twice (a ring change mid-way): count it once.
    if (before !== undefined) this.list.remove(before);
    this.byRef.set(requestRef, p);
  }

  settled(requestRef: string): void {
    const p = this.byRef.get(requestRef);
    if (p === undefined) return; // past its deadline, or its session left
    this.byRef.delete(requestRef);
    this.list.remove(p);
  }

  /** A pooled session left, or its owner stopped owning it: its counts go. */
  left(m: PoolMember): void {
    for (let p = m.firstPending; p !== null; p = m.firstPending) {
      this.byRef.delete(p.originalId);
      this.list.remove(p);
    }
  }

  /** Drops the entries whose deadline has passed: their settle notice is not coming. */
  readonly expire = (now: number): number => this.list.expire(now, this.expired);

  private readonly expired = (p: PendingResponse): void => {
    if (this.byRef.get(p.originalId) === p) this.byRef.delete(p.originalId);
  };
}
