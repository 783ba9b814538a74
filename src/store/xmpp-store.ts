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

/**
 * What XMPP keeps per account beside the credentials: rosters, subscription
 * requests not yet answered, and messages stored while the user was offline.
 * Users are named by their local part.
 */
export interface XmppStore {
  roster(user: string): RosterItem[];
  rosterItem(user: string, jid: string): RosterItem | undefined;
  rosterSize(user: string): number;
  putRosterItem(user: string, item: RosterItem): void;
  removeRosterItem(user: string, jid: string): boolean;

  /** RFC 6121 §3.1.3: an inbound request kept until the user approves or denies it. */
  putSubscriptionRequest(user: string, from: string, stanza: string): void;
  subscriptionRequests(user: string): { from: string; stanza: string }[];
  hasSubscriptionRequest(user: string, from: string): boolean;
  removeSubscriptionRequest(user: string, from: string): boolean;
  subscriptionRequestCount(user: string): number;

  /** Stores a message unless the user already has `cap` waiting; false when full. */
  pushOffline(user: string, stanza: string, cap: number): boolean;
  /** All waiting messages, oldest first, removed from the store. */
  takeOffline(user: string): string[];
  offlineCount(user: string): number;
}
