import { bareOf } from "../address/address.js";
import { monotonicMs } from "../timer/clock.js";
import type { BusMessage } from "../cluster/bus.js";
import type { ClaimAnswer, Handover, Handovers, Resumer } from "../session/core.js";
import type { Session } from "../session/session.js";
import { RecentMessages } from "../session/recent-messages.js";

/** How long a claim waits for the host's other workers; a worker that does not answer by then counts as a miss. */
const CLAIM_TIMEOUT_MS = 2000;
/** How long a worker keeps sending on what still reaches a session that moved, if the owner never says it rebound. */
const FORWARD_GRACE_MS = 30_000;

/** What the desk needs of the worker it serves. */
export interface DeskHost {
  readonly workerId: string;
  /** The other live workers of this host. */
  hostPeers(): string[];
  send(workerId: string, msg: BusMessage): void;
  readonly sessions: Map<string, Session>;
  attach(s: Session): void;
}

/** Counters, read as metrics. */
export class HandoverStats {
  claims = 0;
  /** Claims nobody on the host could answer with the session. */
  claimMisses = 0;
  /** Sessions that left this worker (claimed or parked). */
  movedOut = 0;
  /** Sessions that arrived here (a claim answered, or parked). */
  movedIn = 0;
}

/**
 * Sessions that move between the workers of one host: a client resuming
 * (XEP-0198) on a connection that another worker accepted, or a draining
 * worker handing its detached sessions to one that stays. The claimant asks
 * every other worker of the host at once (resumptions are rare; hosts have a
 * few workers); the holder lets go and sends the session. The old worker keeps
 * the moved session as a forwarder: answers to requests it sent, their
 * timeouts, and anything routed to it before the owner learns the new place
 * are sent on, so nothing the session was due is lost on the way.
 */
export class HandoverDesk implements Handovers {
  readonly stats = new HandoverStats();
  private readonly resumers = new Map<string, Resumer>();
  /** Claims in flight, with the workers that have not answered yet. */
  private readonly claims = new Map<number, { done: (a: ClaimAnswer) => void; waiting: Set<string>; timer: NodeJS.Timeout }>();
  private nextToken = 1;
  /** This worker drains: what arrives is passed on, or ends here. */
  private leaving = false;
  /** Workers of the host that said they drain: nothing is parked on them. */
  private readonly drainingPeers = new Set<string>();
  /** Sessions that moved away and are still in this worker's table, forwarding. */
  private readonly forwarding = new Set<Session>();
  private onSettled: (() => void) | null = null;

  constructor(private readonly host: DeskHost) {}

  resumer(protocol: string, r: Resumer): void {
    this.resumers.set(protocol, r);
  }

  claim(protocol: string, key: string, ask: unknown, done: (a: ClaimAnswer) => void, only?: string[]): void {
    this.stats.claims++;
    const peers = only ?? this.host.hostPeers();
    if (peers.length === 0) {
      this.stats.claimMisses++;
      return done({ kind: "miss" });
    }
    const token = this.nextToken++;
    const timer = setTimeout(() => this.settle(token, { kind: "miss" }), CLAIM_TIMEOUT_MS);
    timer.unref();
    this.claims.set(token, { done, waiting: new Set(peers), timer });
    for (const w of peers) this.host.send(w, { op: "claim", protocol, key, ask, from: this.host.workerId, token });
  }

  continueAs(claimant: Session, h: Handover): void {
    this.stats.movedIn++;
    claimant.serial = h.serial;
    claimant.address = h.address;
    claimant.bare = bareOf(h.address);
    claimant.resource = h.resource;
    claimant.available = h.available;
    claimant.priority = h.priority;
    claimant.presence = h.presence;
    claimant.wantsCopies = h.wantsCopies;
    claimant.peersWantCopies = h.peersWantCopies;
    const now = monotonicMs();
    // Deadlines travel as time left: each process has its own monotonic clock.
    for (const [key, ref, left, pool] of h.inbound) claimant.inbound.set(key, { ref, deadline: now + left, pool });
    // What it was given lately: a message its sender's client sends again after resuming is still told apart here.
    if (h.recent !== undefined && h.recent.length > 0) claimant.recent = RecentMessages.of(h.recent);
    this.host.attach(claimant);
  }

  /** A moved session left this worker's table: its owner routes to its new place now. */
  forgotten(s: Session): void {
    if (!this.forwarding.delete(s) || this.forwarding.size > 0) return;
    this.onSettled?.();
    this.onSettled = null;
  }

  /**
   * Resolves when every session that moved away is known at its new place by
   * its owner, or after `ms`. A draining worker waits for it before it leaves
   * the bus: until the owner's "replaced" comes, what the owner routes to the
   * session comes here, and only this worker can send it on.
   */
  settled(ms: number): Promise<void> {
    if (this.forwarding.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.onSettled = done;
    });
  }

  /** This worker starts draining: its peers stop parking sessions on it. */
  draining(): void {
    this.leaving = true;
    for (const w of this.host.hostPeers()) this.host.send(w, { op: "draining", worker: this.host.workerId });
  }

  onDraining(worker: string): void {
    this.drainingPeers.add(worker);
  }

  /** A worker that left, or came back as a new incarnation, drains no more. */
  membershipChanged(live: ReadonlySet<string>, fresh: ReadonlySet<string>): void {
    for (const w of this.drainingPeers) if (!live.has(w) || fresh.has(w)) this.drainingPeers.delete(w);
    // A worker that left or restarted will not answer (a session it held died with it): no need to wait for the timeout.
    for (const [token, c] of this.claims) {
      for (const w of c.waiting) if (!live.has(w) || fresh.has(w)) c.waiting.delete(w);
      if (c.waiting.size === 0) this.settle(token, { kind: "miss" });
    }
  }

  park(s: Session, key: string, state: unknown): boolean {
    // When the whole host stops, every worker drains: then no session moves, each ends where it is.
    const peers = this.host.hostPeers().filter((w) => !this.drainingPeers.has(w));
    if (peers.length === 0) return false;
    // Spread a draining worker's sessions over the others, the same session always to the same one.
    let h = 0;
    for (let i = 0; i < s.address.length; i++) h = (h * 31 + s.address.charCodeAt(i)) | 0;
    const to = peers[(h >>> 0) % peers.length];
    this.host.send(to, { op: "park", handover: this.handOver(s, key, state, to) });
    return true;
  }

  // ---- from the bus ----------------------------------------------------------

  onClaim(msg: Extract<BusMessage, { op: "claim" }>): void {
    const r = this.resumers.get(msg.protocol);
    let answer: ClaimAnswer = { kind: "miss" };
    if (r !== undefined) {
      const rel = r.release(msg.key, msg.ask);
      if (rel.kind === "ok") answer = { kind: "ok", handover: this.handOver(rel.session, msg.key, rel.state, msg.from) };
      else answer = rel;
    }
    // Sent before anything this worker forwards to the session there: the bus keeps a pair of workers in order.
    this.host.send(msg.from, { op: "claimed", token: msg.token, answer, from: this.host.workerId });
  }

  onClaimed(msg: Extract<BusMessage, { op: "claimed" }>): void {
    if (!this.claims.has(msg.token)) {
      // The claim timed out before the session came: it must not be lost, so it waits here for its client.
      if (msg.answer.kind === "ok") this.adopt(msg.answer.handover);
      return;
    }
    const waiting = this.claims.get(msg.token)!.waiting;
    waiting.delete(msg.from);
    if (msg.answer.kind === "miss" && waiting.size > 0) return;
    this.settle(msg.token, msg.answer);
  }

  onPark(msg: Extract<BusMessage, { op: "park" }>): void {
    this.adopt(msg.handover);
  }

  private adopt(h: Handover): void {
    const r = this.resumers.get(h.protocol);
    if (r === undefined) return;
    this.stats.movedIn++;
    const s = r.adopt(h);
    // Parked on a worker that drains too (they started together): on again, or it ends here, its messages stored.
    if (this.leaving) s.endIfSuspended();
  }

  private settle(token: number, a: ClaimAnswer): void {
    const c = this.claims.get(token);
    if (c === undefined) return;
    this.claims.delete(token);
    clearTimeout(c.timer);
    if (a.kind === "miss") this.stats.claimMisses++;
    c.done(a);
  }

  /** What the core keeps of a session that leaves for `to`; from now on the session here only forwards. */
  private handOver(s: Session, key: string, state: unknown, to: string): Handover {
    this.stats.movedOut++;
    const now = monotonicMs();
    const inbound: [string, string, number, boolean][] = [];
    s.inbound.forEach((r, k) => {
      if (r.deadline > now) inbound.push([k, r.ref, r.deadline - now, r.pool]);
    });
    s.inbound.clear();
    s.movedTo = to;
    this.forwarding.add(s);
    // Normally the owner's "replaced" ends the forwarding at once (ProxyDaemon.receive); this is for when it never comes.
    setTimeout(() => {
      if (this.host.sessions.get(s.address) === s) this.host.sessions.delete(s.address);
      this.forgotten(s);
    }, FORWARD_GRACE_MS).unref();
    const recent = s.recent?.list();
    return { protocol: s.protocol, key, address: s.address, resource: s.resource, serial: s.serial, available: s.available, priority: s.priority, presence: s.presence, wantsCopies: s.wantsCopies, peersWantCopies: s.peersWantCopies, inbound, state, ...(recent !== undefined && recent.length > 0 ? { recent } : {}) };
  }
}
