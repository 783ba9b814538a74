import { Envelope, Flag, Kind } from "../envelope/envelope.js";
import { bareOf, resourceOf } from "../address/address.js";
import type { Session } from "../session/session.js";
import { monotonicMs } from "../timer/clock.js";
import { UserChannel, type SessionRef } from "./user-channel.js";
import { Pool, PoolLoad } from "./pool.js";
import { RehomeHold } from "./rehome-hold.js";

/** What an owner needs of the worker it runs in: ways to hand envelopes on. */
export interface Delivery {
  readonly workerId: string;
  /** Hands env to the session `ref` names, on this worker or through the bus. */
  toSession(ref: SessionRef, env: Envelope): void;
  /** Nobody online can take env. */
  undeliverable(env: Envelope): void;
  /** Sends env on its way from this worker, as any envelope a session sends. */
  route(env: Envelope): void;
  /**
   * A newer session, `by`, took `old`'s address, or (another address) is the same client's new binding: tell
   * `old`, here or on its worker, and where `by` is when its address differs (what `old` gives back goes there).
   */
  replaced(old: SessionRef, by: SessionRef): void;
  /** The session connected to this worker at a full address. */
  local(address: string): Session | undefined;
  /** Tell the session `ref` names, here or on its worker, whether another session of its user wants copies. */
  peersWantCopies(ref: SessionRef, on: boolean): void;
  /** A message (Flag.Archive) for the archive of `bare`, a user this worker owns (`outgoing`: `bare` sent it). */
  archive?(env: Envelope, bare: string, outgoing: boolean): void;
  /** `ref` is bound here now (a new session, or one binding again after a membership change). */
  bound?(ref: SessionRef): void;
}

/**
 * Seed 000's owner side: the UserChannels of the bare addresses this worker
 * owns (the ring says which), and the delivery rules it applies for them.
 * Whoever sends to a bare address, or to a full one not connected where the
 * sender is, reaches the owner first; the owner knows where each session of
 * the user is.
 */
export class ChannelOwner {
  /** UserChannels of the bare addresses this worker owns. */
  readonly channels = new Map<string, UserChannel>();
  /** Requests in flight at each pooled session of a pool of two or more; swept by the worker's TimerDaemon. */
  readonly load = new PoolLoad();
  /** After a membership change, what comes for users with no binding here yet waits a little for their binds. */
  readonly hold = new RehomeHold((envs) => {
    for (const env of envs) this.deliver(env);
  });

  constructor(
    private readonly d: Delivery,
    /** Where copies made (Flag.Copies) are counted: one per message, however many sessions take it. */
    private readonly stats: { copies: number } = { copies: 0 },
  ) {}

  bind(ref: SessionRef): void {
    const bare = bareOf(ref.address);
    let ch = this.channels.get(bare);
    if (ch === undefined) {
      ch = new UserChannel(bare);
      this.channels.set(bare, ch);
    }
    if (ref.workerId === this.d.workerId) ref.session = this.d.local(ref.address) ?? null;
    const cur = ch.resources.get(ref.resource);
    if (cur !== undefined && cur.born > ref.born && (cur.workerId !== ref.workerId || cur.serial !== ref.serial)) {
      // An older session binding again (its worker stalled or was cut off, and is back) after a newer
      // login took the address meanwhile: the older one goes, not the one its client uses now.
      this.d.replaced(ref, cur);
      return;
    }
    // XEP-0386 §3.2: a client's new binding ends its earlier sessions under its other resources (tags), by the
    // same rule: of two sessions of one client, the older goes, whichever bind comes last.
    const same = ch.sameClient(ref);
    for (const r of same) {
      if (r.born > ref.born) return this.d.replaced(ref, r);
    }
    for (const r of same) {
      ch.unbind(r.resource, r.serial);
      this.leftPool(ch, r);
      this.d.replaced(r, ref);
    }
    const old = ch.bind(ref);
    if (old !== undefined) this.leftPool(ch, old);
    if (ref.pool) (ch.pool ??= new Pool()).add(ref);
    // Same worker: attach() told the old session already, or this is a session binding again after a membership change.
    if (old !== undefined && old.workerId !== ref.workerId) this.d.replaced(old, ref);
    this.tellPeers(ch);
    const held = this.hold.release(bare);
    if (held !== undefined) for (const env of held) this.deliver(env);
    this.d.bound?.(ref);
  }

  /** No binding here for env's recipient: held while bindings may still be coming (RehomeHold), else undeliverable. */
  private unbound(env: Envelope): void {
    if (!this.hold.take(env)) this.d.undeliverable(env);
  }

  unbind(address: string, serial: number): void {
    const bare = bareOf(address);
    const ch = this.channels.get(bare);
    if (ch === undefined) return;
    const ref = ch.resources.get(resourceOf(address));
    const copiers = ch.copiers;
    if (ref === undefined || !ch.unbind(ref.resource, serial)) return;
    this.leftPool(ch, ref);
    if (ch.empty) this.channels.delete(bare);
    else if (ch.copiers !== copiers) this.tellPeers(ch);
  }

  /** Worker `workerId` says it has no session (address, serial): the binding, if it names that worker, is stale. */
  unbindAt(address: string, serial: number, workerId: string): void {
    const ref = this.channels.get(bareOf(address))?.resources.get(resourceOf(address));
    // The same serial on another worker is that session moved (a handover): its binding is current.
    if (ref !== undefined && ref.workerId === workerId) this.unbind(address, serial);
  }

  /**
   * The session's worker says a request this owner gave to a pooled session is
   * settled (answered, failed, or dropped): that session has one fewer in flight.
   */
  settled(requestRef: string): void {
    this.load.settled(requestRef);
  }

  /** `ref` is no longer bound here: out of its pool, and its counts with it. */
  private leftPool(ch: UserChannel, ref: SessionRef): void {
    const pool = ch.pool;
    if (!ref.pool || pool === null) return;
    const m = pool.remove(ref);
    if (m !== undefined) this.load.left(m);
    if (pool.members.length === 0) ch.pool = null;
  }

  presence(address: string, serial: number, available: boolean, priority: number, presence: unknown, copies: boolean): void {
    const ch = this.channels.get(bareOf(address));
    if (ch === undefined) return;
    const copiers = ch.copiers;
    ch.update(resourceOf(address), serial, available, priority, presence, copies);
    if (ch.copiers !== copiers) this.tellPeers(ch);
  }

  /**
   * Each session learns whether another session of its user wants copies, when
   * that changes: so the worker where a message reaches it (or where it sends
   * one) makes a copy only when someone takes it, without asking the owner.
   */
  private tellPeers(ch: UserChannel): void {
    for (const ref of ch.resources.values()) {
      const others = ch.copiers > (ref.copies ? 1 : 0);
      if (others === ref.told) continue;
      ref.told = others;
      this.d.peersWantCopies(ref, others);
    }
  }

  /** The delivery rules (RFC 6121 §8.5 in protocol-neutral terms), applied by the owner of the bare address. */
  deliver(env: Envelope): void {
    if ((env.flags & (Flag.Copy | Flag.SentCopy)) !== 0) return this.deliverCopy(env);
    const bare = bareOf(env.to);
    // XEP-0313: the recipient's archive is kept here, whether the message is delivered, stored or bounced.
    if ((env.flags & Flag.Archive) !== 0) this.d.archive?.(env, bare, false);
    const ch = this.channels.get(bare);
    const resource = resourceOf(env.to);
    if (env.kind === Kind.Request) {
      if (ch !== undefined && !resource && ch.pool !== null) return this.toPool(ch.pool, ch, env);
      const ref = ch === undefined ? undefined : resource ? ch.resources.get(resource) : ch.pickOne();
      if (ref === undefined) return this.unbound(env);
      return this.d.toSession(ref, env);
    }
    if (resource) {
      const ref = ch?.resources.get(resource);
      if (ref !== undefined) {
        this.d.toSession(ref, env);
        // Tested before the one-element array is made: most users have nobody who wants copies.
        if ((env.flags & Flag.Copies) !== 0 && ch!.copiers !== 0) this.copies(ch!, env, [ref]);
        return;
      }
      if ((env.flags & Flag.BareFallback) === 0 || ch === undefined) return this.unbound(env);
    }
    // Nobody bound: perhaps not yet, after a ring change. A probe is answered once someone is.
    if (ch === undefined && this.hold.take(env)) return;
    if (env.flags & Flag.Probe) return this.answerProbe(ch, env);
    const targets = ch === undefined ? [] : ch.targets(env.kind, env.flags);
    if (targets.length === 0) this.d.undeliverable(env);
    else for (let i = 0; i < targets.length; i++) this.d.toSession(targets[i], env);
    // XEP-0280 §7: a message to the bare JID reaches the targets above; the other sessions that want copies get one.
    if ((env.flags & Flag.Copies) !== 0 && ch !== undefined) this.copies(ch, env, targets);
  }

  /** Every session of ch that wants copies and is not in `got` (those have the original) gets one copy of env. */
  private copies(ch: UserChannel, env: Envelope, got: readonly SessionRef[]): void {
    if (ch.copiers === 0) return;
    const to = ch.copyTargets(got);
    if (to.length === 0) return;
    this.stats.copies++;
    const copy = env.copy(Flag.Copy);
    for (let i = 0; i < to.length; i++) this.d.toSession(to[i], copy);
  }

  /**
   * A copy made where the original reached its session without the owner (Flag.Copy: a
   * recipient at its full address on the sender's worker) or where it was sent (Flag.SentCopy):
   * to the sessions of that user that want copies, other than the one with the original.
   */
  private deliverCopy(env: Envelope): void {
    const sent = (env.flags & Flag.SentCopy) !== 0;
    const of = sent ? env.from : env.to;
    const bare = bareOf(of);
    // A copy that also carries the message to this owner's archive (the original skipped the owner).
    if ((env.flags & Flag.Archive) !== 0) this.d.archive?.(env, bare, sent);
    const ch = this.channels.get(bare);
    if (ch === undefined || ch.copiers === 0) return;
    const got = ch.resources.get(resourceOf(of));
    const to = ch.copyTargets(got === undefined ? [] : [got]);
    for (let i = 0; i < to.length; i++) this.d.toSession(to[i], env);
  }

  /**
   * A request to the bare address of a user with pooled sessions goes to the
   * one with the fewest requests in flight, ties in turn (docs/relay-protocol.md,
   * "Pools"). Only a pool of two or more is counted, and only its requests are
   * marked, so that their sessions' workers tell this owner when they settle: a
   * lone session costs nothing more than before.
   */
  private toPool(pool: Pool, ch: UserChannel, env: Envelope): void {
    const counted = pool.members.length > 1;
    // A lone pooled session has nothing to be balanced against: it is neither counted nor marked.
    const m = counted ? pool.pick() : pool.members[0];
    if (m === undefined || !m.ref.available) {
      const ref = ch.pickOne();
      return ref === undefined ? this.d.undeliverable(env) : this.d.toSession(ref, env);
    }
    if (!counted) return this.d.toSession(m.ref, env);
    this.load.routed(m, env.ref, env.ttl, monotonicMs());
    this.d.toSession(m.ref, env.flagged(Flag.Pool));
  }

  /** Each available resource's last presence goes to the prober, as if that resource had sent it. */
  private answerProbe(ch: UserChannel | undefined, probe: Envelope): void {
    if (ch === undefined) return;
    for (const ref of ch.resources.values()) {
      // The prober itself (its own bare JID probed at login, RFC 6121 §4.3.2) had its presence from its broadcast (§4.2.2).
      if (!ref.available || ref.presence === null || ref.address === probe.from) continue;
      this.d.route(Envelope.presence({ from: ref.address, to: probe.from, protocol: ref.protocol, payload: ref.presence }));
    }
  }

  /**
   * Workers came or went, so some bare addresses changed owner. Keep only the
   * channels still owned here, without the sessions of workers that left,
   * restarted or lost touch (those sessions bind again, or are gone); hold what
   * comes for users without a binding for `holdMs`, and send what was held for
   * users now owned elsewhere to their owner. Returns the sessions dropped from
   * channels kept here.
   */
  rehome(ownsHere: (bare: string) => boolean, lost: (workerId: string) => boolean, holdMs = 0): SessionRef[] {
    const self = this.d.workerId;
    const dropped: SessionRef[] = [];
    for (const [bare, ch] of this.channels) {
      if (!ownsHere(bare)) {
        if (ch.pool !== null) for (const m of ch.pool.members) this.load.left(m);
        this.channels.delete(bare);
        continue;
      }
      const copiers = ch.copiers;
      for (const ref of ch.resources.values()) {
        if (ref.workerId !== self && lost(ref.workerId) && ch.unbind(ref.resource, ref.serial)) {
          this.leftPool(ch, ref);
          dropped.push(ref);
        }
      }
      if (ch.empty) this.channels.delete(bare);
      else if (ch.copiers !== copiers) this.tellPeers(ch);
    }
    this.hold.open(holdMs);
    for (const env of this.hold.moved(ownsHere)) this.d.route(env);
    return dropped;
  }
}
