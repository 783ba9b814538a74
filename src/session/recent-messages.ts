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
 * Each pair is kept as one short string of its own (`messageKey`), never as the
 * envelope's strings: those are often slices of a larger text (a bus message's
 * strings and stanza, read as one: WireReader; a client's read), and a ring
 * holding a slice holds that whole text for as long as the pair stays — with
 * messages crossing workers, ~1 KB a message promoted into the old generation
 * and copied by every scavenge on the way (docs/benchmarks.md, session 23). A
 * lookup happens only for a marked message. A ring that goes full circle
 * within WINDOW_MS (a busy recipient: a resend could miss its first copy)
 * doubles, up to MAX_SIZE pairs; one clock read when made and one per full
 * circle.
 */
export class RecentMessages {
  /** messageKey(sender, id) of each message; "" where nothing was written yet, or the id was empty. */
  private slots: string[];
  private next = 0;
  /** When the ring last went full circle, or was made (at its first message). */
  private turnedAt: number;

  /** `size` pairs (a room, which hears many senders, keeps more). */
  constructor(
    size = SIZE,
    private readonly clock: () => number = monotonicMs,
  ) {
    this.slots = new Array<string>(size).fill("");
    this.turnedAt = clock();
  }

  note(from: string, id: string): void {
    const i = this.next;
    this.slots[i] = id === "" ? "" : flat(messageKey(from, id));
    if (i + 1 < this.slots.length) {
      this.next = i + 1;
      return;
    }
    // Full circle: the oldest is at 0 and goes next, unless the circle was quick (it grows before anything is lost).
    const t = this.clock();
    const n = this.slots.length;
    if (t - this.turnedAt < WINDOW_MS && n < MAX_SIZE) {
      const slots = new Array<string>(n * 2).fill("");
      for (let k = 0; k < n; k++) slots[k] = this.slots[k];
      this.slots = slots;
      this.next = n;
    } else this.next = 0;
    this.turnedAt = t;
  }

  /** Pairs it has room for. */
  get size(): number {
    return this.slots.length;
  }

  /** Sender and id of each, oldest first, alternating: what moves with the session to another worker (Handover.recent). */
  list(): string[] {
    const out: string[] = [];
    const s = this.slots;
    for (let k = 0; k < s.length; k++) {
      const key = s[(this.next + k) % s.length];
      if (key === "") continue;
      const colon = key.indexOf(":");
      const end = colon + 1 + Number(key.slice(0, colon));
      out.push(key.slice(colon + 1, end), key.slice(end));
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

  /** Given, and taken back before its client saw it (ProxyDaemon.lateFlush): no longer a copy to drop. */
  forget(from: string, id: string): void {
    if (id === "") return;
    const key = messageKey(from, id);
    const s = this.slots;
    for (let i = 0; i < s.length; i++) if (s[i] === key) s[i] = "";
  }

  has(from: string, id: string): boolean {
    if (id === "") return false;
    const key = messageKey(from, id);
    const s = this.slots;
    for (let i = 0; i < s.length; i++) if (s[i] === key) return true;
    return false;
  }
}

/** Sender and id as one string, unambiguous whatever they hold (the sender's length first); offline storage's msgkey too. */
export function messageKey(from: string, id: string): string {
  return `${from.length}:${from}${id}`;
}

/**
 * The string flat, in memory of its own: joining strings makes a string that points at its parts (and a slice
 * at its whole text), and reading a character makes V8 copy it into one piece, after which the parts can go.
 * recent-messages.test.ts checks that a slice's text is not kept.
 */
function flat(s: string): string {
  s.charCodeAt(0);
  return s;
}
