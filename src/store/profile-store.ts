/**
 * What a user keeps about themselves beside the roster: the XEP-0191 block
 * list and the XEP-0054 vCard. Each is its own schema component ("blocking",
 * "vcard"), emptied with the account. Read at login (the block list) or per
 * request (the vCard), never on the forwarding path.
 */
export interface ProfileStore {
  /** The blocked JIDs (XEP-0191 items: full, bare, domain/resource or domain), in no particular order. */
  blocklist(user: string): Promise<string[]>;
  /**
   * Adds `jids` to the block list in one transaction, unless the list would
   * then hold more than `cap`: resolves to false and adds nothing.
   */
  block(user: string, jids: readonly string[], cap: number): Promise<boolean>;
  /** Removes `jids` (null: every item); resolves to the JIDs that were there. */
  unblock(user: string, jids: readonly string[] | null): Promise<string[]>;
  /**
   * Who blocked the account `bare` by name: the users with an item equal to
   * it or to one of its full JIDs, with that item (domain items not included).
   */
  blockers(bare: string): Promise<{ user: string; jid: string }[]>;
  /** blocklist(user) and blockers(bare) in one round trip: what a session reads at bind. */
  blockingAtLogin(user: string, bare: string): Promise<{ items: string[]; blockers: { user: string; jid: string }[] }>;

  /** The vCard as stored (serialized <vCard/>), or null. */
  vcard(user: string): Promise<string | null>;
  /** Replaces the vCard; null removes it. */
  setVcard(user: string, xml: string | null): Promise<void>;
}
