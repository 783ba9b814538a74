/** Messages a session keeps the names of: enough for what a client sends again right after resuming. */
const SIZE = 16;

/**
 * The last messages given to one session, by (sender's full address, message
 * id). A client that resumes after a death sends again what the server's count
 * did not cover, and some of it its next hop had already delivered (a count
 * pinned below a message its host's other worker took, the host dying before
 * the count moved on: docs/architecture.md, "Resent"). Those come back marked
 * (Flag.Resent) and are dropped where they meet their first delivery here.
 * A ring of references to the envelopes' own strings: nothing copied, nothing
 * made per message; a lookup happens only for a marked message.
 */
export class RecentMessages {
  /** Sender and id, alternating; "" where nothing was written yet. */
  private readonly slots: string[];
  private next = 0;

  /** `size` pairs (a room, which hears many senders, keeps more). */
  constructor(size = SIZE) {
    this.slots = new Array<string>(size * 2).fill("");
  }

  note(from: string, id: string): void {
    const i = this.next;
    this.slots[i] = from;
    this.slots[i + 1] = id;
    this.next = i + 2 === this.slots.length ? 0 : i + 2;
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
    const r = new RecentMessages();
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
