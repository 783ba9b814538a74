import type { Credentials } from "./scram.js";
import type { XmppStore } from "./xmpp-store.js";
import type { ProfileStore } from "./profile-store.js";
import type { ArchiveStore } from "./archive-store.js";
import type { PepStore } from "./pep-store.js";
import type { FastStore } from "./fast-store.js";
import type { MucStore } from "./muc-store.js";
import type { MucDirectory } from "./muc-directory.js";

/**
 * Accounts as SCRAM keys. Every call returns a Promise, on both backends:
 * PostgreSQL answers over the network, and SQLite (in-process, synchronous
 * underneath) runs each call at once but retries a locked database on a timer
 * instead of waiting on the event loop. Nothing on the forwarding path awaits
 * a store (docs/architecture.md, "The store").
 */
export interface AccountStore {
  /** Creates or replaces an account (a new password keeps the user's other rows). */
  putUser(user: string, creds: Credentials): Promise<void>;
  /** Many accounts in one transaction. */
  putUsers(entries: Iterable<[string, Credentials]>): Promise<number>;
  /** Creates an account only if the name is free (XEP-0077 registration): false when it is taken. Atomic in the store. */
  addUser(user: string, creds: Credentials): Promise<boolean>;
  deleteUser(user: string): Promise<boolean>;
  hasUser(user: string): Promise<boolean>;
  listUsers(): Promise<string[]>;
  credentials(user: string): Promise<Credentials | undefined>;
}

/**
 * One backend's stores, as the server opens them (src/store/open.ts): the
 * accounts, and beside them what the protocols keep per user.
 */
export interface Storage extends AccountStore {
  /** "sqlite" or "postgres", for the start line and /readyz. */
  readonly kind: string;
  readonly xmpp: XmppStore;
  /** XEP-0191 block lists and XEP-0054 vCards. */
  readonly profile: ProfileStore;
  /** XEP-0313 archives (schema component "archive"). */
  readonly archive: ArchiveStore;
  /** XEP-0163 PEP nodes and items (schema component "pep"). */
  readonly pep: PepStore;
  /** XEP-0484 FAST tokens (schema component "fast"). */
  readonly fast: FastStore;
  /** XEP-0045 persistent rooms (schema component "muc"). */
  readonly muc: MucStore;
  /** XEP-0045 §6.3 public rooms (schema component "muc_directory"). */
  readonly mucDirectory: MucDirectory;
  /** A cheap query (readiness, /readyz); rejects when the store cannot answer. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
