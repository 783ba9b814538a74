/**
 * XEP-0484 FAST tokens, schema component "fast". A token is kept only as its
 * SHA-256 (the HT mechanisms' HMAC key, see xmpp/sasl/ht.ts), bound to the
 * account, the client's XEP-0388 user-agent id and the mechanism it was asked
 * for. Each client has two slots (XEP-0484 §5.1): "new", the last token
 * issued, and "current", the last one used. Changing or deleting the account's
 * password removes them all (a trigger on users). Read and written at
 * authentication only, never on the forwarding path.
 */
export type FastSlot = "new" | "current";

export interface FastToken {
  slot: FastSlot;
  mechanism: string;
  /** SHA-256 of the token. */
  hash: Buffer;
  /** Epoch milliseconds. */
  expiresAt: number;
  /** The highest replay counter (<fast count/>) accepted for it; 0: none yet. */
  count: number;
}

export interface FastStore {
  /** The tokens of one client of `user`, unexpired or not. */
  fastTokens(user: string, agent: string): Promise<FastToken[]>;
  /**
   * Puts a token in the client's "new" slot (an unused one there goes, §3.5). Expired tokens of the user go
   * too, and past `maxClients` clients the ones whose tokens expire first.
   */
  issueFastToken(user: string, agent: string, t: { mechanism: string; hash: Buffer; expiresAt: number }, maxClients: number): Promise<void>;
  /**
   * The token in `slot` authenticated the client: from "new" it becomes "current" (the older one goes, §3.5).
   * `count` > 0 must exceed the token's last accepted count, atomically: false when it does not (a replay), and nothing changes.
   */
  useFastToken(user: string, agent: string, slot: FastSlot, count: number): Promise<boolean>;
  /** Removes the client's tokens (XEP-0484 §3.6), or with no `agent` all of the user's. */
  revokeFastTokens(user: string, agent?: string): Promise<void>;
}
