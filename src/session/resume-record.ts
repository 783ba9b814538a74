import type { Session } from "./session.js";

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
  describer(protocol: string, describe: (s: Session) => ResumeRecord | null, count: (s: Session) => number): void;
  /** `s` became resumable, or what its record says changed (presence, a move here): its keeper gets it at the end of the turn. */
  keep(s: Session): void;
  /** `s`'s inbound count is `count` now (XEP-0198 <resumed h/>): batched per turn, a few bytes. */
  counted(s: Session, count: number): void;
  /** `s` ended for good, or moved to another worker: its record goes. */
  drop(s: Session): void;
  /**
   * Asks every worker whether it keeps the record of `key` for account `user`;
   * `done` is called once: with the record (taken from its keeper when its
   * holder is gone), or null when nobody has it within the deadline.
   */
  recall(protocol: string, key: string, user: string, done: (r: Recalled | null) => void): void;
  /** Whether `worker` is a live member in this worker's view. */
  live(worker: string): boolean;
}
