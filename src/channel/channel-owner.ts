import { Envelope, Flag, Kind } from "../envelope/envelope.js";
import { bareOf, resourceOf } from "../address/address.js";
import type { Session } from "../session/session.js";
import { UserChannel, type SessionRef } from "./user-channel.js";

/** What an owner needs of the worker it runs in: ways to hand envelopes on. */
export interface Delivery {
  readonly workerId: string;
  /** Hands env to the session `ref` names, on this worker or through the bus. */
  toSession(ref: SessionRef, env: Envelope): void;
  /** Nobody online can take env. */
  undeliverable(env: Envelope): void;
  /** Sends env on its way from this worker, as any envelope a session sends. */
  route(env: Envelope): void;
  /** A newer session took `old`'s address: tell it, here or on its worker. */
  replaced(old: SessionRef): void;
  /** The session connected to this worker at a full address. */
  local(address: string): Session | undefined;
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

  constructor(private readonly d: Delivery) {}

  bind(ref: SessionRef): void {
    const bare = bareOf(ref.address);
    let ch = this.channels.get(bare);
    if (ch === undefined) {
      ch = new UserChannel(bare);
      this.channels.set(bare, ch);
    }
    if (ref.workerId === this.d.workerId) ref.session = this.d.local(ref.address) ?? null;
    const old = ch.bind(ref);
    // Same worker: attach() told the old session already, or this is a session binding again after a membership change.
    if (old !== undefined && old.workerId !== ref.workerId) this.d.replaced(old);
  }

  unbind(address: string, serial: number): void {
    const bare = bareOf(address);
    const ch = this.channels.get(bare);
    if (ch !== undefined && ch.unbind(resourceOf(address), serial) && ch.empty) this.channels.delete(bare);
  }

  presence(address: string, serial: number, available: boolean, priority: number, presence: unknown): void {
    this.channels.get(bareOf(address))?.update(resourceOf(address), serial, available, priority, presence);
  }

  /** The delivery rules (RFC 6121 §8.5 in protocol-neutral terms), applied by the owner of the bare address. */
  deliver(env: Envelope): void {
    const ch = this.channels.get(bareOf(env.to));
    const resource = resourceOf(env.to);
    if (env.kind === Kind.Request) {
      const ref = ch === undefined ? undefined : resource ? ch.resources.get(resource) : ch.pickOne();
      if (ref === undefined) return this.d.undeliverable(env);
      return this.d.toSession(ref, env);
    }
    if (resource) {
      const ref = ch?.resources.get(resource);
      if (ref !== undefined) return this.d.toSession(ref, env);
      if ((env.flags & Flag.BareFallback) === 0 || ch === undefined) return this.d.undeliverable(env);
    }
    if (env.flags & Flag.Probe) return this.answerProbe(ch, env);
    const targets = ch === undefined ? [] : ch.targets(env.kind, env.flags);
    if (targets.length === 0) return this.d.undeliverable(env);
    for (let i = 0; i < targets.length; i++) this.d.toSession(targets[i], env);
  }

  /** Each available resource's last presence goes to the prober, as if that resource had sent it. */
  private answerProbe(ch: UserChannel | undefined, probe: Envelope): void {
    if (ch === undefined) return;
    for (const ref of ch.resources.values()) {
      if (!ref.available || ref.presence === null) continue;
      this.d.route(Envelope.presence({ from: ref.address, to: probe.from, protocol: ref.protocol, payload: ref.presence }));
    }
  }

  /**
   * Workers came or went, so some bare addresses changed owner. Keep only the
   * channels still owned here, without the sessions of workers that left or
   * restarted (those sessions bind again, or are gone).
   */
  rehome(ownsHere: (bare: string) => boolean, lost: (workerId: string) => boolean): void {
    const self = this.d.workerId;
    for (const [bare, ch] of this.channels) {
      if (!ownsHere(bare)) {
        this.channels.delete(bare);
        continue;
      }
      for (const ref of ch.resources.values()) {
        if (ref.workerId !== self && lost(ref.workerId)) ch.unbind(ref.resource, ref.serial);
      }
      if (ch.empty) this.channels.delete(bare);
    }
  }
}
