import { Envelope, ErrorCode, Flag, Kind } from "../envelope/envelope.js";
import { bareOf, inDomain } from "../address/address.js";
import { PendingList, type PendingResponse } from "../pending/pending-list.js";
import { TimerDaemon } from "../timer/timer-daemon.js";
import { monotonicMs } from "../timer/clock.js";
import { Router, type Membership } from "../router/router.js";
import { ChannelOwner, type Delivery } from "../channel/channel-owner.js";
import type { SessionRef } from "../channel/user-channel.js";
import type { BusEndpoint, BusMessage, ClusterBus } from "../cluster/bus.js";
import type { ArchiveSink, Core, OfflineSink } from "../session/core.js";
import { HandoverDesk } from "./handover.js";
import type { Session } from "../session/session.js";
import { SettleNotices } from "./settle-notices.js";
import { Custody, type CustodyOptions } from "./custody.js";
import { Confirmations, Receipts, Riders, type ReceiptLog } from "./receipts.js";
import { workerOf } from "./receipt.js";
import { failGone, goneMessages } from "./gone-notices.js";
import { Misrouted } from "./misrouted.js";
import { ResumeRecordDesk } from "./resume-records.js";
import { Rebinder } from "./rebinder.js";
import { Departed, StallAside, StallWatch } from "./stall-watch.js";
import { ClientCounts } from "./client-counts.js";
import { StoredLately } from "./stored-lately.js";
import { ServiceAsker, ServiceDesk } from "./services.js";
import { StaleNotices } from "./stale-notices.js";
import type { FanoutTarget, OwnedService, ServiceLink } from "../session/service.js";
import type { Logger } from "../log/logger.js";

export interface ProtocolTimeouts {
  defaultMs: number;
  minMs: number;
  maxMs: number;
}

export interface ProxyOptions {
  /** Per protocol name: the request timeouts it allows. */
  timeouts: Record<string, ProtocolTimeouts>;
  sweepIntervalMs: number;
  /** Requests one session may have waiting for answers; past it: rate-limited. */
  maxPendingPerSession: number;
  /** Unanswered requests remembered per recipient session, to fail them if it leaves. */
  maxInboundPerSession: number;
  /** Messages held by the worker that accepted them until the one that settles them confirms (docs/architecture.md, "Custody"). */
  custody: CustodyOptions;
  /** After a worker was dropped for silence, how long owners hold what comes for users with no binding (default: the heal window). */
  holdAfterExpiryMs?: number;
  /** Debug lines of healing (Rebinder). */
  log?: Logger | null;
}

/** Sessions looked at per event-loop turn while binding again after a membership change, and refs per `binds` message. */
const REBIND_PER_TURN = 2000;
const BINDS_PER_MESSAGE = 250;

/** Messages that must end delivered, stored or bounced (XMPP chat, normal, groupchat); copies, presence, headlines may not. */
const HELD = Flag.Offline | Flag.Bounce;

/** How long a login waits for its owner's barrier answer at most. */
const BARRIER_TIMEOUT_MS = 2000;
/** Microtasks of the message path without Node's queueMicrotask (an AsyncResource and a bound function per call). */
const resolvedPromise = Promise.resolve();

/** Plain counters, read when someone asks (metrics); incrementing one costs nothing on the forwarding path. */
export class ProxyStats {
  requests = 0;
  /** Answers sessions sent to requests delivered to them. */
  responses = 0;
  /** Answers that reached their requester (results and errors, also `unavailable` for a recipient that left). */
  answered = 0;
  messages = 0;
  timeouts = 0;
  /** Answers that found no pending request: after their timeout, or never asked for. */
  late = 0;
  /** Answers from someone other than the request's recipient. */
  forged = 0;
  unavailable = 0;
  rateLimited = 0;
  /** Messages and presence nobody could take and nobody is told of (presence, headline, errors). */
  undeliverable = 0;
  /** Messages nobody could take or store, returned to their sender with an error. */
  bounced = 0;
  /** Copies made for sessions that want them (Flag.Copies): one per message and user, however many sessions take it. */
  copies = 0;
  /** Messages that arrived again after they were settled here, dropped (custody). */
  duplicates = 0;
  /** Held messages read right after this worker was stopped past the others' patience, dropped: their custodians send them again. */
  staleDropped = 0;
  /** Held messages read in the custody of a worker off the ring here, or back lately: marked as a resend (fromDeparted). */
  fromDeparted = 0;
  /** Deliveries taken back because the bus batch their confirmations rode went out late (lateFlush). */
  ridingVoided = 0;
  /** Messages a client sent again after resuming that their recipient's session had been given already (Flag.Resent). */
  resentDropped = 0;
  /** Live sessions told to take what was stored for their user while they were not bound here (StoredLately). */
  storedRetaken = 0;
}

/**
 * Seed 004's ProxyDaemon: takes envelopes from sessions, records each request
 * as a PendingResponse, sends answers back to the requester's worker, and
 * hands everything else to the owner that the Router names (ChannelOwner). It
 * never waits for an answer.
 */
export class ProxyDaemon implements Core, Delivery, BusEndpoint {
  readonly pending = new PendingList();
  readonly timer: TimerDaemon;
  readonly stats = new ProxyStats();
  /** Sessions connected to this worker, by full address. */
  readonly sessions = new Map<string, Session>();
  readonly owner: ChannelOwner;
  offline: OfflineSink | null = null;
  /** Where messages marked Flag.Archive go for the archives of the users this worker owns (XMPP's ArchiveWriter); null: none kept. */
  archiveSink: ArchiveSink | null = null;
  /** Resolves once what the offline sink took before is written (the protocol's writer); barrier() waits for it. */
  offlineFlushed: () => Promise<void> = () => Promise.resolve();
  private readonly barriers = new Map<number, () => void>();
  /** Counts clients gave for sessions whose workers seemed gone (Core.receivedUpTo). */
  private readonly clientCounts: ClientCounts;
  /** Workers that left the ring lately: one merely stalled may come back with sessions whose clients left. */
  private readonly departed: Departed;
  private nextBarrier = 1;
  /** Receipts of messages this owner took over from their custodians (leaving), to settle after the fan-out. */
  private reheld: string[] = [];
  /** Core.afterPublish callbacks waiting for this turn's bus batch. */
  private waitingPublish: (() => void)[] = [];
  /** Sessions moving between the workers of this host (Core.handovers). */
  readonly handovers: HandoverDesk;
  /** Resume records of this worker's sessions at their keeper, and those it keeps for others (Core.records). */
  readonly records: ResumeRecordDesk;
  /** Sessions binding again after membership changes, batched and paced. */
  readonly rebinder: Rebinder;
  /** Addresses served by a protocol's service on their owner (Core.serve: XEP-0045 rooms), and their fan-out. */
  readonly services: ServiceDesk;

  private router: Router;
  /** membersKey of the ring above. */
  private membersKey: string;
  private readonly self: string;
  /** Debug lines of what the owner decides for a user (stored offline, bindings dropped): the fault suite's traces. */
  private readonly trace: boolean;
  private readonly refPrefix: string;
  private readonly notices: SettleNotices;
  /** Messages this worker accepted and sent to another, until that one confirms (seed 004's pending record for messages). */
  readonly custody: Custody;
  /** Receipts of messages settled here lately: one arriving again is dropped. */
  private readonly receipts: Receipts;
  private readonly confirmations: Confirmations;
  /** Sent here as to the owner by a worker whose ring differs from this one's for a moment. */
  readonly misrouted = new Misrouted();
  /** Whether this worker was just stopped longer than the others wait (fromBeforeStall). */
  private readonly stall: StallWatch;
  /** Held messages read right after such a stall, until its window closes or their custodian welcomes this worker. */
  private readonly aside: StallAside;
  /** Users this worker stored messages for lately: a live session of theirs binding again takes them (bound). */
  private readonly storedLately = new StoredLately();
  /** Custody's next key when the bus last published: what is held from it on went in a batch not yet published. */
  private custodyMark = 0;
  /** Deliveries whose confirmations ride the bus batch they wait for (settleRiding). */
  private readonly riders = new Riders<Session>();
  /** Core.stale: what protocols keep in memory, told changed on every worker. */
  private readonly staleNotices: StaleNotices;

  constructor(
    private readonly bus: ClusterBus,
    private readonly opts: ProxyOptions,
  ) {
    this.self = bus.workerId;
    this.trace = opts.log?.isDebugEnabled() === true;
    this.refPrefix = `${bus.workerId}.`;
    this.router = new Router(bus.membership());
    this.membersKey = membersKey(bus.membership());
    const live = new Set<string>();
    for (const ids of Object.values(bus.membership().hosts)) for (const id of ids) live.add(id);
    this.departed = new Departed(this.self, live);
    this.stall = new StallWatch(() => this.bus.healMs ?? 0);
    this.aside = new StallAside(
      () => this.stall.until,
      (msgs) => {
        for (const m of msgs) this.receive(m);
      },
    );
    this.clientCounts = new ClientCounts(this.self, opts.custody.dedupWindowMs);
    this.owner = new ChannelOwner(this, this.stats);
    this.services = new ServiceDesk({
      self: this.self,
      ownerOf: (bare) => this.router.ownerOf(bare),
      send: (w, msg) => this.bus.send(w, msg),
      local: (address) => this.sessions.get(address),
      deliverLocal: (s, env) => this.deliverLocal(s, env),
      route: (env) => this.route(env),
      toRequester: (env) => this.toRequester(env),
      undeliverable: (env) => this.undeliverable(env),
      request: (env, to, done) => this.serviceRequest(env, to, done),
      members: () => Object.values(this.bus.membership().hosts).flat(),
      healMs: () => this.bus.healMs ?? 0,
      ring: () => this.membersKey,
      log: opts.log ?? null,
    });
    this.staleNotices = new StaleNotices({
      self: this.self,
      workers: () => {
        const all = new Set<string>(this.departed.workers());
        for (const ids of Object.values(this.bus.membership().hosts)) for (const w of ids) all.add(w);
        return all;
      },
      send: (w, msg) => this.bus.send(w, msg),
    });
    this.handovers = new HandoverDesk({
      workerId: this.self,
      hostPeers: () => (this.bus.membership().hosts[this.bus.hostAddress] ?? []).filter((w) => w !== this.self),
      send: (w, msg) => this.bus.send(w, msg),
      sessions: this.sessions,
      attach: (s) => this.attach(s),
    });
    this.records = new ResumeRecordDesk({
      workerId: this.self,
      send: (w, msg) => this.bus.send(w, msg),
      membership: () => this.bus.membership(),
      flushNow: () => this.bus.flushNow?.(),
      ...(bus.beforePublish !== undefined ? { beforePublish: (cb: () => void) => bus.beforePublish!(cb) } : {}),
      busPending: () => this.bus.pending === true,
      route: (env) => this.route(env),
      afterPublish: (cb) => this.afterPublish(cb),
    }, undefined, opts.custody.resumeGraceMs);
    bus.onPublishing?.(this.records.busPublishing);
    bus.onFlushed?.(this.published);
    // Paced only where owners hold what comes for users whose binds are on their way (healMs): the local bus binds at once.
    this.rebinder = new Rebinder(
      {
        current: (s) => s.bound && !s.closed && s.movedTo === null && this.sessions.get(s.address) === s,
        ownerOf: (bare) => this.router.ownerOf(bare),
        refOf: (s) => this.refOf(s),
        send: (owner, refs) => {
          if (owner === this.self) for (const ref of refs) this.owner.bind(ref);
          else this.bus.send(owner, { op: "binds", refs });
        },
      },
      { perTurn: (bus.healMs ?? 0) > 0 ? REBIND_PER_TURN : Infinity, perMessage: BINDS_PER_MESSAGE },
      opts.log ?? null,
    );
    bus.onMembership((m, joined, resynced) => this.membershipChanged(m, joined, resynced));
    bus.attach(this);
    this.timer = new TimerDaemon(this.pending, opts.sweepIntervalMs, (p) => this.timedOut(p));
    this.timer.also(this.owner.load.expire);
    this.notices = new SettleNotices((owner, refs) => this.bus.send(owner, { op: "settled", refs }));
    this.custody = new Custody(this.self, opts.custody, {
      reroute: (env) => {
        if (this.trace) this.traceMsg("routed again by its custodian", env);
        // Marked as a resumed client's resend is (docs/architecture.md, "Routed again"): its first copy may have
        // settled on another worker, stored by an owner whose hold ran out and then given from storage to the
        // user's live session, which drops this one; or stored, and this one is not stored twice.
        return this.route(env.flagged(Flag.Resent));
      },
      giveUp: (env) => this.bounce(env, ErrorCode.Unavailable),
      probe: (to, at) => this.bus.send(to, { op: "probe", from: this.self, at }),
      released: (key) => this.records.unpin(key),
    });
    this.receipts = new Receipts(opts.custody.dedupWindowMs, opts.custody.maxHeld * 4);
    // Sent at once, not batched into the next turn: a client may have its stanzas already, and a worker
    // killed in between would leave them travelling at their custodians (routed again: a duplicate). Unless the
    // delivery's output is still held for the bus batch and can be taken back with its confirmation (riding).
    this.confirmations = new Confirmations(
      (w, prefix, taken, done) => this.bus.send(w, { op: "confirm", by: this.self, prefix, taken, done }),
      () => this.bus.flushNow?.(),
      (cb) => this.records.afterCopies(cb),
      bus.beforePublish === undefined || bus.ridesConfirmations !== true ? null : (cb) => bus.beforePublish!(cb),
      () => this.riders.clear(),
    );
    this.timer.also((now) => {
      this.stall.swept(now);
      // A batch held for cluster.coalesceMs when this worker was stopped: published now (marked stale, what its
      // sessions caused voided: stalled), before custody below routes anything again. libuv runs timers in the
      // order they fell due, and this sweep's often fell due before the bus's own publish timer.
      if (this.bus.coalescing === true) this.bus.flushNow?.();
    });
    this.timer.also(this.custody.expire);
    this.timer.also((now) => this.misrouted.expire(now, this.bus.healMs ?? 0, (env) => this.route(env)));
    this.timer.also(this.receipts.expire);
    this.timer.also(this.records.expire);
    this.timer.also(this.storedLately.expire);
    this.timer.also((now) => this.services.moves.sweep(now));
  }

  get workerId(): string {
    return this.self;
  }

  /** The worker that owns `bare` now, by this worker's view of the rings (a connection's hand-off asks). */
  ownerOf(bare: string): string | undefined {
    return this.router.ownerOf(bare);
  }

  start(): void {
    this.timer.start();
  }

  stop(): void {
    this.timer.stop();
  }

  /**
   * The server is draining: every request a session here still waits on fails now with
   * `unavailable`, written to its client ahead of the shutdown notice, instead of vanishing when
   * the session goes. An answer arriving later counts as late. Requests delivered *to* these
   * sessions fail towards their requesters when each session detaches.
   */
  failPending(): number {
    let n = 0;
    for (const s of this.sessions.values()) {
      for (let p = s.firstPending; p !== null; p = s.firstPending) {
        this.pending.remove(p);
        this.stats.unavailable++;
        n++;
        this.give(s, Envelope.error({ from: p.recipient, to: s.address, protocol: s.protocol, responseFor: p.originalId, code: ErrorCode.Unavailable }));
      }
    }
    return n;
  }

  /** Clamps a requested timeout into the protocol's bounds; 0 asks for the default. */
  timeoutFor(protocol: string, asked: number): number {
    const t = this.opts.timeouts[protocol];
    if (t === undefined) throw new Error(`no timeouts configured for protocol ${protocol}`);
    if (!(asked > 0)) return t.defaultMs;
    return asked < t.minMs ? t.minMs : asked > t.maxMs ? t.maxMs : Math.floor(asked);
  }

  // ---- Core: from sessions -------------------------------------------------

  attach(s: Session): void {
    s.bound = true;
    const prev = this.sessions.get(s.address);
    this.sessions.set(s.address, s);
    // Replaced on this very worker: told here, since the map no longer leads the owner's "replaced" to it.
    if (prev !== undefined && prev !== s) prev.replaced();
    this.toOwnerOf(s.bare, { op: "bind", ref: this.refOf(s) });
  }

  presenceChanged(s: Session): void {
    if (!s.bound) return;
    this.records.refresh(s);
    this.toOwnerOf(s.bare, {
      op: "presence",
      address: s.address,
      serial: s.serial,
      available: s.available,
      priority: s.priority,
      protocol: s.protocol,
      presence: s.presence,
      copies: s.wantsCopies,
    });
  }

  detach(s: Session): void {
    if (s.closed) return;
    s.closed = true;
    this.records.drop(s);
    // Moved to another worker: its requests still complete through here, and its new place is bound already.
    if (s.movedTo !== null) {
      if (this.sessions.get(s.address) === s) this.sessions.delete(s.address);
      this.handovers.forgotten(s);
      return;
    }
    this.pending.removeAllOf(s);
    const now = monotonicMs();
    s.inbound.forEach((r) => {
      if (r.deadline > now) this.toRequester(Envelope.error({ from: s.address, to: "", protocol: s.protocol, responseFor: r.ref, code: ErrorCode.Unavailable }));
    });
    s.inbound.clear();
    if (!s.bound) return;
    s.bound = false;
    if (this.sessions.get(s.address) === s) this.sessions.delete(s.address);
    this.toOwnerOf(s.bare, { op: "unbind", address: s.address, serial: s.serial });
  }

  submit(s: Session, env: Envelope): void {
    // A resumable session's count goes to its keeper behind what this turn publishes (resume-records.ts).
    if (s.keepKey !== "") this.records.touched(s);
    switch (env.kind) {
      case Kind.Request:
        return this.request(s, env);
      case Kind.Response:
      case Kind.Error:
        return this.answerFrom(s, env);
      default:
        this.stats.messages++;
        // Given back by a session whose client never acknowledged it: it may be delivered here again.
        if (env.ref !== "") this.receipts.forget(env.ref);
        if (s.keepKey !== "" && this.records.pinning) this.routePinned(s, env);
        else this.route(env);
        // XEP-0280 sent carbons in neutral terms: only when the owner said another session of the sender wants copies.
        // XEP-0313: the sender's archive is kept by the sender's owner, which the same copy reaches.
        if (((env.flags & Flag.Copies) !== 0 && s.peersWantCopies) || (env.flags & Flag.Archive) !== 0) this.copyToOwner(s.bare, env, Flag.SentCopy, s.peersWantCopies);
    }
  }

  /**
   * Routed from resumable `s` while its keeper is on another host: a message held for another worker of this host
   * pins `s`'s count below it until that worker takes it (resume-records.ts, pin; custody tells, `released`). The
   * host's death would take the message's custodian and next hop together, and a count that covered it would have
   * the client, resumed elsewhere from its keeper, not send it again.
   */
  private routePinned(s: Session, env: Envelope): void {
    // What custody holds next gets this key (route holds at most one: the message, to its owner).
    const key = this.custody.mark();
    const via = this.route(env);
    if (via !== "" && this.custody.mark() !== key && this.records.onThisHost(via) && this.records.pin(s, key)) this.custody.watch(key);
  }

  /**
   * A copy goes to the owner of the user whose sessions take it, never straight to a session here (route's shortcut).
   * A message to archive (Flag.Archive) rides on it to that owner: archived here when this worker owns the user, and
   * copied only when someone takes copies (`copies`) or the owner is another worker.
   */
  private copyToOwner(bare: string, env: Envelope, flag: typeof Flag.Copy | typeof Flag.SentCopy, copies: boolean): void {
    const archive = (env.flags & Flag.Archive) !== 0;
    copies &&= (env.flags & Flag.Copies) !== 0;
    // The user's channel is here only where this worker owns it: a Map lookup spares the ring's hash for most messages.
    const owner = this.owner.channels.has(bare) ? this.self : this.router.ownerOf(bare);
    if (owner === this.self || owner === undefined) {
      if (archive) this.archive(env, bare, flag === Flag.SentCopy);
      if (!copies) return;
      this.stats.copies++;
      this.receive({ op: "owner", env: env.copy(flag) });
      return;
    }
    if (copies) this.stats.copies++;
    this.bus.send(owner, { op: "owner", env: env.copy(flag, archive) });
  }

  serve(domain: string, svc: OwnedService): ServiceLink {
    return this.services.serve(domain, svc);
  }

  stale(topic: string, key: string): void {
    this.staleNotices.tell(topic, key);
  }

  onStale(topic: string, cb: (key: string | null) => void): void {
    this.staleNotices.listen(topic, cb);
  }

  archive(env: Envelope, bare: string, outgoing: boolean): void {
    if (this.archiveSink !== null) this.archiveSink(env, bare, outgoing);
  }

  private request(s: Session, env: Envelope): void {
    this.stats.requests++;
    if (s.outstanding >= this.opts.maxPendingPerSession) {
      this.stats.rateLimited++;
      s.deliver(Envelope.error({ from: env.to, to: s.address, protocol: s.protocol, responseFor: env.id, code: ErrorCode.RateLimited }));
      return;
    }
    const ttl = this.timeoutFor(s.protocol, env.ttl);
    const p = this.pending.add(s, env.id, env.to, ttl, monotonicMs());
    p.via = this.route(env.forwarded(this.refPrefix + p.key, ttl));
  }

  /**
   * A request a served address makes of a session (ServiceLink.request: a room passing an iq on to an
   * occupant): pending here like a session's, its timeout clamped alike; the answer comes back by its ref.
   */
  private serviceRequest(env: Envelope, to: FanoutTarget, done: (answer: Envelope) => void): () => void {
    this.stats.requests++;
    const ttl = this.timeoutFor(env.protocol, env.ttl);
    const p = this.pending.add(new ServiceAsker(env.protocol, done), env.id, to.address, ttl, monotonicMs());
    p.via = this.services.toTarget(env.forwarded(this.refPrefix + p.key, ttl), to);
    return () => this.pending.remove(p);
  }

  /** A session answers a request delivered to it: the answer goes to the requester's worker, named by the ref. */
  private answerFrom(s: Session, env: Envelope): void {
    this.stats.responses++;
    const key = s.answerKey(env);
    const r = s.inbound.get(key);
    if (r === undefined) {
      // Not asked of this session, answered already, or forgotten past its inbound cap. A ref still names
      // the requester's worker, which alone can tell late from forged; an id passed through names nothing.
      if (s.idPassThrough) this.stats.late++;
      else this.toRequester(env);
      return;
    }
    s.inbound.delete(key);
    if (r.pool) this.settled(s, r.ref);
    this.toRequester(env.answering(r.ref, env.to));
  }

  /** A request its owner gave `s` from a pool is answered or failed here: the owner counts one fewer in flight. */
  private settled(s: Session, ref: string): void {
    const owner = this.router.ownerOf(s.bare);
    if (owner === this.self || owner === undefined) this.owner.settled(ref);
    else this.notices.add(owner, ref);
  }

  // ---- routing ---------------------------------------------------------------

  /**
   * Message, presence, error or forwarded request to env.to: straight to a session connected here, else to the owner.
   * Gives the worker it went to over the bus, "" when it stayed on this one.
   */
  route(env: Envelope): string {
    // A room (or another served address) lives on its owner, with no UserChannel: a flag test for everything else.
    if ((env.flags & Flag.Service) !== 0) return this.services.route(env);
    const to = env.to;
    // Sessions are keyed by full address: a bare one cannot match, and a lookup of a fresh string is not free.
    if (to.indexOf("/") > 0) {
      const local = this.sessions.get(to);
      if (local !== undefined) {
        this.deliverLocal(local, env);
        // The owner was skipped, so it made no copies for the recipient's other sessions: ask it, if anyone wants them;
        // and it did not archive the message for the recipient (XEP-0313).
        if (((env.flags & Flag.Copies) !== 0 && local.peersWantCopies) || (env.flags & Flag.Archive) !== 0) this.copyToOwner(local.bare, env, Flag.Copy, local.peersWantCopies);
        return "";
      }
    }
    // The owner is usually this worker: then no bus message is made for it.
    const owner = this.router.ownerOf(bareOf(to));
    if (owner === this.self || owner === undefined) {
      if (!this.settledBefore(env)) this.ownerDeliver(env);
      return "";
    }
    this.bus.send(owner, { op: "owner", env: this.leaving(env, "", owner) });
    return owner;
  }

  /**
   * A message leaving this worker for another, which may die with it: held
   * here under a receipt until the worker that settles it confirms (custody).
   * One that already has a receipt is held elsewhere and keeps it.
   */
  private leaving(env: Envelope, to = "", dest = to): Envelope {
    if (env.kind !== Kind.Message || (env.flags & HELD) === 0) return env;
    if (env.ref === "") return this.custody.hold(env, monotonicMs(), dest) ?? env;
    // Going back to its custodian (an owner passing it to a session on its sender's worker): that worker's
    // death would take both, so this one holds it now, and the first custodian lets it go. Likewise going to
    // another worker of its custodian's host while this owner is on another host: that host's death would take
    // custodian and session together (kill-host), and this owner, which survives it, routes it again.
    if (to === "") return env;
    const custodian = workerOf(env.ref);
    if (custodian !== to && !this.records.dieTogether(custodian, to)) return env;
    const held = this.custody.hold(env, monotonicMs(), dest);
    if (held === null) return env;
    // Settled here once the owner's fan-out is done (a resource on this worker still takes it under the first
    // receipt); the confirmation goes behind the message on the bus, and a copy routed again stops here.
    if (this.reheld.push(env.ref) === 1) void resolvedPromise.then(this.settleReheld);
    return held;
  }

  private readonly settleReheld = (): void => {
    const rs = this.reheld;
    if (rs.length === 0) return;
    this.reheld = [];
    for (const r of rs) this.confirm(r);
  };

  /** The owner's delivery rules; then what it took over from a custodian (leaving) counts as settled here. */
  private ownerDeliver(env: Envelope): void {
    this.owner.deliver(env);
    if (this.reheld.length > 0) this.settleReheld();
  }

  /** A message with a receipt is settled here: its custodian lets it go, and it is not settled here twice. */
  private settle(env: Envelope): void {
    const receipt = env.ref;
    if (receipt === "" || env.kind !== Kind.Message) return;
    this.confirm(receipt);
  }

  confirm(receipt: string): void {
    const c = this.receipts.custodian(receipt);
    // Ends in no number: none of custody's receipts, so no custodian to tell; remembered as one held elsewhere is.
    if (c === null) {
      if (workerOf(receipt) !== this.self) this.receipts.add(receipt, monotonicMs());
      return;
    }
    const key = this.receipts.key;
    if (c.worker === this.self) {
      // Routed again before this copy settled it: the other copy is on its way here too, and must meet its receipt.
      if (this.custody.done(this.custody.keyIn(c.prefix, key)) > 1 || c.has(key)) this.receipts.add(receipt, monotonicMs());
    } else if (c.worker !== "") {
      this.receipts.add(receipt, monotonicMs());
      this.confirmations.done(c, key);
    }
  }

  /**
   * Settled by a delivery whose output is held for the bus batch: its confirmation rides that batch, and both can
   * be taken back until it goes (lateFlush). False: nothing was done (no output held for it, or no custodian elsewhere).
   */
  private settleRiding(env: Envelope, s: Session, from: number): boolean {
    const to = s.outputMark();
    if (to <= from) return false;
    const receipt = env.ref;
    const c = this.receipts.custodian(receipt);
    if (c === null || c.worker === this.self || c.worker === "") return false;
    const key = this.receipts.key;
    const now = monotonicMs();
    this.receipts.add(receipt, now);
    this.confirmations.done(c, key, true);
    this.riders.add(s, from, to, c, key, env, now);
    return true;
  }

  /**
   * The bus publishes a batch gathered long enough ago (`lateMs`: this worker was stopped or blocked in between)
   * that a custodian may have routed again a message whose confirmation rides it: each delivery made that long
   * ago is taken back — its output cut before it is written, its confirmation withdrawn, its receipt and its
   * session's note of it (Session.recent) forgotten —
   * and its custodian routes it again as it would one whose bus message was lost. Never written twice, never
   * lost. Those made since (what the worker read once it ran again) go as they are: their custodians sent them
   * moments ago, or, if they had given up on this worker, they were dropped as read after a stall (fromBeforeStall).
   */
  lateFlush(lateMs: number): void {
    const before = monotonicMs() - lateMs;
    // A rider's confirmation is still gathered (handing it to the bus forgets every rider): withdrawn together, per custodian.
    const gone = new Map<ReceiptLog, Set<number>>();
    const voided = this.riders.void((s, from, to, c, key, env, at) => {
      if (at > before || !s.cutOutput(from, to)) return false;
      let keys = gone.get(c);
      if (keys === undefined) gone.set(c, (keys = new Set()));
      keys.add(key);
      this.receipts.forget(env.ref);
      // And the session's note of it: the copy its custodian routes again comes marked (Flag.Resent), and would be
      // dropped here as one this session was given.
      s.recent?.forget(env.from, env.id);
      return true;
    });
    for (const [c, keys] of gone) this.confirmations.withdraw(c, keys);
    this.stats.ridingVoided += voided;
    if (voided > 0) this.opts.log?.debug("bus batch late: deliveries whose confirmations rode it taken back", { messages: voided });
  }

  /** Settled here already (a custodian routed it again, or it came late behind its twin): confirmed again and dropped. */
  private settledBefore(env: Envelope): boolean {
    if (env.ref === "" || env.kind !== Kind.Message || !this.receipts.has(env.ref)) return false;
    this.stats.duplicates++;
    if (this.trace) this.traceMsg("settled here before: dropped", env);
    const c = this.receipts.custodian(env.ref);
    // Its custodian is this worker: custody knows already. One whose receipt ends in no number has none to tell.
    if (c === null || c.worker === this.self || c.worker === "") return true;
    const key = this.receipts.key;
    if (c.time(key) < 0) this.confirmations.taken(c, [key, "", 0]);
    else this.confirmations.done(c, key);
    return true;
  }

  /**
   * A message its sender's client sent again after resuming, or its custodian routed again (Flag.Resent),
   * that this session was given already (Session.recent): dropped, and its receipt settled. Any other is
   * noted as given. The sender's count had not covered it (a pin whose release died with its host:
   * docs/architecture.md, "Resent"), or its first copy settled on another worker (stored, then given from
   * storage here: "Routed again"), so nothing else would tell the two apart.
   */
  private resentBefore(s: Session, env: Envelope): boolean {
    if (!s.recentMessages().again(env.from, env.id, (env.flags & Flag.Resent) !== 0)) return false;
    this.stats.resentDropped++;
    if (this.trace) this.traceMsg("sent again after a resumption, given here before: dropped", env, { address: s.address, serial: s.serial });
    this.settle(env);
    return true;
  }

  /**
   * A held message read right after this worker was stopped longer than the others wait (its sweep
   * came that late): the others took it off the ring meanwhile, and every custodian routes again what
   * it held on its way here, so this copy, sent before, is dropped rather than delivered next to its
   * twin (to a session whose client has left, say, which would give it back later: a duplicate).
   */
  private fromBeforeStall(msg: Extract<BusMessage, { op: "owner" | "session" }>): boolean {
    const env = msg.env;
    if (env.ref === "" || env.kind !== Kind.Message) return false;
    if (this.bus.readingStale !== true) {
      if (!this.justStalled()) return false;
      // Its custodian may not have given up on this worker (a stall just past the window, not noticed there):
      // set aside until the window closes, dropped only if the custodian welcomes this worker meanwhile (StallAside).
      if (this.aside.add(workerOf(env.ref), msg)) {
        if (this.trace) this.traceMsg("read after a stall: set aside", env);
        return true;
      }
    }
    this.stats.staleDropped++;
    if (this.trace) this.traceMsg("read after a stall: dropped", env);
    return true;
  }

  /**
   * A held message in the custody of a worker this one took off the ring, or took back within a heal window:
   * marked as a resend (Flag.Resent), so its recipient's session drops it if it was given it already (Session.recent)
   * and storage does not store it twice; otherwise it goes on as it would. Such a worker was stopped, and may have
   * been stopped inside a publish, after the publish judged its batch fresh and before it was written (NatsBus.flush
   * marks only a batch it knows was gathered before the stop): the batch comes late and unmarked, while the
   * sender's client, resumed elsewhere from a count that did not cover the stanza, sent it again (docs/architecture.md,
   * "Stopped in the middle of a publish"). Costs one check per held message while no worker has left lately.
   */
  private fromDeparted(msg: Extract<BusMessage, { op: "owner" | "session" }>): void {
    if (this.departed.none) return;
    const env = msg.env;
    if (env.ref === "" || env.kind !== Kind.Message || (env.flags & Flag.Resent) !== 0) return;
    if (!this.departed.offOrBack(workerOf(env.ref), monotonicMs(), this.bus.healMs ?? 0)) return;
    msg.env = env.flagged(Flag.Resent);
    this.stats.fromDeparted++;
    if (this.trace) this.traceMsg("held by a worker off the ring here, or back lately: marked as a resend", env);
  }

  justStalled(): boolean {
    return this.stall.justStalled();
  }

  /** A custodian that welcomes this worker had dropped it and routes again what it held: its messages set aside go. */
  welcomedBy(from: string): void {
    const n = this.aside.forget(from);
    this.stats.staleDropped += n;
    if (this.trace && n > 0) this.opts.log?.debug("held messages set aside after a stall: dropped, their custodian welcomed this worker", { from, messages: n });
  }

  stalledWithin(ms: number): boolean {
    return this.stall.stalledWithin(ms);
  }

  /**
   * The bus publishes, marked stale, what it gathered before this worker was stopped past the others'
   * patience (NatsBus.flush); its peers drop the held messages in it (fromBeforeStall). Meanwhile they
   * may have rebuilt this worker's sessions elsewhere from their keepers' counts, which do not cover
   * the stanzas that caused those messages (the counts follow the publish): the clients send them again
   * there. So they are void here too: each such session counts them no more and drops its connection
   * (a resumption here asks for them again too), and custody forgets the messages they caused rather
   * than routing them again next to the clients' second copies. What else custody holds from before
   * travels again as any message whose bus message was lost.
   */
  stalled(): void {
    const from = new Set<string>();
    for (const [s, count] of this.records.untouch()) if (s.stalledBack(count)) from.add(s.address);
    const voided = from.size === 0 ? 0 : this.custody.voidSince(this.custodyMark, (env) => from.has(env.from));
    this.opts.log?.debug("bus batch gathered before a stall: its sessions' stanzas voided", { sessions: from.size, messages: voided });
  }

  /**
   * Sent here as to its user's owner, while this worker's ring names another and no binding of the
   * user is here: the two rings differ for a moment (Misrouted). Held until they agree.
   */
  private notMine(env: Envelope): boolean {
    const heal = this.bus.healMs ?? 0;
    if (heal <= 0) return false;
    // A sent copy (XEP-0280) goes to the owner of its sender, as ChannelOwner.deliverCopy reads it.
    const bare = bareOf((env.flags & Flag.SentCopy) !== 0 ? env.from : env.to);
    // A user bound here (nearly every message) costs one Map lookup, not a ring lookup.
    if (this.owner.channels.has(bare)) return false;
    const owner = this.router.ownerOf(bare);
    if (owner === undefined || owner === this.self) return false;
    return this.misrouted.take(env, monotonicMs());
  }

  private toOwnerOf(bare: string, msg: BusMessage): void {
    const owner = this.router.ownerOf(bare);
    if (owner === this.self || owner === undefined) this.receive(msg);
    else this.bus.send(owner, msg);
  }

  /** Bus messages from other workers, and this worker's own when it owns the address. */
  receive(msg: BusMessage): void {
    switch (msg.op) {
      case "owner":
        // Settled here already (stored offline by this owner): a copy given back by a session that had it, or routed again, goes no further.
        if (this.settledBefore(msg.env) || this.fromBeforeStall(msg)) return;
        this.fromDeparted(msg);
        if (this.notMine(msg.env)) return;
        return this.ownerDeliver(msg.env);
      case "session": {
        if (this.fromBeforeStall(msg)) return;
        this.fromDeparted(msg);
        const s = this.sessions.get(msg.address);
        if (s !== undefined && s.serial === msg.serial) this.deliverLocal(s, msg.env);
        else if (msg.env.kind === Kind.Message && (msg.env.flags & HELD) !== 0) {
          // The owner's binding is stale (the session ended or was replaced as this came): the owner, told, decides
          // again — another session, the user's new one, or offline storage there, where a login's barrier looks.
          this.toOwnerOf(bareOf(msg.address), { op: "missed", address: msg.address, serial: msg.serial, by: this.self, env: msg.env });
        } else this.undeliverable(msg.env);
        return;
      }
      case "missed":
        if (this.trace) this.traceOwner("missed", msg.address, { serial: msg.serial, by: msg.by, ref: msg.env.ref });
        this.owner.unbindAt(msg.address, msg.serial, msg.by);
        if (this.settledBefore(msg.env) || this.notMine(msg.env)) return;
        return this.ownerDeliver(msg.env);
      case "answer":
        return this.complete(msg.env);
      case "service":
        return this.services.receive(msg.env, msg.via);
      case "fanout":
        return this.services.delivered(msg.envs, msg.to);
      case "moved":
        return this.services.moves.onMoved(msg);
      case "bind":
        return this.owner.bind(msg.ref);
      case "binds":
        for (const ref of msg.refs) this.owner.bind(ref);
        return;
      case "unbind":
        if (this.trace) this.traceOwner("unbind", msg.address, { serial: msg.serial });
        return this.owner.unbind(msg.address, msg.serial);
      case "presence":
        return this.owner.presence(msg.address, msg.serial, msg.available, msg.priority, msg.presence, msg.copies);
      case "copies": {
        const s = this.sessions.get(msg.address);
        if (s !== undefined && s.serial === msg.serial) s.peersWantCopies = msg.on;
        return;
      }
      case "replaced": {
        const s = this.sessions.get(msg.address);
        if (s !== undefined && s.serial === msg.serial) this.replacedHere(s, msg.by);
        return;
      }
      case "claim":
        return this.handovers.onClaim(msg);
      case "claimed":
        return this.handovers.onClaimed(msg);
      case "park":
        return this.handovers.onPark(msg);
      case "draining":
        return this.handovers.onDraining(msg.worker);
      case "settled":
        for (const ref of msg.refs) this.owner.settled(ref);
        return;
      case "received":
        this.clientCounts.note(msg.key, msg.count, msg.resumedOn, msg.copied);
        this.custody.receivedUpTo(msg.key, msg.count, msg.resumedOn ?? "", monotonicMs());
        return;
      case "records":
        return this.records.onRecords(msg);
      case "recall":
        return this.records.onRecall(msg);
      case "recalled":
        return this.records.onRecalled(msg);
      case "barrier": {
        const answer = () => this.bus.send(msg.from, { op: "barrierDone", token: msg.token });
        void this.offlineFlushed().then(answer, answer);
        return;
      }
      case "barrierDone":
        return this.barrierDone(msg.token);
      case "probe": {
        // Read behind everything the prober sent here before. The answer goes last, behind the confirmations of all
        // that: those gathered in this callback go at its end, those that ride join the batch at its publish (and a
        // big batch may reach the prober in two reads, with its sweep between them).
        const answer = () => this.bus.send(msg.from, { op: "probed", from: this.self, at: msg.at });
        if (this.bus.beforePublish !== undefined) this.bus.beforePublish(answer);
        else void resolvedPromise.then(answer);
        return;
      }
      case "probed":
        return this.custody.probed(msg.from, msg.at);
      case "confirm": {
        const now = monotonicMs();
        // Another incarnation's numbers (this worker restarted under its id) name nothing held here.
        if (this.custody.keyIn(msg.prefix, 0) < 0) return;
        for (const [key, tag, count] of msg.taken) this.custody.takenBy(key, msg.by, now, tag, count);
        for (const key of msg.done) this.custody.done(key);
        return;
      }
      case "gone":
        return this.recipientsGone(msg.addresses, msg.bares);
      case "stale":
        return this.staleNotices.received(msg.topic, msg.key);
      case "stored": {
        const s = this.sessions.get(msg.address);
        if (s !== undefined && s.serial === msg.serial && !s.closed) s.storedWhileAway();
        return;
      }
    }
  }

  // ---- Delivery: what the owner asks of this worker ----------------------------

  toSession(ref: SessionRef, env: Envelope): void {
    if (ref.workerId !== this.self) {
      this.bus.send(ref.workerId, { op: "session", address: ref.address, serial: ref.serial, env: this.leaving(env, ref.workerId) });
      return;
    }
    const s = ref.session ?? this.sessions.get(ref.address);
    if (s === undefined || s.closed) return this.undeliverable(env);
    this.deliverLocal(s, env);
  }

  replaced(old: SessionRef, by: SessionRef): void {
    const successor = by.address === old.address ? "" : by.address;
    if (old.workerId === this.self) {
      if (old.session !== null) this.replacedHere(old.session, successor);
    } else this.bus.send(old.workerId, { op: "replaced", address: old.address, serial: old.serial, by: successor });
  }

  /**
   * A newer session bound this one's address elsewhere, or (`successor`, its address) is the same client's new
   * binding under another one; for a session that moved there, its new place.
   */
  private replacedHere(s: Session, successor: string): void {
    // The owner now knows the moved session's new place: nothing more will be routed to it here.
    if (s.movedTo === null) {
      s.successor = successor;
      s.replaced();
    } else {
      if (this.sessions.get(s.address) === s) this.sessions.delete(s.address);
      this.handovers.forgotten(s);
    }
  }

  local(address: string): Session | undefined {
    return this.sessions.get(address);
  }

  /** A debug line about one message (FAULTS_TRACE: every path a duplicate took). */
  private traceMsg(what: string, env: Envelope, more: Record<string, unknown> = {}): void {
    // from and flags: whether two deliveries of one id came from one sender's full JID, and which was marked Resent.
    this.opts.log?.debug(`message: ${what}`, { id: env.id, ref: env.ref, from: env.from, to: env.to, flags: env.flags, ...more });
  }

  /** A debug line about `address`'s user as this owner sees it: its bindings (worker:serial:available). */
  private traceOwner(what: string, address: string, more: Record<string, unknown>): void {
    const ch = this.owner.channels.get(bareOf(address));
    const bound = ch === undefined ? "" : [...ch.resources.values()].map((r) => `${r.resource}@${r.workerId}:${r.serial}:${r.available ? 1 : 0}`).join(" ");
    this.opts.log?.debug(`owner: ${what}`, { address, bound, ...more });
  }

  /**
   * A session binding here while messages stored for its user lately wait (StoredLately): one that is
   * online (available: past its initial presence, which takes them itself) takes them now.
   */
  bound(ref: SessionRef): void {
    if (this.trace) this.traceOwner("bound", ref.address, { worker: ref.workerId, serial: ref.serial });
    if (!ref.available || !this.storedLately.has(bareOf(ref.address))) return;
    this.stats.storedRetaken++;
    if (this.trace) this.traceOwner("told to take what was stored", ref.address, { worker: ref.workerId, serial: ref.serial });
    if (ref.workerId !== this.self) return this.bus.send(ref.workerId, { op: "stored", address: ref.address, serial: ref.serial });
    const s = this.sessions.get(ref.address);
    if (s !== undefined && s.serial === ref.serial && !s.closed) s.storedWhileAway();
  }

  peersWantCopies(ref: SessionRef, on: boolean): void {
    if (ref.workerId !== this.self) return this.bus.send(ref.workerId, { op: "copies", address: ref.address, serial: ref.serial, on });
    const s = ref.session ?? this.sessions.get(ref.address);
    if (s !== undefined && s.serial === ref.serial) s.peersWantCopies = on;
  }

  private deliverLocal(s: Session, env: Envelope): void {
    if (s.movedTo !== null) return this.forward(s, env);
    if (env.kind !== Kind.Request) {
      // By receipt first: a copy of one this session took and keeps until its client acknowledges stays taken.
      if (this.settledBefore(env)) return;
      if (env.kind === Kind.Message && env.id !== "" && s.dropsResent && this.resentBefore(s, env)) return;
      if (env.ref === "" || env.kind !== Kind.Message) {
        if (this.trace && env.kind === Kind.Message) this.traceMsg("delivered", env, { address: s.address, serial: s.serial });
        s.deliver(env);
        return;
      }
      if (this.trace) this.traceMsg("delivered", env, { address: s.address, serial: s.serial, keeps: s.confirmsLater });
      // A session that confirms at once and whose output waits for the bus batch: the confirmation rides that batch.
      const from = s.confirmsLater || !this.confirmations.canRide ? -1 : s.outputMark();
      s.deliver(env);
      // Kept until the client acknowledges it: the custodian hears it was taken, and settled when the protocol confirms.
      if (s.confirmsLater) this.taken(env.ref, s.keepKey, s.keptCount);
      else if (from < 0 || !this.settleRiding(env, s, from)) this.settle(env);
      return;
    }
    const pool = (env.flags & Flag.Pool) !== 0;
    if (!s.deliver(env)) {
      if (pool) this.settled(s, env.ref);
      return this.undeliverable(env);
    }
    const now = monotonicMs();
    s.trackInbound(s.requestKey(env), env.ref, now + env.ttl, now, this.opts.maxInboundPerSession, pool);
  }

  /**
   * Nobody online can take it. A request fails at once; a message is stored
   * or returned to its sender with an error, as its flags ask; the rest
   * (presence, headlines, errors) is dropped, as the protocols say.
   */
  undeliverable(env: Envelope): void {
    if (env.kind === Kind.Message && this.settledBefore(env)) return;
    if (env.kind === Kind.Request) {
      this.stats.unavailable++;
      this.toRequester(Envelope.error({ from: env.to, to: env.from, protocol: env.protocol, responseFor: env.ref, code: ErrorCode.Unavailable }));
      return;
    }
    if (env.kind === Kind.Message && env.from !== "") {
      let refused: string | null = null;
      if (env.flags & Flag.Offline && this.offline !== null) {
        // Its receipt is remembered now, not when the batch is written: a copy routed again that comes
        // meanwhile (two copies held for one user, released together) is not stored a second time.
        if (env.ref !== "") this.receipts.add(env.ref, monotonicMs());
        // Stored later, off this path; then settled, or bounced if the store refuses.
        refused = this.offline(env, (code) => {
          if (code !== null) this.bounce(env, code);
          this.settle(env);
        });
        if (refused === null) {
          this.storedLately.note(bareOf(env.to));
          if (this.trace) this.traceOwner("stored offline", env.to, { ref: env.ref, from: env.from, id: env.id });
          return;
        }
      } else if (env.flags & (Flag.Bounce | Flag.Offline)) refused = ErrorCode.Unavailable;
      if (refused !== null) {
        this.bounce(env, refused);
        return this.settle(env);
      }
    }
    this.stats.undeliverable++;
  }

  /** Delivered to a session that keeps it until its client acknowledges it. */
  private taken(receipt: string, tag: string, count: number): void {
    const c = this.receipts.custodian(receipt);
    if (c === null) {
      if (workerOf(receipt) !== this.self) this.receipts.add(receipt, monotonicMs(), true);
      return;
    }
    const key = this.receipts.key;
    if (c.worker === this.self) {
      // Routed again while it travelled (a membership change): the other copy may come here too, and must meet its receipt.
      if (this.custody.takenBy(this.custody.keyIn(c.prefix, key), this.self, monotonicMs(), tag, count) > 1) this.receipts.add(receipt, monotonicMs(), true);
    } else if (c.worker !== "") {
      this.receipts.add(receipt, monotonicMs(), true);
      // Its custodian on this host and the session's keeper on another (pins): the copy goes first (afterCopies).
      if (this.records.pinning && this.records.onThisHost(c.worker)) this.confirmations.takenAfterCopies(c, [key, tag, count]);
      else this.confirmations.taken(c, [key, tag, count]);
    }
  }

  keeps(receipt: string, key: string, count: number): void {
    this.taken(receipt, key, count);
  }

  barrier(s: Session, done: () => void): void {
    const owner = this.router.ownerOf(s.bare);
    if (owner === this.self || owner === undefined) {
      void this.offlineFlushed().then(done, done);
      return;
    }
    // An owner that never answers (it died meanwhile) does not hold the login for long.
    this.roundTrip(owner, done);
  }

  private barrierDone(token: number): void {
    const done = this.barriers.get(token);
    if (done === undefined) return;
    this.barriers.delete(token);
    done();
  }

  clientReceived(key: string): number {
    return this.clientCounts.received(key);
  }

  replayedElsewhere(key: string, receipt: string, n: number): boolean {
    return this.clientCounts.replayedElsewhere(key, receipt, n);
  }

  whenClientCounted(key: string, ms: number, done: () => void): void {
    this.clientCounts.whenNoted(key, ms, done);
  }

  receivedUpTo(key: string, count: number, resumed = false, copied?: number): void {
    this.clientCounts.note(key, count);
    const msg: BusMessage = resumed ? { op: "received", key, count, resumedOn: this.self, ...(copied !== undefined ? { copied } : {}) } : { op: "received", key, count };
    // Every worker of every host may hold messages that session took: a failed resumption is rare, so all are told.
    for (const ids of Object.values(this.bus.membership().hosts)) for (const w of ids) if (w !== this.self) this.bus.send(w, msg);
    // And those that left lately: the session's own worker may only be stalled, and must not give back what its client had.
    for (const w of this.departed.workers()) this.bus.send(w, msg);
    this.custody.receivedUpTo(key, count, resumed ? this.self : "", monotonicMs());
  }

  bounce(env: Envelope, code: string): void {
    if (env.from === "") return;
    this.stats.bounced++;
    // The error goes to the sender in its own protocol; it quotes the message's own id.
    this.route(Envelope.error({ from: env.to, to: env.from, protocol: env.protocol, responseFor: env.id, code, payload: env.payload }));
  }

  // ---- answers -----------------------------------------------------------------

  /** An answer travels to the worker named in its ref, in one hop. */
  private toRequester(env: Envelope): void {
    const ref = env.responseFor;
    const dot = ref.lastIndexOf(".");
    const worker = dot > 0 ? ref.slice(0, dot) : "";
    if (worker === this.self) this.complete(env);
    else if (worker !== "") this.bus.send(worker, { op: "answer", env });
    else this.stats.late++;
  }

  /** Reverse routing (seed 004 §4): the pending request gives the asker and its own id back. */
  private complete(env: Envelope): void {
    const key = Number(env.responseFor.slice(this.refPrefix.length));
    const p = Number.isInteger(key) ? this.pending.get(key) : undefined;
    if (p === undefined) {
      this.stats.late++;
      return;
    }
    // Only the recipient may answer; a full address must match, a bare one by its bare part, a domain (an
    // XEP-0114 component's: only it is bound there) by any address in it.
    if (env.from !== p.recipient && (p.recipient.indexOf("/") >= 0 || bareOf(env.from) !== p.recipient) && !inDomain(env.from, p.recipient)) {
      this.stats.forged++;
      return;
    }
    this.pending.remove(p);
    this.stats.answered++;
    if (p.sender instanceof ServiceAsker) return p.sender.done(env);
    const s = p.sender as Session;
    this.give(s, env.answering(p.originalId, s.address));
  }

  private timedOut(p: PendingResponse): void {
    this.stats.timeouts++;
    if (p.sender instanceof ServiceAsker) return p.sender.done(Envelope.error({ from: p.recipient, to: "", protocol: p.sender.protocol, responseFor: p.originalId, code: ErrorCode.Timeout }));
    const s = p.sender as Session;
    this.give(s, Envelope.error({ from: p.recipient, to: s.address, protocol: s.protocol, responseFor: p.originalId, code: ErrorCode.Timeout }));
  }

  /** An answer for a session of this worker, or for the worker it moved to. */
  private give(s: Session, env: Envelope): void {
    if (s.movedTo !== null) this.forward(s, env);
    else s.deliver(env);
  }

  /** The session moved to another worker of the host (handover.ts), keeping its address and serial. */
  private forward(s: Session, env: Envelope): void {
    this.bus.send(s.movedTo!, { op: "session", address: s.address, serial: s.serial, env: this.leaving(env, s.movedTo!) });
  }

  // ---- membership ----------------------------------------------------------------

  private refOf(s: Session): SessionRef {
    return {
      address: s.address,
      resource: s.resource,
      workerId: this.self,
      serial: s.serial,
      protocol: s.protocol,
      available: s.available,
      priority: s.priority,
      presence: s.presence,
      pool: s.pooled,
      session: null,
      seq: 0,
      born: s.since,
      client: s.client,
      copies: s.wantsCopies,
      // What it was told by an owner before: a new owner corrects it if that no longer holds.
      told: s.peersWantCopies,
    };
  }

  /**
   * Workers came or went, so some bare addresses changed owner. The owner side
   * keeps what it still owns (ChannelOwner.rehome) and holds, for a few
   * heartbeats, what comes for users whose binds are still on their way; each
   * session here binds again, with its presence, wherever its owner is new, has
   * restarted with empty state, or lost touch with this worker (`resynced`).
   * Sessions dropped because their worker died are announced to every worker,
   * whose requests to them fail at once (docs/architecture.md, "Healing").
   */
  private membershipChanged(m: Membership, joined: readonly string[], resynced: readonly string[] = []): void {
    const before = this.router;
    this.router = new Router(m);
    const live = new Set<string>();
    for (const ids of Object.values(m.hosts)) for (const id of ids) live.add(id);
    const restarted = new Set(joined);
    const fresh = new Set([...joined, ...resynced]);
    // A worker dropped (for silence, or gone): its sessions may be alive and stalled, or their clients about to come back
    // elsewhere; what comes for their users waits longer for their binds than a ring change's heal window.
    const departed = this.departed.update(live);
    const heal = this.bus.healMs ?? 0;
    const holdMs = departed && heal > 0 ? Math.max(heal, this.opts.holdAfterExpiryMs ?? 0) : heal;
    this.handovers.membershipChanged(live, restarted);
    this.staleNotices.membershipChanged();
    this.records.membershipChanged(m, joined, resynced);
    // Held messages on their way, or taken by a session of a worker that left or restarted, travel again.
    this.custody.lost((w) => w !== this.self && (!live.has(w) || restarted.has(w)), monotonicMs());
    const dropped = this.owner.rehome(
      (bare) => this.router.ownerOf(bare) === this.self,
      (worker) => !live.has(worker) || fresh.has(worker),
      holdMs,
    );
    if (this.trace) for (const r of dropped) this.traceOwner("binding dropped", r.address, { worker: r.workerId, serial: r.serial, gone: !live.has(r.workerId) });
    this.announceGone(
      dropped.filter((r) => !live.has(r.workerId) || restarted.has(r.workerId)),
      live,
    );
    this.failVia((w) => !live.has(w) || restarted.has(w));
    const key = membersKey(m);
    this.services.membershipChanged((w) => !live.has(w) || restarted.has(w), key, monotonicMs(), (bare) => before.ownerOf(bare));
    // Judged when each batch goes, by the ring then (Rebinder). The ring unchanged (a resync): only sessions owned by the fresh workers.
    const same = key === this.membersKey;
    this.membersKey = key;
    if (!same) this.rebinder.add(this.sessions.values(), (s, owner) => owner !== before.ownerOf(s.bare) || fresh.has(owner));
    else if (fresh.size > 0) this.rebinder.add(this.sessions.values(), (_s, owner) => fresh.has(owner));
    // After the binds above and with the owner's hold open: what came here by another worker's ring travels by the new one.
    for (const env of this.misrouted.drain()) this.route(env);
  }

  /**
   * This worker drains: what its services hold (XEP-0045 rooms) goes now to the owners by the ring without
   * it, and what still comes here for them is sent on (service-moves.ts).
   */
  drainServices(): Promise<void> {
    let key = "";
    let router: Router | null = null;
    const told = this.services.moves.draining((bare) => {
      const m = this.bus.membership();
      if (router === null || key !== this.membersKey) {
        const hosts: Record<string, readonly string[]> = {};
        for (const [h, ids] of Object.entries(m.hosts)) {
          const rest = ids.filter((w) => w !== this.self);
          if (rest.length > 0) hosts[h] = rest;
        }
        router = new Router({ hosts, vnodes: m.vnodes });
        key = this.membersKey;
      }
      return router.ownerOf(bare);
    });
    // Each worker told answers after the notice (a pair of workers is kept in order): what it sent here before is here.
    return Promise.all(told.map((w) => new Promise<void>((done) => this.roundTrip(w, done)))).then(() => undefined);
  }

  /** `done` once `worker` answered a barrier (everything it sent here before has come), or BARRIER_TIMEOUT_MS passed. */
  private roundTrip(worker: string, done: () => void): void {
    const token = this.nextBarrier++;
    const timer = setTimeout(() => this.barrierDone(token), BARRIER_TIMEOUT_MS);
    timer.unref();
    this.barriers.set(token, () => {
      clearTimeout(timer);
      done();
    });
    this.bus.send(worker, { op: "barrier", from: this.self, token });
  }

  /** To every live worker, this one included: the sessions that died with their worker. */
  private announceGone(dead: SessionRef[], live: ReadonlySet<string>): void {
    for (const msg of goneMessages(dead, (bare) => this.owner.channels.has(bare))) {
      for (const w of live) {
        if (w === this.self) this.receive(msg);
        else this.bus.send(w, msg);
      }
    }
  }

  /**
   * Requests sent to an owner that died (or restarted, empty) died with it, unless it had passed
   * them on: they fail now, as when a recipient leaves, rather than at their timeout. One passed on
   * in its last moments may still be answered; that answer then counts as late.
   */
  private failVia(lost: (worker: string) => boolean): void {
    for (const s of this.sessions.values()) {
      for (let p = s.firstPending; p !== null; ) {
        const next = p.senderNext;
        if (p.via !== "" && lost(p.via)) this.failRequest(p);
        p = next;
      }
    }
  }

  afterPublish(cb: () => void): void {
    if (this.bus.pending !== true) return cb();
    this.waitingPublish.push(cb);
  }

  /**
   * The bus published this turn's batch. In a microtask: nats.js writes what was published in one it
   * queued then, ahead of this; a host link wrote it already.
   */
  private readonly published = (): void => {
    this.custodyMark = this.custody.mark();
    if (this.waitingPublish.length === 0) return;
    const cbs = this.waitingPublish;
    this.waitingPublish = [];
    queueMicrotask(() => {
      for (const cb of cbs) cb();
    });
  };

  private failRequest(p: PendingResponse): void {
    this.pending.remove(p);
    this.stats.unavailable++;
    const s = p.sender as Session;
    this.give(s, Envelope.error({ from: p.recipient, to: s.address, protocol: s.protocol, responseFor: p.originalId, code: ErrorCode.Unavailable }));
  }

  /** An owner says these recipients died with their worker: requests to them fail now, as when a recipient leaves. */
  private recipientsGone(addresses: readonly string[], bares: readonly string[]): void {
    failGone(this.sessions.values(), addresses, bares, (p) => this.failRequest(p));
  }
}

/** Who is on a ring (hosts and their workers), as a string: two equal keys own every user alike. */
function membersKey(m: Membership): string {
  return Object.keys(m.hosts)
    .sort()
    .map((h) => `${h}=${[...m.hosts[h]].sort().join(",")}`)
    .join(";");
}
