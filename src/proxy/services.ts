import { bareOf } from "../address/address.js";
import type { Envelope } from "../envelope/envelope.js";
import type { BusMessage } from "../cluster/bus.js";
import type { Session } from "../session/session.js";
import type { FanoutTarget, OwnedService, ServiceLink } from "../session/service.js";
import type { PendingResponse, Requester } from "../pending/pending-list.js";
import type { Logger } from "../log/logger.js";
import { ServiceMoves } from "./service-moves.js";

/** What the desk needs of its worker (the ProxyDaemon). */
export interface ServiceWorker {
  readonly self: string;
  ownerOf(bare: string): string | undefined;
  send(worker: string, msg: BusMessage): void;
  local(address: string): Session | undefined;
  deliverLocal(s: Session, env: Envelope): void;
  route(env: Envelope): string;
  toRequester(env: Envelope): void;
  undeliverable(env: Envelope): void;
  /** The live workers, this one included. */
  members(): Iterable<string>;
  /** The bus's heal window (0: every worker sees a ring change at once). */
  healMs(): number;
  /** The ring's membersKey now. */
  ring(): string;
  readonly log?: Logger | null;
  /** A service's request, pending like a session's (ProxyDaemon.serviceRequest). */
  request(env: Envelope, to: FanoutTarget, done: (answer: Envelope) => void): () => void;
}

/** Who asked, for a request a service made (ServiceLink.request): the pending list's requester, answered by a call. */
export class ServiceAsker implements Requester {
  outstanding = 0;
  firstPending: PendingResponse | null = null;
  constructor(
    readonly protocol: string,
    readonly done: (answer: Envelope) => void,
  ) {}
}

/**
 * What a service sent in this turn, kept in order until its end (flushQueue): an answer, a fan-out made
 * here (to sessions here and on other workers), or one that came over the bus for sessions here.
 */
type Pending = { k: 0; env: Envelope } | { k: 1; env: Envelope; to: readonly FanoutTarget[] } | { k: 2; env: Envelope; to: readonly string[] };

/**
 * The owner side of addresses served by a protocol's service (src/session/service.ts): XEP-0045 rooms.
 * An envelope marked Flag.Service goes to the owner of its bare address by the ring, as a user's would,
 * with the worker of its sender's session (bus op `service`); there the service of its domain takes it.
 * What a service sends to many sessions leaves as one bus message per worker (bus op `fanout`).
 * When the ring changes, what a service holds moves to its new owner with its state (service-moves.ts).
 */
export class ServiceDesk {
  private readonly byDomain = new Map<string, OwnedService>();
  /** Envelopes fanned out, and bus messages that took them (metrics, tests). */
  fannedOut = 0;
  fanoutMessages = 0;
  /** Runs of fan-outs to the same sessions that were interleaved (metrics, tests): each a room's messages of one turn. */
  interleaved = 0;
  private queue: Pending[] = [];
  private scheduled = false;

  /** Addresses moving to their new owners when the ring changes. */
  readonly moves: ServiceMoves;

  constructor(private readonly w: ServiceWorker) {
    this.moves = new ServiceMoves(
      {
        self: w.self,
        ownerOf: (bare) => w.ownerOf(bare),
        send: (to, msg) => w.send(to, msg),
        members: () => w.members(),
        healMs: () => w.healMs(),
        services: () => new Set(this.byDomain.values()),
        serviceOf: (bare) => this.byDomain.get(bare.slice(bare.indexOf("@") + 1)),
        receive: (env, via) => this.receive(env, via),
        serve: (env, via) => this.serveHere(env, via),
      },
      w.ring(),
      w.log ?? null,
    );
  }

  serve(domain: string, svc: OwnedService): ServiceLink {
    this.byDomain.set(domain, svc);
    this.moves.served(domain);
    return {
      fanout: (env, to) => this.enqueue({ k: 1, env, to }),
      answer: (env) => this.enqueue({ k: 0, env }),
      request: (env, to, done) => this.w.request(env, to, done),
      owns: (bare) => {
        const o = this.w.ownerOf(bare);
        return o === undefined || o === this.w.self;
      },
    };
  }

  /** The service of a domain here (tests, metrics). */
  serviceOf(domain: string): OwnedService | undefined {
    return this.byDomain.get(domain);
  }

  /** Routes an envelope marked Flag.Service from this worker to its owner; gives the worker it went to ("" here). */
  route(env: Envelope): string {
    const bare = bareOf(env.to);
    // A worker that drains said where its rooms went: there, while the ring still names it.
    const owner = this.moves.placedAt(bare) ?? this.w.ownerOf(bare);
    if (owner === undefined || owner === this.w.self) {
      this.receive(env, this.w.self);
      return "";
    }
    this.w.send(owner, { op: "service", via: this.w.self, env });
    return owner;
  }

  /**
   * On the owner: the service of the address's domain takes it; an unknown domain is nobody's. An address
   * the service does not hold may have moved, or be on its way here (ServiceMoves).
   */
  receive(env: Envelope, via: string): void {
    const bare = bareOf(env.to);
    const svc = this.byDomain.get(bare.slice(bare.indexOf("@") + 1));
    if (svc === undefined) return this.w.undeliverable(env);
    if (svc.holds !== undefined && !svc.holds(bare) && this.moves.unheld(env, via, bare)) return;
    svc.receive(env, via);
  }

  private serveHere(env: Envelope, via: string): void {
    const bare = bareOf(env.to);
    const svc = this.byDomain.get(bare.slice(bare.indexOf("@") + 1));
    if (svc === undefined) return this.w.undeliverable(env);
    svc.receive(env, via);
  }

  /**
   * Everything a service sends waits for the end of the turn, in order, so that a room's messages of one
   * turn reach each session one after the other: its connection then writes them in one system call
   * instead of one each (src/transport/stream-conn.ts writes what a turn gave a connection at once). A
   * room falling behind gets several messages a turn, and so pays fewer writes per delivery the further
   * behind it is. Answers wait too, so that nothing overtakes what the service sent before it.
   */
  private enqueue(p: Pending): void {
    this.queue.push(p);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flushQueue);
  }

  private readonly flushQueue = (): void => {
    this.scheduled = false;
    const q = this.queue;
    this.queue = [];
    for (let i = 0; i < q.length; ) {
      const p = q[i];
      if (p.k === 0) {
        this.w.toRequester(p.env);
        i++;
        continue;
      }
      // A run of fan-outs to the same sessions, in a row: a room's messages.
      let j = i + 1;
      while (j < q.length && q[j].k === p.k && sameTargets((q[j] as typeof p).to, p.to)) j++;
      if (j - i > 1) this.interleaved++;
      if (p.k === 1) this.fanout(q, i, j, p.to);
      else for (let t = 0; t < p.to.length; t++) for (let k = i; k < j; k++) this.deliverHere(q[k].env, p.to[t]);
      i = j;
    }
  };

  /**
   * q[i..j): envelopes to the same targets; each session here takes them in a row, each other worker them
   * all in as few bus messages as MAX_FANOUT_CHARS allows (one, for a room's message or a newcomer's
   * occupant list of up to a few thousand presences).
   */
  private fanout(q: Pending[], i: number, j: number, to: readonly FanoutTarget[]): void {
    const self = this.w.self;
    let groups: Map<string, string[]> | null = null;
    for (let n = 0; n < to.length; n++) {
      const t = to[n];
      this.fannedOut += j - i;
      if (t.at === self || t.at === "") {
        for (let k = i; k < j; k++) this.deliverHere(q[k].env, t.address);
        continue;
      }
      groups ??= new Map();
      const list = groups.get(t.at);
      if (list === undefined) groups.set(t.at, [t.address]);
      else list.push(t.address);
    }
    if (groups === null) return;
    const envs: Envelope[] = new Array(j - i);
    for (let k = i; k < j; k++) envs[k - i] = q[k].env;
    for (const [worker, addresses] of groups) {
      for (const msg of fanoutMessages(envs, addresses)) {
        this.fanoutMessages++;
        this.w.send(worker, msg);
      }
    }
  }

  /** One envelope (a service's request) to one target: delivered here, or one bus op fanout to its worker; gives that worker ("" here). */
  toTarget(env: Envelope, t: FanoutTarget): string {
    if (t.at === this.w.self || t.at === "") {
      this.deliverHere(env, t.address);
      return "";
    }
    this.fanoutMessages++;
    this.w.send(t.at, { op: "fanout", envs: [env], to: [t.address] });
    return t.at;
  }

  /**
   * A membership change: sessions of workers that left or restarted are gone, each service forgets them;
   * what a service holds and no longer owns moves (`ring`: the new ring's membersKey).
   */
  membershipChanged(lost: (worker: string) => boolean, ring: string, now: number, ownerBefore: (bare: string) => string | undefined): void {
    const self = this.w.self;
    // Owned by a worker that died: gone with it, unless it drained and said where the address went.
    const died = (bare: string): boolean => {
      const o = ownerBefore(bare);
      return o !== undefined && o !== self && lost(o) && this.moves.placedAt(bare) === undefined;
    };
    for (const svc of new Set(this.byDomain.values())) {
      svc.lost?.((at) => at !== "" && at !== self && lost(at));
      svc.ownerLost?.(died);
    }
    this.moves.ringChanged(ring, now);
  }

  /** Bus op `fanout`: each envelope, in order, to each session here; one that is not here (moved, ended) is routed to its address. */
  delivered(envs: readonly Envelope[], to: readonly string[]): void {
    for (let i = 0; i < envs.length; i++) this.enqueue({ k: 2, env: envs[i], to });
  }

  private deliverHere(env: Envelope, address: string): void {
    // A session that went meanwhile (this turn) is looked up now, and routed to its address like any envelope.
    const e = env.readdressed(address);
    const s = this.w.local(address);
    if (s !== undefined && !s.closed) this.w.deliverLocal(s, e);
    else this.w.route(e);
  }
}

/**
 * A bus message of op `fanout` carries at most about this many characters of payloads and addresses (one
 * envelope or one address more, if that alone is larger): ≤ 768 KiB of UTF-8, below NATS's default
 * max_payload (1 MiB) and far below a host link's largest message (host-links.ts). A payload of unknown
 * size (not text yet) counts as UNKNOWN_CHARS.
 */
export const MAX_FANOUT_CHARS = 256 * 1024;
const UNKNOWN_CHARS = 4096;

/** The bus messages that take `envs` to `to` (the sessions of one worker): split so that none is past MAX_FANOUT_CHARS. */
export function fanoutMessages(envs: readonly Envelope[], to: readonly string[]): BusMessage[] {
  const half = MAX_FANOUT_CHARS / 2;
  // The addresses in slices of at most half the budget; the envelopes fill the rest.
  const slices: string[][] = [];
  let addrChars = 0;
  let slice: string[] = [];
  let sliceChars = 0;
  for (const a of to) {
    if (slice.length > 0 && sliceChars + a.length > half) {
      slices.push(slice);
      slice = [];
      sliceChars = 0;
    }
    slice.push(a);
    sliceChars += a.length;
    addrChars = Math.max(addrChars, sliceChars);
  }
  slices.push(slice);
  const budget = MAX_FANOUT_CHARS - addrChars;
  const out: BusMessage[] = [];
  let run: Envelope[] = [];
  let runChars = 0;
  const flush = (): void => {
    for (const s of slices) out.push({ op: "fanout", envs: run, to: s });
    run = [];
    runChars = 0;
  };
  for (const e of envs) {
    const t = e.textLength;
    const c = (t >= 0 ? t : UNKNOWN_CHARS) + e.from.length + e.id.length + 64;
    if (run.length > 0 && runChars + c > budget) flush();
    run.push(e);
    runChars += c;
  }
  if (run.length > 0) flush();
  return out;
}

/** The same recipients, in the same order (a room's occupants, for two of its messages in a row). */
function sameTargets(a: readonly (FanoutTarget | string)[], b: readonly (FanoutTarget | string)[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (typeof x === "string" ? x !== y : typeof y === "string" || x.address !== y.address || x.at !== y.at) return false;
  }
  return true;
}
