/** RFC 6121 §3: the subscription states a roster item can be in. */
export type Subscription = "none" | "to" | "from" | "both";

export interface RosterItem {
  /** Bare JID of the contact. */
  jid: string;
  name: string;
  subscription: Subscription;
  /** An outbound subscription request is pending (RFC 6121 §3.1.2 "ask"). */
  ask: boolean;
  groups: string[];
}

/** A message to keep for a user until the next login: its stanza as written to the client. */
export interface OfflineEntry {
  user: string;
  stanza: string;
  /** Its sender's full address and its id, one string that tells them apart (no NUL: PostgreSQL's text refuses it); absent or "": none. */
  key?: string;
  /**
   * Sent again by its sender's client right after resuming (Flag.Resent): not stored when a message with the same
   * key waits for the user already (the first copy, stored before a death kept the sender's count below it).
   */
  resent?: boolean;
}

/**
 * What became of one OfflineEntry: kept, refused because the user has `cap` waiting, no such account, or a resent
 * copy of one that waits already (not stored again: as good as stored).
 */
export type OfflineResult = "stored" | "full" | "unknown" | "duplicate";

/**
 * What XMPP keeps per account beside the credentials: rosters, subscription
 * requests not yet answered, and messages stored while the user was offline.
 * Users are named by their local part. Asynchronous like AccountStore.
 */
export interface XmppStore {
  roster(user: string): Promise<RosterItem[]>;
  rosterItem(user: string, jid: string): Promise<RosterItem | undefined>;
  rosterSize(user: string): Promise<number>;
  putRosterItem(user: string, item: RosterItem): Promise<void>;
  removeRosterItem(user: string, jid: string): Promise<boolean>;

  /** RFC 6121 §3.1.3: an inbound request kept until the user approves or denies it. */
  putSubscriptionRequest(user: string, from: string, stanza: string): Promise<void>;
  subscriptionRequests(user: string): Promise<{ from: string; stanza: string }[]>;
  hasSubscriptionRequest(user: string, from: string): Promise<boolean>;
  removeSubscriptionRequest(user: string, from: string): Promise<boolean>;
  subscriptionRequestCount(user: string): Promise<number>;

  /**
   * A batch of messages in one transaction, in order: each is stored unless its
   * user has no account or already has `cap` waiting (counting the batch's own).
   * One result per entry. A rejection means none was stored.
   */
  pushOffline(batch: readonly OfflineEntry[], cap: number): Promise<OfflineResult[]>;
  /** All waiting messages, oldest first, removed from the store. */
  takeOffline(user: string): Promise<string[]>;
  offlineCount(user: string): Promise<number>;
}
