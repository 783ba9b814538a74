import type { Element } from "ltx";
import type { ClientSession } from "./client-session.js";

export interface SessionEvent {
  session: ClientSession;
}
export interface FeaturesEvent extends SessionEvent {
  /** <stream:features/>: a module offers a feature by appending its element. */
  features: Element;
}
export interface StanzaEvent extends SessionEvent {
  stanza: Element;
  /** The canonical `to` (empty: none given). */
  to: string;
}
export interface IqEvent extends StanzaEvent {
  type: "get" | "set";
  /** The one child of a get or set, and its namespace. */
  child: Element;
  ns: string;
}

export interface ServiceEvent extends StanzaEvent {
  /** The domain of `to`: a service of this server on its own address (XEP-0363 upload, a MUC service), not the server's. */
  domain: string;
}

/** Where a stanza is going, as RFC 6121 §8.5 distinguishes it. */
export type Target = "host" | "self" | "bare" | "full";

/** Every event a module can hook, with what it is given. */
export interface Events {
  "stream-features": FeaturesEvent;
  /** A top-level element before resource binding (STARTTLS, SASL, bind). */
  "negotiation": StanzaEvent;
  "iq/host": IqEvent;
  "iq/self": IqEvent;
  "iq/bare": IqEvent;
  "iq/full": StanzaEvent;
  /** iq result or error sent by the client, to anyone. */
  "iq/answer": StanzaEvent;
  "message/host": StanzaEvent;
  "message/bare": StanzaEvent;
  "message/full": StanzaEvent;
  /** Presence with no `to`: broadcast (RFC 6121 §4.2, §4.4, §4.5). */
  "presence/broadcast": StanzaEvent;
  "presence/host": StanzaEvent;
  "presence/bare": StanzaEvent;
  "presence/full": StanzaEvent;
  /**
   * Any stanza to another domain than the server's (`to` canonical): a module that serves that domain handles
   * it (XEP-0363 upload, XEP-0114 components, XEP-0045 rooms); unhandled: <remote-server-not-found/> (no
   * server-to-server).
   */
  "service": ServiceEvent;
  /**
   * A top-level element after binding that is not a stanza (not in jabber:client):
   * XEP-0352's <active/>/<inactive/>, XEP-0198's <enable/>, <r/>, <a/>. Unhandled: <unsupported-stanza-type/>.
   */
  "nonza": StanzaEvent;
  "session-bound": SessionEvent;
  /** The session's first available presence (RFC 6121 §4.2). */
  "initial-presence": SessionEvent;
  /** The connection is gone; the session is still attached to the core. */
  "session-closing": SessionEvent;
  /** The server drains and this session waits for its client (XEP-0198): handled when it moved to another worker. */
  "session-parking": SessionEvent;
  /** A session another worker handed over (XEP-0198 across workers) continues here: what a module keeps per worker is read again. */
  "session-continued": SessionEvent;
}
export type EventName = keyof Events;

/** Event names as constants, so a typo is a compile error rather than a silent no-op (unlike Prosody's strings). */
export const Ev = {
  StreamFeatures: "stream-features",
  Negotiation: "negotiation",
  IqHost: "iq/host",
  IqSelf: "iq/self",
  IqBare: "iq/bare",
  IqFull: "iq/full",
  IqAnswer: "iq/answer",
  MessageHost: "message/host",
  MessageBare: "message/bare",
  MessageFull: "message/full",
  PresenceBroadcast: "presence/broadcast",
  PresenceHost: "presence/host",
  PresenceBare: "presence/bare",
  PresenceFull: "presence/full",
  Service: "service",
  Nonza: "nonza",
  SessionBound: "session-bound",
  InitialPresence: "initial-presence",
  SessionClosing: "session-closing",
  SessionParking: "session-parking",
  SessionContinued: "session-continued",
} as const satisfies Record<string, EventName>;

/** Returning true means handled: later handlers are not called. */
export type Handler<K extends EventName> = (e: Events[K]) => boolean | void;

interface Entry {
  fn: (e: never) => boolean | void;
  priority: number;
}

/**
 * Prosody's event model: the stanza router derives an event name, modules hook
 * the names they serve. Higher priority runs first; ties in registration order.
 */
export class Hooks {
  private readonly table = new Map<EventName, Entry[]>();

  on<K extends EventName>(name: K, fn: Handler<K>, priority = 0): void {
    const list = this.table.get(name) ?? [];
    list.push({ fn, priority });
    list.sort((a, b) => b.priority - a.priority);
    this.table.set(name, list);
  }

  /** An iq get/set to `target` whose child is in namespace `ns`. */
  iq(target: "host" | "self" | "bare", ns: string, fn: Handler<"iq/host">): void {
    this.on(`iq/${target}`, (e) => (e.ns === ns ? fn(e) !== false : false));
  }

  fire<K extends EventName>(name: K, e: Events[K]): boolean {
    const list = this.table.get(name);
    if (list === undefined) return false;
    for (let i = 0; i < list.length; i++) if ((list[i].fn as Handler<K>)(e) === true) return true;
    return false;
  }
}
