import { Envelope, ErrorCode, Flag, Kind } from "../envelope/envelope.js";
import { bareOf, resourceOf } from "../address/address.js";
import { PendingList, type PendingResponse } from "../pending/pending-list.js";
import { TimerDaemon } from "../timer/timer-daemon.js";
import { monotonicMs } from "../timer/clock.js";
import { Router, type Membership } from "../router/router.js";
import { UserChannel, type SessionRef } from "../channel/user-channel.js";
import type { BusMessage, ClusterBus } from "../cluster/bus.js";
import type { Session } from "../session/session.js";

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
}

/**
 * What the core does with a message nobody online can take. Returns null when
 * stored, or an error code for the sender (e.g. the queue is full).
 */
export type OfflineSink = (env: Envelope) => string | null;

export class ProxyStats {
  requests = 0;
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
  undeliverable = 0;
}

/**
 * Seed 004's ProxyDaemon: takes envelopes from sessions, records each request
 * as a PendingResponse, sends answers back by proxy id, and hands everything
 * else to the owner that the Router names. It never waits for an answer.
 */
export class ProxyDaemon {
  readonly pending = new PendingList();
  readonly timer: TimerDaemon;
  readonly stats = new ProxyStats();
  /** Sessions connected to this worker, by full address. */
  readonly sessions = new Map<string, Session>();
  /** UserChannels of the bare addresses this worker owns. */
  readonly channels = new Map<string, UserChannel>();
  offline: OfflineSink | null = null;

  private router: Router;
  private readonly self: string;
  private readonly idPrefix: string;

  constructor(
    private readonly bus: ClusterBus,
    private readonly opts: ProxyOptions,
  ) {
    this.self = bus.workerId;
    this.idPrefix = `${bus.workerId}.`;
    this.router = new Router(bus.membership());
    bus.onMembership((m, joined) => this.membershipChanged(m, joined));
    bus.attach(this);
    this.timer = new TimerDaemon(this.pending, opts.sweepIntervalMs, (p) => this.timedOut(p));
  }

  get workerId(): string {
    return this.self;
  }

  start(): void {
    this.timer.start();
  }

  stop(): void {
    this.timer.stop();
  }

  /** Clamps a requested timeout into the protocol's bounds; 0 asks for the default. */
  timeoutFor(protocol: string, asked: number): number {
    const t = this.opts.timeouts[protocol];
    if (t === undefined) throw new Error(`no timeouts configured for protocol ${protocol}`);
    if (!(asked > 0)) return t.defaultMs;
    return asked < t.minMs ? t.minMs : asked > t.maxMs ? t.maxMs : Math.floor(asked);
  }

  // ---- from sessions ---------------------------------------------------

  /** A session authenticated: it becomes reachable at its full address. */
  attach(s: Session): void {
    s.bound = true;
    const prev = this.sessions.get(s.address);
    this.sessions.set(s.address, s);
    // Replaced on this very worker: told here, since the map no longer leads the owner's "replaced" to it.
    if (prev !== undefined && prev !== s) prev.replaced();
    this.toOwnerOf(s.bare, { op: "bind", ref: this.refOf(s) });
  }

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
      session: null,
      seq: 0,
    };
  }

  /**
   * Workers came or went, so some bare addresses changed owner. Owners keep
   * only the channels they still own, without sessions on workers that left
   * or restarted; each session binds again (with its presence) wherever its
   * owner is new or has restarted with empty state.
   */
  private membershipChanged(m: Membership, joined: readonly string[]): void {
    const before = this.router;
    this.router = new Router(m);
    const live = new Set<string>();
    for (const ids of Object.values(m.hosts)) for (const id of ids) live.add(id);
    const fresh = new Set(joined);
    for (const [bare, ch] of this.channels) {
      if (this.router.ownerOf(bare) !== this.self) {
        this.channels.delete(bare);
        continue;
      }
      for (const ref of ch.resources.values()) {
        if (ref.workerId !== this.self && (!live.has(ref.workerId) || fresh.has(ref.workerId))) ch.unbind(ref.resource, ref.serial);
      }
      if (ch.empty) this.channels.delete(bare);
    }
    for (const s of this.sessions.values()) {
      const owner = this.router.ownerOf(s.bare);
      if (owner !== undefined && (owner !== before.ownerOf(s.bare) || fresh.has(owner))) this.toOwnerOf(s.bare, { op: "bind", ref: this.refOf(s) });
    }
  }

  /** Availability, priority or presence changed (XMPP presence; relay sessions are always available). */
  updatePresence(s: Session): void {
    if (!s.bound) return;
    this.toOwnerOf(s.bare, {
      op: "presence",
      address: s.address,
      serial: s.serial,
      available: s.available,
      priority: s.priority,
      protocol: s.protocol,
      presence: s.presence,
    });
  }

  /** The session's connection is gone. Fails what was asked of it; forgets what it asked. */
  detach(s: Session): void {
    if (s.closed) return;
    s.closed = true;
    this.pending.removeAllOf(s);
    const now = monotonicMs();
    for (const [proxyId, deadline] of s.inbound) {
      if (deadline > now) this.answer(new Envelope(Kind.Error, "", proxyId, s.address, "", s.protocol, null, 0, 0, ErrorCode.Unavailable));
    }
    s.inbound.clear();
    if (!s.bound) return;
    s.bound = false;
    if (this.sessions.get(s.address) === s) this.sessions.delete(s.address);
    this.toOwnerOf(s.bare, { op: "unbind", address: s.address, serial: s.serial });
  }

  /** Everything a session sends enters here. `env.from` is already the session's address. */
  submit(s: Session, env: Envelope): void {
    switch (env.kind) {
      case Kind.Request:
        return this.request(s, env);
      case Kind.Response:
      case Kind.Error:
        s.inbound.delete(env.responseFor);
        this.stats.responses++;
        return this.answer(env);
      default:
        this.stats.messages++;
        return this.route(env);
    }
  }

  private request(s: Session, env: Envelope): void {
    this.stats.requests++;
    if (s.outstanding >= this.opts.maxPendingPerSession) {
      this.stats.rateLimited++;
      s.deliver(new Envelope(Kind.Error, "", env.id, env.to, s.address, s.protocol, null, 0, 0, ErrorCode.RateLimited));
      return;
    }
    const ttl = this.timeoutFor(s.protocol, env.ttl);
    const p = this.pending.add(s, env.id, env.to, ttl, monotonicMs());
    env.id = this.idPrefix + p.key;
    env.ttl = ttl;
    this.route(env);
  }

  // ---- routing ---------------------------------------------------------

  /** Message, presence or request to env.to: straight to a session connected here, else to the owner. */
  route(env: Envelope): void {
    const to = env.to;
    // Sessions are keyed by full address: a bare one cannot match, and a lookup of a fresh string is not free.
    if (to.indexOf("/") > 0) {
      const local = this.sessions.get(to);
      if (local !== undefined) return this.deliverLocal(local, env);
    }
    // The owner is usually this worker: then no bus message is made for it.
    const owner = this.router.ownerOf(bareOf(to));
    if (owner === this.self || owner === undefined) this.atOwner(env);
    else this.bus.send(owner, { op: "owner", env });
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
        return this.atOwner(msg.env);
      case "session": {
        const s = this.sessions.get(msg.address);
        if (s !== undefined && s.serial === msg.serial) this.deliverLocal(s, msg.env);
        else this.undeliverable(msg.env);
        return;
      }
      case "answer":
        return this.complete(msg.env);
      case "bind":
        return this.ownerBind(msg.ref);
      case "unbind": {
        const bare = bareOf(msg.address);
        const ch = this.channels.get(bare);
        if (ch !== undefined && ch.unbind(resourceOf(msg.address), msg.serial) && ch.empty) this.channels.delete(bare);
        return;
      }
      case "presence":
        this.channels.get(bareOf(msg.address))?.update(resourceOf(msg.address), msg.serial, msg.available, msg.priority, msg.presence);
        return;
      case "replaced": {
        const s = this.sessions.get(msg.address);
        if (s !== undefined && s.serial === msg.serial) s.replaced();
        return;
      }
    }
  }

  private ownerBind(ref: SessionRef): void {
    const bare = bareOf(ref.address);
    let ch = this.channels.get(bare);
    if (ch === undefined) {
      ch = new UserChannel(bare);
      this.channels.set(bare, ch);
    }
    if (ref.workerId === this.self) ref.session = this.sessions.get(ref.address) ?? null;
    const old = ch.bind(ref);
    // Same worker: attach() told the old session already, or this is a session binding again after a membership change.
    if (old !== undefined && old.workerId !== ref.workerId) {
      if (old.workerId === this.self) old.session?.replaced();
      else this.bus.send(old.workerId, { op: "replaced", address: old.address, serial: old.serial });
    }
  }

  /** The delivery rules, applied by the owner of the bare address. */
  private atOwner(env: Envelope): void {
    const ch = this.channels.get(bareOf(env.to));
    const resource = resourceOf(env.to);
    if (env.kind === Kind.Request) {
      const ref = ch === undefined ? undefined : resource ? ch.resources.get(resource) : ch.pickOne();
      if (ref === undefined) return this.undeliverable(env);
      return this.toSession(ref, env);
    }
    if (resource) {
      const ref = ch?.resources.get(resource);
      if (ref !== undefined) return this.toSession(ref, env);
      if ((env.flags & Flag.BareFallback) === 0 || ch === undefined) return this.undeliverable(env);
    }
    if (env.flags & Flag.Probe) return this.answerProbe(ch, env);
    const targets = ch === undefined ? [] : ch.targets(env.kind, env.flags);
    if (targets.length === 0) return this.undeliverable(env);
    for (let i = 0; i < targets.length; i++) this.toSession(targets[i], env);
  }

  /** Each available resource's last presence goes to the prober, as if that resource had sent it. */
  private answerProbe(ch: UserChannel | undefined, probe: Envelope): void {
    if (ch === undefined) return;
    for (const ref of ch.resources.values()) {
      if (!ref.available || ref.presence === null) continue;
      this.route(new Envelope(Kind.Presence, "", "", ref.address, probe.from, ref.protocol, ref.presence));
    }
  }

  private toSession(ref: SessionRef, env: Envelope): void {
    if (ref.workerId !== this.self) {
      this.bus.send(ref.workerId, { op: "session", address: ref.address, serial: ref.serial, env });
      return;
    }
    const s = ref.session ?? this.sessions.get(ref.address);
    if (s === undefined || s.closed) return this.undeliverable(env);
    this.deliverLocal(s, env);
  }

  private deliverLocal(s: Session, env: Envelope): void {
    if (env.kind === Kind.Request) {
      const now = monotonicMs();
      s.trackInbound(env.id, now + env.ttl, now, this.opts.maxInboundPerSession);
    }
    s.deliver(env);
  }

  /** Nobody online can take it: fail a request at once, store or drop the rest. */
  private undeliverable(env: Envelope): void {
    if (env.kind === Kind.Request) {
      this.stats.unavailable++;
      this.answer(new Envelope(Kind.Error, "", env.id, env.to, env.from, env.protocol, null, 0, 0, ErrorCode.Unavailable));
      return;
    }
    if (env.kind === Kind.Message && env.flags & Flag.Offline && this.offline !== null) {
      const refused = this.offline(env);
      if (refused === null) return;
      // The error goes to the sender in its own protocol; it carries the message id, not a proxy id.
      this.route(new Envelope(Kind.Error, "", env.id, env.to, env.from, env.protocol, env.payload, 0, 0, refused));
      return;
    }
    this.stats.undeliverable++;
  }

  // ---- answers ---------------------------------------------------------

  /** An answer travels to the worker named in its proxy id, in one hop. */
  answer(env: Envelope): void {
    const id = env.responseFor;
    const dot = id.lastIndexOf(".");
    const worker = dot > 0 ? id.slice(0, dot) : "";
    if (worker === this.self) this.complete(env);
    else if (worker !== "") this.bus.send(worker, { op: "answer", env });
    else this.stats.late++;
  }

  /** Reverse routing (seed 004 §4): the pending request gives the asker and its own id back. */
  private complete(env: Envelope): void {
    const key = Number(env.responseFor.slice(this.idPrefix.length));
    const p = Number.isInteger(key) ? this.pending.get(key) : undefined;
    if (p === undefined) {
      this.stats.late++;
      return;
    }
    // Only the recipient may answer; a full address must match, a bare one by its bare part.
    if (env.from !== p.recipient && (p.recipient.indexOf("/") >= 0 || bareOf(env.from) !== p.recipient)) {
      this.stats.forged++;
      return;
    }
    this.pending.remove(p);
    this.stats.answered++;
    const s = p.sender as Session;
    env.responseFor = p.originalId;
    env.to = s.address;
    s.deliver(env);
  }

  private timedOut(p: PendingResponse): void {
    this.stats.timeouts++;
    const s = p.sender as Session;
    s.deliver(new Envelope(Kind.Error, "", p.originalId, p.recipient, s.address, s.protocol, null, 0, 0, ErrorCode.Timeout));
  }
}
