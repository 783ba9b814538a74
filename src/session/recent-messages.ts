import { monotonicMs } from "../timer/clock.js";

/** Messages a session keeps the names of: enough for what a client sends again right after resuming. */
const SIZE = 16;
/** A ring that goes full circle faster than this doubles: a resend comes within seconds of its first copy. */
const WINDOW_MS = 10_000;
/** Pairs at most, for a session (or room) that gets many messages a second. */
const MAX_SIZE = 256;

/**
 * The last messages given to one session, by (sender's full address, message
 * id). A client that resumes after a death sends again what the server's count
 * did not cover, and some of it its next hop had already delivered (a count
 * pinned below a message its host's other worker took, the host dying before
 * the count moved on: docs/architecture.md, "Resent"). Those come back marked
 * (Flag.Resent) and are dropped where they meet their first delivery here.
 * A ring of references to the envelopes' own strings: nothing copied, nothing
 * made per message; a lookup happens only for a marked message. A ring that
 * goes full circle within WINDOW_MS (a busy recipient: a resend could miss its
 * first copy) doubles, up to MAX_SIZE pairs; one clock read when made and one
 * per full circle.
 */
export class RecentMessages {
  /** Sender and id, alternating; "" where nothing was written yet. */
  private slots: string[];
  private next = 0;
  /** When the ring last went full circle, or was made (at its first message). */
  private turnedAt: number;

  /** `size` pairs (a room, which hears many senders, keeps more). */
  constructor(
    size = SIZE,
    private readonly clock: () => number = monotonicMs,
  ) {
    this.slots = new Array<string>(size * 2).fill("");
    this.turnedAt = clock();
  }

  note(from: string, id: string): void {
    const i = this.next;
    this.slots[i] = from;
    this.slots[i + 1] = id;
    if (i + 2 < this.slots.length) {
      this.next = i + 2;
      return;
    }
    // Full circle: the oldest is at 0 and goes next, unless the circle was quick (it grows before anything is lost).
    const t = this.clock();
    const n = this.slots.length;
    if (t - this.turnedAt < WINDOW_MS && n < MAX_SIZE * 2) {
      const slots = new Array<string>(n * 2).fill("");
      for (let k = 0; k < n; k++) slots[k] = this.slots[k];
      this.slots = slots;
      this.next = n;
    } else this.next = 0;
    this.turnedAt = t;
  }

  /** Pairs it has room for. */
  get size(): number {
    return this.slots.length / 2;
  }

  /** Sender and id of each, oldest first, alternating: what moves with the session to another worker (Handover.recent). */
  list(): string[] {
    const out: string[] = [];
    const s = this.slots;
    for (let k = 0; k < s.length; k += 2) {
      const i = (this.next + k) % s.length;
      if (s[i + 1] !== "") out.push(s[i], s[i + 1]);
    }
    return out;
  }

  /** A ring holding what `list` gave (another worker's), in the same order. */
  static of(list: readonly string[]): RecentMessages {
    const r = new RecentMessages(Math.max(SIZE, list.length >> 1));
    for (let i = 0; i + 1 < list.length; i += 2) r.note(list[i], list[i + 1]);
    return r;
  }

  /**
   * A message arriving: true when it is `marked` (Flag.Resent) and was given here already, the copy to drop;
   * else it is noted as given and false. The one rule the core's sessions and a protocol's rooms share.
   */
  again(from: string, id: string, marked: boolean): boolean {
    if (marked && this.has(from, id)) return true;
    this.note(from, id);
    return false;
  }

  has(from: string, id: string): boolean {
    if (id === "") return false;
    const s = this.slots;
    for (let i = 0; i < s.length; i += 2) if (s[i + 1] === id && s[i] === from) return true;
    return false;
  }
}
