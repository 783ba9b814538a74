import type { SecureContext } from "node:tls";
import type { Element } from "ltx";
import type { Envelope } from "../envelope/envelope.js";
import type { RosterItem } from "../store/xmpp-store.js";

/**
 * Sees what the core delivers to a session before it is written (XEP-0352 holds
 * presence while the client is inactive). Returns false when it took the stanza.
 */
export interface DeliveryGate {
  pass(env: Envelope, wire: string): boolean;
  /** Writes whatever it holds. */
  flush(): void;
}
import type { Conn } from "../transport/conn.js";
import type { Handover } from "../session/core.js";
import type { Session } from "../session/session.js";

/**
 * XEP-0198 acknowledgements of one stream, once the client enabled them: the
 * session tells it about every stanza it handled and every stanza it wrote.
 */
export interface AckTracker {
  /** Stanzas handled from the client (§4 h), modulo 2^32; set back only when their effects were voided (Session.stalledBack). */
  handled: number;
  /** A stanza (message, presence, iq) from the client was handled. */
  received(): void;
  /** A stanza was written to the client, as `wire`; `receipt`: a message held in custody (Envelope.ref), settled when acknowledged. */
  sent(wire: string, receipt?: string): void;
  /** The client asked for resumption and got it: a dropped connection suspends the session instead of ending it. */
  readonly resumable: boolean;
  /** Stanzas sent since <enabled/>, modulo 2^32: the h a client that received them all would send. */
  readonly sentCount: number;
  /** No more requests for acks (the connection is gone). */
  stop(): void;
  /** The client's <r/>: answered with <a h/> (§4), perhaps held a while for other output (xmpp.sm.answerDelayMs). */
  answer(): void;
  /** Answers held for other output go now (the stream closes: `ride` false, no <r/> with them). */
  sendAnswers(ride?: boolean): void;
  /** The client's <a h/>: drops what it acknowledges; §6: more than was sent ends the stream (a StreamError). */
  acknowledged(h: number): void;
}

export const Phase = {
  /** Waiting for the client's stream header. */
  Header: 0,
  /** Stream open: STARTTLS and SASL. */
  Negotiating: 1,
  /** SASL done: resource binding. */
  Authenticated: 2,
  Bound: 3,
  Closing: 4,
} as const;
export type Phase = (typeof Phase)[keyof typeof Phase];

/**
 * One client's stream as the feature modules see it: its state, a way to
 * write to it, and its one way into the core (submit, presenceChanged). The
 * modules depend on this and nothing of the session's machinery, so the
 * session, the dispatcher and the modules import no circle.
 */
export interface ClientSession {
  readonly domain: string;
  readonly streamId: string;
  /** Bytes in and out; its TLS state and channel-binding data (sasl/channel-binding.ts). */
  readonly conn: Conn;
  /** What STARTTLS would use on this listener; null: not offered. */
  readonly starttls: SecureContext | null;
  readonly secure: boolean;
  readonly phase: Phase;

  /** Local part once SASL succeeded. */
  readonly user: string;
  readonly bare: string;
  readonly address: string;
  readonly resource: string;

  available: boolean;
  priority: number;
  /** The last broadcast presence, answered to probes. */
  presence: unknown;
  /** Requested the roster: receives roster pushes (RFC 6121 §2.1.6 "interested resource"). */
  rosterRequested: boolean;
  /** The user's roster by contact JID, read at bind and kept by pushes (modules/roster-cache.ts); null: not read yet. */
  roster: Map<string, RosterItem> | null;
  /** The user's XEP-0191 block list, read at bind and kept by pushes (modules/blocklist.ts); null: not read yet. */
  blocked: Set<string> | null;
  /** Users of this server who blocked this user by name, with their items naming it (modules/blocklist.ts); null: not read yet. */
  blockedBy: Map<string, Set<string>> | null;
  /** Asked for the block list: receives block and unblock pushes (XEP-0191 §3.3). */
  blocklistRequested: boolean;
  /** Enabled XEP-0280 Message Carbons: takes copies of the user's other resources' chats (told to the core with presenceChanged). */
  wantsCopies: boolean;
  /** Full or bare JIDs sent directed presence, told when this session goes unavailable (RFC 6121 §4.6.3). */
  readonly directed: Set<string>;
  /** Set by a module that must see deliveries (XEP-0352); null: everything is written at once. */
  gate: DeliveryGate | null;
  /** Set when the client enabled XEP-0198 stream management; null: nothing counted. */
  acks: AckTracker | null;
  /**
   * Until when (monotonic ms) its messages go marked Flag.Resent: just after a resumption (XEP-0198 §5) its
   * client sends again what the server's count did not cover; 0: not marked.
   */
  resentUntil: number;
  /** Mechanism-specific state of a SASL exchange in progress. */
  sasl: unknown;
  authFailures: number;

  /** Writes to the client. */
  send(el: Element | string): void;
  /** Writes an element that is not a stanza (XEP-0198's <r/>, <a/>, …): not counted as sent. */
  sendNonza(xml: string): void;
  /** Output written in this turn is still waiting to leave: more joins the same write. */
  readonly outputPending: boolean;
  /** Cuts the connection at once without a stream error (a client that does not acknowledge). */
  destroy(reason: string): void;
  /** Why the session ended (CloseReason or a stream error's condition); empty while it lives. */
  readonly endReason: string;
  /** XEP-0198: its connection dropped and it waits for a <resume/>. */
  readonly suspended: boolean;
  /**
   * XEP-0198 resumption: this (older) session takes over `next`'s connection and
   * stream, which `next` gives up; an older connection still open is cut.
   */
  takeOver(next: ClientSession): void;
  /** The core's view of this session (what Handovers move). */
  readonly coreSession: Session;
  /** Continues a session handed over by another worker; `waitMs` null: on this connection, now (xmpp-session.ts). */
  continueFrom(h: Handover, waitMs: number | null): void;
  /** Ends here quietly: the session continues on another worker. */
  leave(reason: string): void;
  /** Hands an envelope to the core as sent by this session (or by the server because of what it did). */
  submit(env: Envelope): void;
  /** Tells the core that available, priority or presence changed. */
  presenceChanged(): void;

  /** Pauses input until release(): for a decision made asynchronously. Holds nest: input resumes at the last release. */
  hold(): void;
  release(): void;
  /** <stream:features/> on the open stream: after SASL2's <success/>, which restarts nothing (XEP-0388 §2.6.1); `empty`: with none. */
  sendFeatures(empty?: boolean): void;
  /** A new stream on this connection (RFC 6120 §5.4.3.3 after TLS, §6.4.6 after SASL). */
  restartStream(): void;
  authenticated(user: string): void;
  /**
   * RFC 6120 §7: the session becomes reachable at its full JID. `client`: the resource's part that names the
   * client (XEP-0386 Bind2 with a user-agent id, Session.client): its earlier sessions under other tags end.
   */
  bind(resource: string, client?: string): void;
  /** Ends the stream with a stream error (a StreamError; anything else is an internal error). */
  fail(e: unknown): void;
  close(reason?: string): void;
}
