import type { Envelope } from "../envelope/envelope.js";
import type { BusMessage } from "../cluster/bus.js";
import type { OwnedService } from "../session/service.js";
import type { Logger } from "../log/logger.js";
import { monotonicMs } from "../timer/clock.js";

/** How long a worker sends on what still reaches it for an address it handed off (senders whose ring is behind). */
const FORWARD_MS = 30_000;
/** The least a worker waits for the states due to it after a ring change (a bus without a heal window: one turn does). */
const MIN_WAIT_MS = 1000;
/** Stanzas held at once here, over every address; past it, they go on as if nothing moved. */
const MAX_HELD = 10_000;
/** State text per `moved` message; one larger state goes alone. */
const CHUNK_CHARS = 256 * 1024;

/** What the moves need of the desk and its worker. */
export interface MovesHost {
  readonly self: string;
  ownerOf(bare: string): string | undefined;
  send(worker: string, msg: BusMessage): void;
  /** The live workers, this one included. */
  members(): Iterable<string>;
  /** The heal window of the bus (0: every worker sees a change at once). */
  healMs(): number;
  services(): Iterable<OwnedService>;
  serviceOf(bare: string): OwnedService | undefined;
  /** Into the desk again: a stanza held here meets the room it waited for, or goes on as if nothing moved. */
  receive(env: Envelope, via: string): void;
  /** Straight to the address's service, holds not looked at. */
  serve(env: Envelope, via: string): void;
}

/**
 * Served addresses (XEP-0045 rooms) moving to their new owner when the ring changes
 * (docs/architecture.md, "Rooms on the ring"), as a user's bindings do, with no loss:
 *
 * - The old owner, on each ring change (one turn later, so that a new worker's bus is attached), takes
 *   every address it holds and no longer owns from its service with its whole state (OwnedService.handOff)
 *   and sends it to the new owner (bus op `moved`); then each live worker gets its last `moved` with
 *   `done`, naming the ring it was judged by. What still reaches the old owner for a moved address (from
 *   workers whose ring is behind) is sent on to the new owner as it came (`service`, same sender's place),
 *   behind the state on the same ordered pair of workers, for FORWARD_MS.
 * - The new owner holds what comes for an address it does not hold while some live worker has not said
 *   `done` for its ring (at most the heal window): the state it waits for may be on its way. A state
 *   arriving sends on what waited for it; the last `done`, or the window's end, sends on the rest, which
 *   then finds no room as before (a persistent room is read from the store; a join makes a room).
 * - What comes here as to the owner while this worker's ring names another (the rings differ for a
 *   moment, as in Misrouted) waits for this worker's next ring change and travels again by it; if none
 *   comes within the heal window, it is served here.
 * - A draining worker hands everything to the owners by the ring without it, tells every live worker where
 *   each address is now (`placed`: they route there while their ring still names the drainer), and sends on
 *   what still comes; it leaves the bus once each has answered a round trip (ProxyDaemon.drainServices).
 *
 * Nothing here awaits: holding is a queue, sending on is a bus message.
 */
export class ServiceMoves {
  /** Addresses handed off by this worker: where to, and until when what reaches here for them is sent on. */
  private readonly movedTo = new Map<string, { to: string; until: number }>();
  /** Per address not held here, what waits for its state, in arrival order. */
  private readonly waiting = new Map<string, [Envelope, string][]>();
  /** Came here while this worker's ring names another owner. */
  private misrouted: { env: Envelope; via: string; at: number }[] = [];
  private held = 0;
  /** Live workers that have not said `done` for this worker's ring. */
  private missing = new Set<string>();
  private waitUntil = 0;
  /** The ring (membersKey) each worker last said `done` for. */
  private readonly done = new Map<string, string>();
  private ring: string;
  private pushing = false;
  /** States that came before the service of their domain was registered: [address, state, when]. */
  private early: [string, string, number][] = [];
  /** Addresses a draining worker handed on: where they are, until it leaves the ring. */
  private readonly placed = new Map<string, { to: string; from: string }>();
  /** Draining: the owner of an address by the ring without this worker. */
  private drainOwner: ((bare: string) => string | undefined) | null = null;
  /** Counters (metrics, tests). */
  readonly stats = { movedOut: 0, movedIn: 0, forwarded: 0, held: 0 };

  constructor(
    private readonly h: MovesHost,
    ring: string,
    private readonly log: Logger | null = null,
  ) {
    this.ring = ring;
    // A worker that starts may be the new owner of addresses that live elsewhere: it waits for every peer's word too.
    this.ringChanged(ring, monotonicMs());
  }

  /** A stanza for an address its service does not hold: true when it was taken here (sent on, or held). */
  unheld(env: Envelope, via: string, bare: string): boolean {
    const m = this.movedTo.get(bare);
    if (m !== undefined) {
      this.stats.forwarded++;
      this.h.send(m.to, { op: "service", via, env });
      return true;
    }
    if (this.drainOwner !== null) {
      const o = this.drainOwner(bare);
      if (o === undefined || o === this.h.self) return false;
      this.stats.forwarded++;
      this.h.send(o, { op: "service", via, env });
      return true;
    }
    if (this.held >= MAX_HELD) return false;
    const now = monotonicMs();
    if (this.missing.size > 0 && now < this.waitUntil) {
      const q = this.waiting.get(bare);
      if (q === undefined) this.waiting.set(bare, [[env, via]]);
      else q.push([env, via]);
      this.held++;
      this.stats.held++;
      return true;
    }
    if (this.h.healMs() <= 0) return false;
    const o = this.h.ownerOf(bare);
    if (o === undefined || o === this.h.self) return false;
    this.misrouted.push({ env, via, at: now });
    this.held++;
    this.stats.held++;
    return true;
  }

  /** Where a draining worker said `bare` is now (undefined: the ring says). */
  placedAt(bare: string): string | undefined {
    return this.placed.size === 0 ? undefined : this.placed.get(bare)?.to;
  }

  /** The ring changed (`ring`: its membersKey), or this worker started: wait for every live peer's `done`, hand off what moved. */
  ringChanged(ring: string, now: number): void {
    this.ring = ring;
    const live = new Set(this.h.members());
    for (const w of this.done.keys()) if (!live.has(w)) this.done.delete(w);
    // The drainer left (or the ring names the same owner): the ring says.
    for (const [bare, p] of this.placed) if (!live.has(p.from) || this.h.ownerOf(bare) === p.to) this.placed.delete(bare);
    this.missing = new Set();
    for (const w of live) if (w !== this.h.self && this.done.get(w) !== ring) this.missing.add(w);
    this.waitUntil = now + Math.max(MIN_WAIT_MS, this.h.healMs());
    // What came by another worker's ring travels again by the new one (held again at the new owner if its state is on its way).
    const mis = this.misrouted;
    this.misrouted = [];
    this.held -= mis.length;
    for (const { env, via } of mis) this.routeVia(env, via);
    if (this.missing.size === 0) this.releaseAll();
    if (!this.pushing) {
      this.pushing = true;
      // One turn later: a worker joining an in-process hub is told before its bus is attached.
      setImmediate(() => {
        this.pushing = false;
        this.push();
      });
    }
  }

  /** This worker drains: everything goes to the owners by the ring without it, now and whatever comes later. Gives the workers told. */
  draining(ownerOf: (bare: string) => string | undefined): string[] {
    this.drainOwner = ownerOf;
    return this.push();
  }

  /** Bus op `moved`. */
  onMoved(msg: Extract<BusMessage, { op: "moved" }>): void {
    for (const [bare, state] of msg.states) {
      // It may have left here before and come back: this worker holds it again, and sends nothing on.
      this.movedTo.delete(bare);
      const svc = this.h.serviceOf(bare);
      // This worker is starting, its service not registered yet: kept for it.
      if (svc === undefined) {
        if (this.early.length < MAX_HELD) this.early.push([bare, state, monotonicMs()]);
        continue;
      }
      this.adopt(svc, bare, state);
    }
    // After the states (this worker's own among them): where a draining worker's addresses are now, this one included.
    if (msg.placed.length > 0) {
      for (const [bare, to] of msg.placed) {
        this.placed.set(bare, { to, from: msg.from });
        // Waiting here for a state that went elsewhere: there.
        const q = to === this.h.self ? undefined : this.waiting.get(bare);
        if (q !== undefined) {
          this.waiting.delete(bare);
          this.held -= q.length;
          for (const [env, via] of q) this.h.send(to, { op: "service", via, env });
        }
      }
    }
    // Given to a worker that drains: on again.
    if (this.drainOwner !== null && msg.states.length > 0) void this.push();
    if (!msg.done) return;
    this.done.set(msg.from, msg.ring);
    if (msg.ring === this.ring && this.missing.delete(msg.from) && this.missing.size === 0) this.releaseAll();
  }

  /** A service registered for `domain` (Core.serve): the states that came for it before are its own now. */
  served(domain: string): void {
    if (this.early.length === 0) return;
    const mine = this.early.filter(([bare]) => bare.slice(bare.indexOf("@") + 1) === domain);
    this.early = this.early.filter(([bare]) => bare.slice(bare.indexOf("@") + 1) !== domain);
    for (const [bare, state] of mine) this.adopt(this.h.serviceOf(bare)!, bare, state);
  }

  private adopt(svc: OwnedService, bare: string, state: string): void {
    if (svc.adopt?.(bare, state) === true) this.stats.movedIn++;
    const q = this.waiting.get(bare);
    if (q === undefined) return;
    this.waiting.delete(bare);
    this.held -= q.length;
    for (const [env, via] of q) this.h.receive(env, via);
  }

  /** The sweep: forwarding ends, waits end. */
  sweep(now: number): void {
    if (this.early.length > 0) this.early = this.early.filter((e) => e[2] > now - FORWARD_MS);
    if (this.movedTo.size > 0) for (const [bare, m] of this.movedTo) if (m.until <= now) this.movedTo.delete(bare);
    if (this.missing.size > 0 && now >= this.waitUntil) {
      this.log?.debug("services: the states due after a ring change did not all come", { missing: [...this.missing] });
      this.missing.clear();
      this.releaseAll();
    }
    const heal = this.h.healMs();
    let i = 0;
    while (i < this.misrouted.length && this.misrouted[i].at <= now - heal) i++;
    if (i === 0) return;
    const due = this.misrouted.slice(0, i);
    this.misrouted = this.misrouted.slice(i);
    this.held -= due.length;
    for (const { env, via } of due) this.h.serve(env, via);
  }

  /** Held for their state, now let go. */
  get waitingCount(): number {
    return this.held;
  }

  private releaseAll(): void {
    if (this.waiting.size === 0) return;
    const all = [...this.waiting.values()];
    this.waiting.clear();
    for (const q of all) {
      this.held -= q.length;
      for (const [env, via] of q) this.h.receive(env, via);
    }
  }

  private routeVia(env: Envelope, via: string): void {
    const to = env.to;
    const bare = to.indexOf("/") < 0 ? to : to.slice(0, to.indexOf("/"));
    const o = this.placedAt(bare) ?? this.h.ownerOf(bare);
    if (o === undefined || o === this.h.self) this.h.receive(env, via);
    else this.h.send(o, { op: "service", via, env });
  }

  /**
   * Every address held here and owned elsewhere now goes with its state; then each live worker hears `done`
   * (draining: where each address went, and no `done`). Gives the workers sent to.
   */
  private push(): string[] {
    const self = this.h.self;
    const ownerOf = this.drainOwner ?? ((b: string) => this.h.ownerOf(b));
    const out = new Map<string, [string, string][]>();
    const until = monotonicMs() + FORWARD_MS;
    for (const svc of this.h.services()) {
      if (svc.handOff === undefined) continue;
      // Nobody else to own it (the last worker drains): it stays.
      const moving = svc.handOff((b) => {
        const o = ownerOf(b);
        return o === undefined || o === self;
      });
      for (const [bare, state] of moving) {
        const to = ownerOf(bare)!;
        let list = out.get(to);
        if (list === undefined) out.set(to, (list = []));
        list.push([bare, state]);
        this.movedTo.set(bare, { to, until });
        this.stats.movedOut++;
      }
    }
    if (out.size > 0) this.log?.debug("services: addresses handed to their new owners", { moved: [...out].map(([w, l]) => [w, l.length]) });
    const to = [...this.h.members()].filter((w) => w !== self);
    if (this.drainOwner === null) {
      for (const w of to) this.sendStates(w, out.get(w) ?? [], true, []);
      return to;
    }
    // A draining worker says no `done` (its peers wait for nothing from it when it is gone), and where each went.
    if (out.size === 0) return [];
    const placed: [string, string][] = [];
    for (const [w, list] of out) for (const [bare] of list) placed.push([bare, w]);
    for (const w of to) this.sendStates(w, out.get(w) ?? [], false, placed);
    return to;
  }

  private sendStates(to: string, states: [string, string][], done: boolean, placed: [string, string][]): void {
    let chunk: [string, string][] = [];
    let chars = 0;
    for (const s of states) {
      if (chunk.length > 0 && chars + s[1].length > CHUNK_CHARS) {
        this.h.send(to, { op: "moved", from: this.h.self, ring: this.ring, states: chunk, done: false, placed: [] });
        chunk = [];
        chars = 0;
      }
      chunk.push(s);
      chars += s[1].length;
    }
    // The places last: a worker that holds one of these addresses by now has its state.
    if (chunk.length > 0 || done || placed.length > 0) this.h.send(to, { op: "moved", from: this.h.self, ring: this.ring, states: chunk, done, placed });
  }
}
