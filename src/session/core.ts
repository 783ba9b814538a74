import type { Envelope } from "../envelope/envelope.js";
import type { Session } from "./session.js";
import type { ResumeRecords } from "./resume-record.js";
import type { OwnedService, ServiceLink } from "./service.js";

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
  /**
   * A message this protocol took for its recipient and then could not keep
   * (offline storage refused it after the fact): an error with `code` goes back
   * to its sender, quoting the message, as for a message nobody could take.
   */
  bounce(env: Envelope, code: string): void;
  /**
   * A message delivered with a receipt (`env.ref`) to a session that keeps what
   * it delivers until its client acknowledges it (`Session.confirmsLater`) is
   * settled: acknowledged, or stored or bounced after the session gave it back.
   * The worker holding it in custody lets it go (docs/architecture.md, "Custody").
   */
  confirm(receipt: string): void;
  /**
   * A session that moved here (Handovers) keeps, unacknowledged, a message with
   * this receipt, at `count` in its session `key`'s numbering: the worker
   * holding it learns where it is now, so the death of the worker the session
   * left does not send it again.
   */
  keeps(receipt: string, key: string, count: number): void;
  /**
   * The client of the session `key` (Session.keepKey), which is gone with its
   * worker, says it received the first `count` stanzas of it (XEP-0198 h on a
   * resumption that failed): the messages that session took up to there are
   * settled rather than delivered again. `resumed`: the session was rebuilt
   * here from its resume record (ResumeRecords), so the rest of what it had
   * taken is routed again at once, to it, once it is bound at its owner;
   * `copied`: the place of the last record keeper's copy it resent.
   */
  receivedUpTo(key: string, count: number, resumed?: boolean, copied?: number): void;
  /**
   * The count a client gave lately (receivedUpTo, here or on any worker) for
   * its session `key`; -1 if none. A session that was not gone after all (its
   * worker was stopped, not dead) ends later and gives back what its client
   * had not acknowledged: what this count covers reached the client already.
   */
  clientReceived(key: string): number;
  /**
   * Whether a message with `receipt` that the session of `key` wrote as its `n`-th stanza and its client did not acknowledge was
   * sent again by a rebuild of that session on another worker (its record keeper's copy: a message no other
   * worker held in custody), so that the session, ending here later (a stalled worker), must not give it back.
   */
  replayedElsewhere(key: string, receipt: string, n: number): boolean;
  /**
   * Calls `done` once a client count for session `key` is known here (clientReceived), or after `ms`: a
   * session replaced by its own resumption elsewhere waits for it before giving back what its client had.
   */
  whenClientCounted(key: string, ms: number, done: () => void): void;
  /**
   * This worker was stopped for longer than the cluster waits for it and has just come back: the
   * others took it off the ring meanwhile, and a resumable session's client may have resumed it
   * elsewhere (from its resume record). What such a session reads now was sent before that, and
   * must not be handled here as well.
   */
  justStalled(): boolean;
  /**
   * This worker was stopped past the cluster's patience at most `ms` ago: its sessions' clients may have
   * resumed them elsewhere meanwhile (their rebuilds say so a moment after replacing them here).
   */
  stalledWithin(ms: number): boolean;
  /**
   * Calls `done` once what the owner of `s`'s user stored offline for it before
   * `s`'s latest presence reached the owner is written (or after a timeout): a
   * login reads its offline messages then, and finds a message the owner
   * stored while the login was on its way.
   */
  barrier(s: Session, done: () => void): void;
  /**
   * Calls `cb` once what this worker has routed so far has left it: now when nothing waits in the bus,
   * else right after the bus publishes this turn's batch. A protocol acknowledges its client's stanzas
   * this way (XEP-0198 <a/>): a client told "received" must not lose a stanza that died unpublished.
   */
  afterPublish(cb: () => void): void;
  /**
   * Addresses at `domain` (any local part) are served by `svc` on the worker that owns each by the ring,
   * reached by envelopes marked Flag.Service (XEP-0045 rooms; src/session/service.ts).
   */
  serve(domain: string, svc: OwnedService): ServiceLink;
  /**
   * What the protocol keeps in memory for `key` under `topic` changed (XEP-0313: a user's archive
   * preferences, kept by the user's owner): every worker of the cluster is told, this one at once.
   */
  stale(topic: string, key: string): void;
  /** Called for every `stale(topic, …)` of any worker; with null when anything may be stale (the membership changed). */
  onStale(topic: string, cb: (key: string | null) => void): void;
  /** Sessions that continue on another worker of the host. */
  readonly handovers: Handovers;
  /** Resume records kept by another worker, for sessions whose worker dies (resume-record.ts). */
  readonly records: ResumeRecords;
}

/**
 * What the core does with a message nobody online can take, given by the
 * protocol that stores messages (XMPP). Storing is asynchronous and the core
 * does not wait: the sink returns an error code for the sender when it refuses
 * at once (not a local user, its write queue full), else null — it took the
 * message and will later call `settle` exactly once: with null once it is
 * stored, or with the code to bounce it with (the user's queue full, the store
 * down).
 */
export type OfflineSink = (env: Envelope, settle: (code: string | null) => void) => string | null;

/**
 * Where the owner of a user's bare address hands a message marked Flag.Archive
 * for that user's archive (`bare`; `outgoing`: the user sent it). Only queues:
 * the protocol writes it later, in batches, off the forwarding path.
 */
export type ArchiveSink = (env: Envelope, bare: string, outgoing: boolean) => void;

/**
 * A session moving between two workers of one host, as the bus carries it: what
 * the core keeps of it (address, presence, the requests asked of it and not yet
 * answered) and the protocol's own state, which the core does not read. The
 * session keeps its serial, so the owner sees the same session bound elsewhere.
 */
export interface Handover {
  protocol: string;
  /** The protocol's key for the detached session (XMPP: the XEP-0198 id). */
  key: string;
  address: string;
  resource: string;
  serial: number;
  available: boolean;
  priority: number;
  presence: unknown;
  /** Session.wantsCopies and peersWantCopies (XMPP carbons, in the core's terms). */
  wantsCopies: boolean;
  peersWantCopies: boolean;
  /** Requests delivered to the session and not answered: [requestKey, ref, ms left, chosen by pool]. */
  inbound: [string, string, number, boolean][];
  /** The protocol's state, JSON-able (XMPP: counters, unacknowledged stanzas, directed presence). */
  state: unknown;
  /** Session.recent's sender and id pairs, oldest first, alternating; absent: none (or from an older worker). */
  recent?: string[];
}

/** What a worker answers when another worker of the host claims a detached session. */
export type ClaimAnswer =
  /** Not here. */
  | { kind: "miss" }
  /** Here, but not for this claim (another account, a bad counter); `reason` is the protocol's, JSON-able. */
  | { kind: "refused"; reason: unknown }
  | { kind: "ok"; handover: Handover };

/** What the protocol answers for one of its sessions when another worker claims it. */
export type Release =
  | { kind: "miss" }
  | { kind: "refused"; reason: unknown }
  /** The session lets go: its connection and timers are gone; the core moves what it keeps of it. */
  | { kind: "ok"; session: Session; state: unknown };

/**
 * A protocol whose sessions outlive their connection (XEP-0198 resumption)
 * and may continue on another worker of the host: it answers claims for them
 * and takes in those that arrive.
 */
export interface Resumer {
  /** Another worker claims the detached session `key` with the protocol's `ask` (JSON-able). */
  release(key: string, ask: unknown): Release;
  /**
   * A session arrives with no connection to go with it: parked by a draining
   * worker, or an answer to a claim that came too late. The protocol makes it
   * a detached session here, waiting for its client.
   */
  adopt(h: Handover): Session;
}

/** Moving detached sessions between the workers of one host (docs/architecture.md, "Sessions that move"). */
export interface Handovers {
  /** Registers the protocol's side. */
  resumer(protocol: string, r: Resumer): void;
  /**
   * Asks the other workers of this host for the detached session `key`. `done`
   * is called once: with the session's handover, a refusal, or a miss when
   * nobody has it or nobody answered within the claim timeout. `peers`: ask
   * these workers instead (the holder a resume record names, on another host).
   */
  claim(protocol: string, key: string, ask: unknown, done: (a: ClaimAnswer) => void, peers?: string[]): void;
  /**
   * The session `claimant` continues the handed-over one: it takes its serial
   * and the requests asked of it, and becomes reachable (attach).
   */
  continueAs(claimant: Session, h: Handover): void;
  /** Draining: hands a detached session to another worker of the host. False: none runs. */
  park(s: Session, key: string, state: unknown): boolean;
}
