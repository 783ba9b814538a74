import type { Envelope } from "../envelope/envelope.js";
import type { SessionRef } from "../channel/user-channel.js";
import type { Membership } from "../router/router.js";
import type { ClaimAnswer, Handover } from "../session/core.js";
import type { Recalled, ResumeRecord } from "../session/resume-record.js";

/** What workers say to each other. Envelopes travel as they are on the local bus. */
export type BusMessage =
  /** For the owner of bare(env.to): apply the delivery rules. */
  | { op: "owner"; env: Envelope }
  /** For the worker holding session `address`. */
  | { op: "session"; address: string; serial: number; env: Envelope }
  /**
   * For the owner of bare(address), from worker `by`: the session (address, serial) it named is not there
   * (it ended, or a newer one replaced it); the binding is stale. Unbind it and deliver env again.
   */
  | { op: "missed"; address: string; serial: number; by: string; env: Envelope }
  /**
   * For the owner of bare(env.to), an address served by a protocol's service there (Flag.Service, XEP-0045
   * rooms): from worker `via`, where the session that sent it is (src/proxy/services.ts).
   */
  | { op: "service"; via: string; env: Envelope }
  /**
   * For the worker holding the sessions `to` (full addresses): each of `envs`, in order, readdressed to each, one
   * payload for all (a service's fan-out; several envelopes: what the service sent the same sessions in a row, such
   * as a room's occupant list to a newcomer). Kept below MAX_FANOUT_CHARS by its sender (src/proxy/services.ts).
   */
  | { op: "fanout"; envs: Envelope[]; to: string[] }
  /**
   * Served addresses (XEP-0045 rooms) handed to their new owner after a ring change, each with its whole state as
   * its service wrote it (`states`: [address, state]); `done`: the last of what `from` hands this worker for its
   * ring `ring` (membersKey), sent to every live worker even with nothing in it (src/proxy/service-moves.ts).
   * `placed` ([address, worker]): from a worker that drains, to every live worker: where those addresses are now,
   * while the ring still names the sender.
   */
  | { op: "moved"; from: string; ring: string; states: [string, string][]; done: boolean; placed: [string, string][] }
  /** An answer for the worker named in env.responseFor (a ref), where its PendingResponse lives. */
  | { op: "answer"; env: Envelope }
  | { op: "bind"; ref: SessionRef }
  /** Many binds in one message: sessions binding again after a membership change (src/proxy/rebinder.ts). */
  | { op: "binds"; refs: SessionRef[] }
  | { op: "unbind"; address: string; serial: number }
  | { op: "presence"; address: string; serial: number; available: boolean; priority: number; protocol: string; presence: unknown; copies: boolean }
  /** For the worker holding session `address`: whether another session of its user wants copies (Session.peersWantCopies). */
  | { op: "copies"; address: string; serial: number; on: boolean }
  /**
   * Tell the worker holding `address` that a newer session replaced it; `by`: that session's address when it is
   * another (the same client's binding under another resource, ChannelOwner.bind), else "". Workers from before
   * the field ignore it; from them it reads "".
   */
  | { op: "replaced"; address: string; serial: number; by: string }
  /** Does the worker have detached session `key` of `protocol`? Answered with "claimed" to `from`. */
  | { op: "claim"; protocol: string; key: string; ask: unknown; from: string; token: number }
  | { op: "claimed"; token: number; answer: ClaimAnswer; from: string }
  /** A draining worker hands a detached session over. */
  | { op: "park"; handover: Handover }
  /** The worker drains: park nothing on it. */
  | { op: "draining"; worker: string }

  /** For a pool's owner: these requests (by ref) it gave to pooled sessions on the sender's worker are settled. */
  | { op: "settled"; refs: string[] }
  /**
   * For the worker holding messages in custody, from worker `by`: of the receipts `<prefix><n>` (the prefix
   * names the custodian's incarnation), these numbers were delivered to sessions that keep them until their
   * clients acknowledge them (`taken`: [n, the session's Session.keepKey, the message's place in its count]),
   * or are settled (`done`).
   */
  | { op: "confirm"; by: string; prefix: string; taken: Taken[]; done: number[] }
  /**
   * For every worker: the client of session `key` (Session.keepKey), whose worker is gone, says it received
   * its first `count` stanzas (XEP-0198 h on a failed resumption): what was taken for it up to there is settled.
   * `resumedOn`: the worker where the session was rebuilt from its resume record: the rest is routed again at once.
   */
  | { op: "received"; key: string; count: number; resumedOn?: string; copied?: number }
  /**
   * For the keeper of worker `from`'s resume records (src/proxy/resume-records.ts): with `reset` it drops what it
   * keeps from `from` first; then keeps `keep`, the copies `held` ([key, n, wire]: written to the client as its n-th
   * stanza), updates the counts told to clients ([key, count]), drops the copies the clients acknowledged
   * (`acks`: [key, h]), drops `drop`.
   */
  /** To a session's worker, from its owner: messages were stored for its user while it was not bound there (Session.storedWhileAway). */
  | { op: "stored"; address: string; serial: number }
  | { op: "records"; from: string; reset: boolean; keep: ResumeRecord[]; counts: [string, number][]; drop: string[]; held: [string, number, string][]; acks: [string, number][] }
  /**
   * Does the worker keep the resume record `key` of account `user`? Answered with "recalled" to `from`. `h`: what
   * the client says it received (a record whose window passed sends on only the copies beyond it). `gone`: the
   * holder the asker saw leave, whose record the keeper named before it saw the same (it gives the record up now).
   */
  | { op: "recall"; protocol: string; key: string; user: string; from: string; token: number; h: number; gone?: string }
  | { op: "recalled"; token: number; from: string; found: Recalled | null }
  /**
   * The sender (incarnation `inc`) has just (re)learned of the receiver: it kept none of the receiver's
   * bindings and binds its own sessions again. Bus-level (NatsBus): sent ahead of those binds.
   */
  | { op: "welcome"; from: string; inc: string }
  /** From an owner: these sessions were on workers that died (and users left with none); requests to them fail. */
  | { op: "gone"; addresses: string[]; bares: string[] }
  /**
   * For a user's owner, from the worker of one of its sessions, behind that session's initial presence on the same
   * ordered stream: answer `barrierDone` once what the owner stored offline for the user before is written.
   */
  | { op: "barrier"; from: string; token: number }
  | { op: "barrierDone"; token: number }
  /**
   * For a worker that sent messages here and had no confirmation in time (custody, *Slow, not lost*): answer
   * `probed` with the same `at`, behind everything sent here before it on the same ordered way.
   */
  | { op: "probe"; from: string; at: number }
  | { op: "probed"; from: string; at: number }
  /** For every worker: what a protocol keeps in memory for `key` under `topic` changed (Core.stale; XEP-0313 preferences). */
  | { op: "stale"; topic: string; key: string };

/** A held message taken by a session: [its receipt's number, Session.keepKey, Session.keptCount after it]. */
export type Taken = [number, string, number];

/**
 * `joined`: workers that are new or restarted (their state is empty, their sessions of before are gone);
 * `resynced`: workers alive all along whose view of this one was lost (a stall, a bus outage): each side
 * drops the other's bindings and binds its own sessions there again (docs/architecture.md, "Healing").
 */
export type MembershipListener = (m: Membership, joined: readonly string[], resynced: readonly string[]) => void;

export interface BusEndpoint {
  receive(msg: BusMessage): void;
  /**
   * The bus is about to publish messages gathered before this worker was stopped past the others'
   * patience (healMs): they arrive marked (ClusterBus.readingStale), and the endpoint voids what its
   * own sessions caused in them (ProxyDaemon.stalled).
   */
  stalled?(): void;
  /**
   * The bus is about to publish a batch gathered a heartbeat or more ago (this worker was stopped or blocked in
   * between): deliveries made `lateMs` ago or more whose confirmations ride it are taken back before it goes
   * (ProxyDaemon.lateFlush).
   */
  lateFlush?(lateMs: number): void;
  /**
   * Worker `from` welcomed this one (NatsBus): it had dropped this worker (expired it, or renewed), so its
   * custody routes again what it held on its way here. Held messages of its that this worker set aside
   * after a stall of its own are dropped (ProxyDaemon, StallAside).
   */
  welcomedBy?(from: string): void;
}

/**
 * Moves messages between workers and tells who the members are. Unresolved
 * destinations go here and nowhere else: a cluster engine plugs in without the
 * core knowing (`local` in-process; `nats` across processes and hosts).
 */
export interface ClusterBus {
  readonly workerId: string;
  readonly hostAddress: string;
  /** Can reach the other workers now (readiness, /readyz): open, and for NATS connected to a server. */
  readonly connected: boolean;
  /** Bus messages dropped: addressed to a worker that is not there (local), or unreadable (NATS). A metric. */
  readonly dropped: number;
  /**
   * How long after a membership change the bindings of sessions on other workers may still be on their
   * way to a new owner (NatsBus: three heartbeats; none on an in-process bus, where they arrive at once).
   */
  readonly healMs?: number;
  /** Bus messages handed to another worker, and taken from others: metrics (switchboard_cluster_bus_messages_total). */
  readonly sent: number;
  readonly received: number;
  send(workerId: string, msg: BusMessage): void;
  /**
   * Sends what `send` gathered for this turn now rather than at the end of the turn (NatsBus batches per
   * peer per turn): custody's confirmations, so that they leave with the stanzas they count, not a turn later.
   */
  flushNow?(): void;
  /**
   * A bus that collects a turn's messages and publishes them at its end (NatsBus) calls `cb` right after
   * each such publish; what `cb` sends is published at once, behind them. Absent: messages go at once.
   */
  onFlushed?(cb: () => void): void;
  /**
   * Once, at the start of this turn's publish (NatsBus; a turn's publish is queued if none was): what `cb`
   * sends rides in the turn's batch, behind what the turn sent before, ahead of what onFlushed hooks send.
   * Resume-record copies gather there, one bus message per turn rather than one per stanza. Absent: the
   * caller sends at once.
   */
  beforePublish?(cb: () => void): void;
  /**
   * At every publish of the turn's batches, after the beforePublish callbacks and before any batch is
   * written: what `cb` sends rides in this publish, behind what was gathered before. `cb` returns a peer
   * whose batch must be written after every other one's ("": none), because what it sends there speaks of
   * them (resume-record counts: a count must never reach its keeper ahead of what the stanzas it counts
   * caused, and should not come a write later, which a death in between turns into a duplicate).
   */
  onPublishing?(cb: () => string): void;
  /** A bus that batches per turn (onFlushed): it holds messages not yet published. */
  readonly pending?: boolean;
  /**
   * The held messages wait for a timer (cluster.coalesceMs), not for the end of the turn: client output that must
   * not leave ahead of them may wait too, and is written from an afterPublish callback.
   */
  readonly coalescing?: boolean;
  /**
   * With coalescing: whether the window since the last publish is still open. Past it, the timer is only late (a
   * long turn: it fires between turns), and what waits for it should go now.
   */
  readonly windowOpen?: boolean;
  /**
   * Custody's confirmations may ride this bus's batches (Confirmations, `rides`): it calls BusEndpoint.lateFlush
   * before a batch gathered a heartbeat ago or more, and its batches' normal age is well under that.
   */
  readonly ridesConfirmations?: boolean;
  /** Calls `cb` after each publish of held messages, once the bus holds none (NatsBus). */
  afterPublish?(cb: () => void): void;
  /**
   * True while the endpoint receives messages its sender gathered before it was stopped past the others'
   * patience and published after (BusEndpoint.stalled): its held messages among them are dropped there.
   */
  readonly readingStale?: boolean;
  /**
   * Worker `workerId` of this host died (its primary saw the process exit): it leaves the membership now, as if
   * its heartbeats had stopped three beats ago, rather than when they have (NatsBus).
   */
  peerDied?(workerId: string): void;
  membership(): Membership;
  /**
   * Called with the new membership whenever a worker joins or leaves;
   * `joined` names the workers that are new or restarted (their state is empty).
   */
  onMembership(cb: MembershipListener): void;
  attach(endpoint: BusEndpoint): void;
  /**
   * Resolves once this worker may serve: it has heard `expect` workers (itself
   * included) or waited long enough. Serving earlier would make it the owner
   * of users that others own.
   */
  ready(expect: number): Promise<void>;
  close(): void | Promise<void>;
}
