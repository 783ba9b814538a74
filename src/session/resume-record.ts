import type { Session } from "./session.js";
import type { Envelope } from "../envelope/envelope.js";

/**
 * A stanza of a resumable session that is written to its client and that no
 * other live worker holds in custody (its sender was on the session's own
 * worker, or it came from the store): a copy at the record's keeper, until the
 * client acknowledges it. [its place in the session's outbound count (the h
 * that acknowledges it), its wire text].
 */
export type HeldCopy = [number, string];

/**
 * What another worker keeps of a resumable session so that its client can
 * resume it after the session's worker died (XEP-0198 after a death,
 * docs/architecture.md "Resumption after a death"). Small and JSON-able: it
 * travels in bus headers.
 */
export interface ResumeRecord {
  protocol: string;
  /** The protocol's resumption key (XMPP: the XEP-0198 id, 144 random bits): only its client knows it. */
  key: string;
  /** The account: only it may resume the session. */
  user: string;
  /** The session's full address. */
  address: string;
  /** The inbound count the client was last told (XEP-0198 h in the server's <a/>, <resumed/>). */
  count: number;
  /** How long the session may wait for its client once its worker is gone, ms (the resumption window). */
  windowMs: number;
  /** The protocol's state (XMPP: presence, availability, priority, carbons, roster interest, directed presence). */
  state: unknown;
}

/** A record found by a recall, with the worker that holds the session in its keeper's view ("": that worker is gone). */
export interface Recalled {
  record: ResumeRecord;
  holder: string;
  /** With a holder that is gone: the copies of what its session had written and its client had not acknowledged, oldest first. */
  held?: HeldCopy[];
}

/**
 * The core's side of resume records: each worker sends the records of its
 * resumable sessions to one keeper, another worker (on another host when there
 * is one), and asks the keepers when a resumption finds no live session.
 */
export interface ResumeRecords {
  /**
   * The protocol's way to describe one of its sessions (null: not resumable),
   * and to read its inbound count (XEP-0198 h: stanzas handled), which the
   * keeper's copy follows every few moments (not per stanza).
   */
  describer(
    protocol: string,
    describe: (s: Session) => ResumeRecord | null,
    count: (s: Session) => number,
    /** A record whose window passed unclaimed: its held copies as messages to route again (to the user's next session, or the store). */
    leftover?: (rec: ResumeRecord, held: readonly HeldCopy[]) => Envelope[],
  ): void;
  /** `s` became resumable, or what its record says changed (presence, a move here): its keeper gets it at the end of the turn. */
  keep(s: Session): void;
  /** `s`'s inbound count is `count` now (XEP-0198 <resumed h/>): batched per turn, a few bytes. */
  counted(s: Session, count: number): void;
  /**
   * `s` wrote a message to its client as its `n`-th outbound stanza (XEP-0198
   * count). Unless a live worker other than this one holds it in custody
   * (`receipt`), its keeper gets a copy in this turn's bus batch: the sender
   * is told the message arrived only once that batch is published
   * (Core.afterPublish), and this worker may die before the client
   * acknowledges it.
   */
  replicate(s: Session, n: number, wire: string, receipt: string): void;
  /** False while replicate copies nothing (no keeper: a worker alone): a stream writing a message need not call it. */
  readonly copying: boolean;
  /** `s`'s client acknowledged up to `h`: the keeper's copies up to it go (batched per turn). */
  acked(s: Session, h: number): void;
  /**
   * Calls `cb`, an answer to `s`'s client that covers its first `h` stanzas (XEP-0198 <a h/>), once that may be said:
   * after this turn's bus batch is published (Core.afterPublish), and not while a message among them waits for
   * its next hop on this worker's host to take it while the keeper is on another host (resume-records.ts, pins).
   */
  whenCounted(s: Session, h: number, cb: () => void): void;
  /** Whether whenCounted(s, h, …) would call back at once (then the caller answers without making a callback). */
  countedNow(s: Session, h: number): boolean;
  /** `s` ended for good, or moved to another worker: its record goes. */
  drop(s: Session): void;
  /**
   * Asks every worker whether it keeps the record of `key` for account `user`;
   * `done` is called once: with the record (taken from its keeper when its
   * holder is gone), or null when nobody has it within the deadline. `h` is
   * what the client says it received: a record whose window has passed is
   * not given, but its copies beyond `h` are sent on at once.
   */
  recall(protocol: string, key: string, user: string, h: number, done: (r: Recalled | null) => void): void;
  /** Whether `worker` is a live member in this worker's view. */
  live(worker: string): boolean;
}
