/**
 * XEP-0045 persistent rooms (schema component "muc"): one row per room address, its state (configuration,
 * affiliations, subject) as the protocol's own JSON text, which the store does not read. Read when a
 * room's owner worker first meets the room; written when an owner changes it. Never on the forwarding path.
 */
export interface MucStore {
  /** The room's state as stored, or null. */
  room(jid: string): Promise<string | null>;
  /** Creates or replaces it. */
  putRoom(jid: string, state: string): Promise<void>;
  /** Resolves to whether there was one. */
  deleteRoom(jid: string): Promise<boolean>;
  /** Every stored room's address, sorted (operators, tests). */
  rooms(): Promise<string[]>;
}
