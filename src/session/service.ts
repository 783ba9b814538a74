import type { Envelope } from "../envelope/envelope.js";

/*
 * Addresses that are owned like a user's bare address but served by a
 * protocol's service on the owner worker instead of a UserChannel: XEP-0045
 * rooms (room@conference.example.org). Seed 000's idea unchanged: the ring
 * names the owner of `room@service` as it names a user's, so there is no room
 * registry and no broadcast. The core knows nothing of rooms; the protocol
 * knows nothing of workers: where a session is travels as an opaque string.
 */

/** A recipient of a fan-out: a session's full address and where it is (`Served.at`; "" unknown). */
export interface FanoutTarget {
  address: string;
  at: string;
}

/** A protocol's service of one domain, on every worker; each address of it lives on its owner worker. */
export interface OwnedService {
  /**
   * An envelope marked Flag.Service for an address at the service's domain reached the worker the ring
   * names its owner. `at`: where the session that sent it is, to give back in a FanoutTarget ("" when the
   * sender is not a session, or not known).
   */
  receive(env: Envelope, at: string): void;
  /**
   * Workers left the ring or restarted: the sessions at the locators for which `lost` holds are gone
   * (their connections died with their worker), and will send nothing more.
   */
  lost?(lost: (at: string) => boolean): void;
  /**
   * Workers died (left the ring without handing anything off, or restarted empty): the addresses for which
   * `lost` holds lived there and are gone with their state; on every worker, for the sessions here.
   */
  ownerLost?(lost: (bare: string) => boolean): void;
  /** Whether the address lives here now (or is being read for it): what is not is looked at before receive (moves). */
  holds?(bare: string): boolean;
  /**
   * The ring changed (or this worker drains): every address held here for which `owns` is false leaves, with
   * its whole state as text (the service's own format), to be adopted by its new owner. Nothing it held is
   * told anything: its sessions keep what they had (src/proxy/service-moves.ts).
   */
  handOff?(owns: (bare: string) => boolean): [string, string][];
  /** A state handed off by the address's previous owner; false when it was unreadable or the address lives here already. */
  adopt?(bare: string, state: string): boolean;
}

/** What the core gives a service to send with (Core.serve). */
export interface ServiceLink {
  /**
   * One envelope (its `to` is ignored) to each target, readdressed to it and sharing one payload: one bus
   * message per worker that holds targets, however many there are. A target not found where `at` says
   * (it moved, or ended) is routed to its address as any envelope.
   */
  fanout(env: Envelope, to: readonly FanoutTarget[]): void;
  /** An answer (response or error) to a request the service received: env.responseFor is that request's ref. */
  answer(env: Envelope): void;
  /**
   * A request from the service (`env.from`: an address at its domain) to one session (XEP-0045 §7.5: an iq
   * passed on to an occupant), with the pending-response treatment a session's requests get: `done` is
   * called once, with the recipient's answer (a response or an error, from `to.address`), or an error
   * the core made (timeout, unavailable). The returned function forgets the request: `done` is not
   * called, and an answer arriving later counts as late.
   */
  request(env: Envelope, to: FanoutTarget, done: (answer: Envelope) => void): () => void;
  /** This worker owns `bare` by the ring now (false: it moved, or is about to: src/proxy/service-moves.ts). */
  owns(bare: string): boolean;
}
