import type { Session } from "../session/session.js";

/** One online session as its owner knows it; `session` is set when it lives on the owner's own worker. */
export interface SessionRef {
  address: string;
  resource: string;
  workerId: string;
  serial: number;
  protocol: string;
  available: boolean;
  priority: number;
  presence: unknown;
  /** The session's protocol balances requests to the bare address over a pool (Session.pooled). */
  pool: boolean;
  session: Session | null;
  /** Bind order: ties in priority go to the most recent session. */
  seq: number;
  /**
   * When the session's connection came (Session.since, ms since the epoch): of two sessions
   * binding one address, the older is the one that goes, whichever bind comes last.
   */
  born: number;
  /** Wants copies of what the user's other sessions send and receive (Session.wantsCopies; XMPP: carbons enabled). */
  copies: boolean;
  /** What the session was last told (Session.peersWantCopies): whether another session of the user wants copies. */
  told: boolean;
  /**
   * Session.client: the client (installation) the session belongs to, named by its resource's part after the
   * first `/` (clientPart, address.ts). Bound with it, the session ends the user's earlier sessions of the same
   * client under other resources (ChannelOwner.bind). "": none named (always so in `binds`: wire-binds.ts).
   */
  client: string;
}
