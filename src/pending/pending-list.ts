import TinyQueue from "tinyqueue";
import { KeyRing } from "./key-ring.js";

/** Whoever sent requests: the list keeps its outstanding ones linked so they can be dropped when it leaves. */
export interface Requester {
  outstanding: number;
  firstPending: PendingResponse | null;
}

/**
 * One forwarded request (seed 004): who asked, under which id, whom, and until when.
 * Linked into its timeout bucket (deadline order) and into its requester's list.
 */
export class PendingResponse {
  bucket: Bucket | null = null;
  prev: PendingResponse | null = null;
  next: PendingResponse | null = null;
  senderPrev: PendingResponse | null = null;
  senderNext: PendingResponse | null = null;
  /** The worker it was sent to over the bus (the recipient's owner), "" when it stayed here: if that one dies, so did the request. */
  via = "";
  constructor(
    public readonly key: number,
    public readonly originalId: string,
    public readonly sender: Requester,
    /** The address the request was sent to; the answer must come from it. */
    public readonly recipient: string,
    public readonly deadline: number,
  ) {}
}

/**
 * Requests sharing one timeout expire in the order they were made, so each
 * timeout gets a FIFO list and only list heads sit in the heap (Node's timers
 * do the same). Completing a request unlinks it at once: memory follows what
 * is pending, not request rate × timeout.
 */
class Bucket {
  head: PendingResponse | null = null;
  tail: PendingResponse | null = null;
  heapKey = 0;
  inHeap = false;
  constructor(readonly ttl: number) {}
}

const KEY_LIMIT = 0x7fffffff;

export class PendingList {
  /**
   * By key, in a ring rather than a Map: keys rise, and a Map used as a queue leaves a chain of rebuilt tables
   * that keeps every request it held alive for the scavenger (KeyRing; benchmarks.md, session 24).
   */
  private readonly byKey = new KeyRing<PendingResponse>();
  private readonly buckets = new Map<number, Bucket>();
  private readonly heap = new TinyQueue<Bucket>([], (a, b) => a.heapKey - b.heapKey);
  // A random start keeps answers meant for a previous run of this worker from matching.
  private nextKey = Math.floor(Math.random() * 0x3fffffff);

  get size(): number {
    return this.byKey.size;
  }

  add(sender: Requester, originalId: string, recipient: string, ttl: number, now: number): PendingResponse {
    const key = this.nextKey;
    this.nextKey = key === KEY_LIMIT ? 0 : key + 1;
    const p = new PendingResponse(key, originalId, sender, recipient, now + ttl);
    this.byKey.set(key, p);

    let b = this.buckets.get(ttl);
    if (b === undefined) {
      b = new Bucket(ttl);
      this.buckets.set(ttl, b);
    }
    p.bucket = b;
    if (b.tail === null) b.head = p;
    else {
      b.tail.next = p;
      p.prev = b.tail;
    }
    b.tail = p;
    if (!b.inHeap) {
      b.heapKey = p.deadline;
      b.inHeap = true;
      this.heap.push(b);
    }

    const first = sender.firstPending;
    if (first !== null) {
      first.senderPrev = p;
      p.senderNext = first;
    }
    sender.firstPending = p;
    sender.outstanding++;
    return p;
  }

  get(key: number): PendingResponse | undefined {
    return this.byKey.get(key);
  }

  remove(p: PendingResponse): void {
    const b = p.bucket;
    if (b === null) return; // already removed
    this.byKey.delete(p.key);
    if (p.prev === null) b.head = p.next;
    else p.prev.next = p.next;
    if (p.next === null) b.tail = p.prev;
    else p.next.prev = p.prev;
    p.bucket = p.prev = p.next = null;

    const s = p.sender;
    if (p.senderPrev === null) s.firstPending = p.senderNext;
    else p.senderPrev.senderNext = p.senderNext;
    if (p.senderNext !== null) p.senderNext.senderPrev = p.senderPrev;
    p.senderPrev = p.senderNext = null;
    s.outstanding--;
  }

  /** Drops every request of a requester that went away; nobody is left to tell. */
  removeAllOf(sender: Requester): number {
    let n = 0;
    for (let p = sender.firstPending; p !== null; p = sender.firstPending) {
      this.remove(p);
      n++;
    }
    return n;
  }

  /** Removes each request whose deadline is at or before `now` and hands it to `onExpired`, earliest first. */
  expire(now: number, onExpired: (p: PendingResponse) => void): number {
    let n = 0;
    const heap = this.heap;
    while (heap.length > 0) {
      const b = heap.peek()!;
      // heapKey never exceeds the head's deadline: a head completed early only makes it stale-low.
      if (b.heapKey > now) break;
      heap.pop();
      b.inHeap = false;
      // Only up to the next timeout's head, so that requests of different timeouts expire earliest first.
      const limit = heap.length > 0 && heap.peek()!.heapKey < now ? heap.peek()!.heapKey : now;
      for (let p = b.head; p !== null && p.deadline <= limit; p = b.head) {
        this.remove(p);
        n++;
        onExpired(p);
      }
      if (b.head !== null) {
        if (!b.inHeap) {
          b.heapKey = b.head.deadline;
          b.inHeap = true;
          heap.push(b);
        }
      } else if (!b.inHeap) {
        this.buckets.delete(b.ttl);
      }
    }
    return n;
  }
}
