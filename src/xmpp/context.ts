import type { SessionContext } from "../session/context.js";
import type { XmppStore } from "../store/xmpp-store.js";
import type { ProfileStore } from "../store/profile-store.js";
import type { PepStore } from "../store/pep-store.js";
import type { Envelope } from "../envelope/envelope.js";
import type { AccountStore } from "../store/store.js";
import type { OfflineWriter } from "../store/offline-writer.js";
import type { Hooks } from "./hooks.js";
import type { FailureLimiter } from "../auth/failure-limiter.js";
import type { ClientSession } from "./client-session.js";

/** What every XMPP connection shares: given by the composition root (front-end.ts). */
export interface XmppContext extends SessionContext {
  hooks: Hooks;
  store: XmppStore;
  /** Block lists and vCards (XEP-0191, XEP-0054). */
  profile: ProfileStore;
  /** XEP-0163 PEP nodes and items. */
  pep: PepStore;
  /**
   * What a message sent to every resource of a user by another user (a PEP
   * event, modules/pep-events.ts) becomes on this session's stream, or null:
   * not for it. Set by the PEP module.
   */
  pepEvent: (s: ClientSession, env: Envelope) => string | null;
  accounts: AccountStore;
  /** The worker's queue of offline messages on their way to `store` (written in batches, never awaited by the core). */
  offline: OfflineWriter;
  /** Failed authentications per remote IP (RFC 6120 §6.4.5 retries, across connections). */
  ipFailures: FailureLimiter;
  /** Key for the fake salts of unknown users, so SCRAM does not tell which accounts exist. */
  saltSecret: Buffer;
  /** A session with no connection, for one that another worker hands over (XEP-0198 across workers). */
  detachedSession: (remoteAddress: string) => ClientSession;
  /** XEP-0114: the domains of the components (xmpp.components); what sessions send there is readdressed (modules/components.ts). */
  componentDomains?: ReadonlySet<string>;
}
