import type { Envelope } from "../envelope/envelope.js";
import type { Session } from "./session.js";

/**
 * The one way a protocol reaches the core. Everything else (pending requests,
 * owners, rings, the bus) stays behind it, so a protocol never learns how or
 * where an envelope travels.
 */
export interface Core {
  /** A session authenticated: it becomes reachable at its full address. */
  attach(s: Session): void;
  /**
   * Everything a session sends, and what the server sends because of what it
   * did (presence broadcast, roster pushes). `env.from` is already stamped.
   */
  submit(s: Session, env: Envelope): void;
  /** Availability, priority, presence or wantsCopies of the session changed (XMPP presence, carbons; relay sessions are always available). */
  presenceChanged(s: Session): void;
  /** The session's connection is gone: what was asked of it fails at once, what it asked is forgotten. */
  detach(s: Session): void;
}

/**
 * What the core does with a message nobody online can take, given by the
 * protocol that stores messages (XMPP). Returns null when stored, or an error
 * code for the sender (e.g. the queue is full).
 */
export type OfflineSink = (env: Envelope) => string | null;
