import { Flag, Kind } from "../envelope/envelope.js";
import type { Session } from "../session/session.js";
import type { Pool } from "./pool.js";
import { clientPart } from "../address/address.js";
import type { SessionRef } from "./session-ref.js";

export type { SessionRef };

let bindSeq = 0;

/**
 * Seed 000's UserChannel: one per bare address, on the worker that owns it.
 * Knows which sessions of the user are online and where, and applies the
 * delivery rules of RFC 6121 §8.5 without knowing any protocol's syntax.
 */
export class UserChannel {
  readonly resources = new Map<string, SessionRef>();
  /** How many of them want copies: nobody wanting any costs one test per message. */
  copiers = 0;
  /** The pooled sessions among them, kept by the owner (ChannelOwner); null while there are none. */
  pool: Pool | null = null;
  /** How many of them were bound naming their client (SessionRef.client): none (nearly always) costs a bind no search. */
  clients = 0;

  constructor(readonly bare: string) {}

  /** Binds a session; returns the session it replaced, if any. */
  bind(ref: SessionRef): SessionRef | undefined {
    const old = this.resources.get(ref.resource);
    ref.seq = ++bindSeq;
    this.resources.set(ref.resource, ref);
    if (old?.copies === true) this.copiers--;
    if (ref.copies) this.copiers++;
    if (old !== undefined && old.client !== "") this.clients--;
    if (ref.client !== "") this.clients++;
    return old;
  }

  unbind(resource: string, serial: number): boolean {
    const ref = this.resources.get(resource);
    if (ref === undefined || ref.serial !== serial) return false;
    this.resources.delete(resource);
    if (ref.copies) this.copiers--;
    if (ref.client !== "") this.clients--;
    return true;
  }

  /**
   * The other sessions of `ref`'s client: of its protocol, under another resource with the same clientPart, where
   * `ref` or that session was bound naming its client (a session binding again after a membership change names
   * none: `binds` do not carry it, wire-binds.ts). Without a client named on either side, sessions that merely
   * look alike are left alone.
   */
  sameClient(ref: SessionRef): SessionRef[] {
    const out: SessionRef[] = [];
    if (ref.client === "" && this.clients === 0) return out;
    const part = clientPart(ref.resource);
    for (const r of this.resources.values()) {
      if (r.resource === ref.resource || r.protocol !== ref.protocol || (ref.client === "" && r.client === "")) continue;
      if (clientPart(r.resource) === part) out.push(r);
    }
    return out;
  }

  update(resource: string, serial: number, available: boolean, priority: number, presence: unknown, copies: boolean): SessionRef | undefined {
    const ref = this.resources.get(resource);
    if (ref === undefined || ref.serial !== serial) return undefined;
    ref.available = available;
    ref.priority = priority;
    ref.presence = presence;
    if (ref.copies !== copies) this.copiers += copies ? 1 : -1;
    ref.copies = copies;
    return ref;
  }

  get empty(): boolean {
    return this.resources.size === 0;
  }

  /** A request to the bare address goes to one session: available before not, then highest priority, then newest. */
  pickOne(): SessionRef | undefined {
    let best: SessionRef | undefined;
    for (const ref of this.resources.values()) {
      if (best === undefined || better(ref, best)) best = ref;
    }
    return best;
  }

  /**
   * Who gets a message or presence sent to the bare address: every available
   * session, and for messages only those with non-negative priority
   * (§8.5.2.1.1); with EveryResource every bound session.
   */
  targets(kind: Kind, flags: number): SessionRef[] {
    const every = (flags & Flag.EveryResource) !== 0;
    const anyPriority = kind === Kind.Presence;
    const out: SessionRef[] = [];
    for (const ref of this.resources.values()) {
      if (every || (ref.available && (anyPriority || ref.priority >= 0))) out.push(ref);
    }
    return out;
  }

  /** The sessions that want copies, except those that got the original (XEP-0280 §7: never both). */
  copyTargets(got: readonly SessionRef[]): SessionRef[] {
    const out: SessionRef[] = [];
    if (this.copiers === 0) return out;
    for (const ref of this.resources.values()) {
      if (ref.copies && !got.includes(ref)) out.push(ref);
    }
    return out;
  }
}

function better(a: SessionRef, b: SessionRef): boolean {
  if (a.available !== b.available) return a.available;
  if (a.priority !== b.priority) return a.priority > b.priority;
  return a.seq > b.seq;
}
