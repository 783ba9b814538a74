import type { Credentials } from "./scram.js";

/**
 * Accounts, and beside them what the protocols keep per user. Calls are
 * synchronous (SQLite in-process): fast enough for login and roster work,
 * never called per forwarded request.
 */
export interface AccountStore {
  /** Creates or replaces an account. */
  putUser(user: string, creds: Credentials): void;
  /** Many accounts in one transaction. */
  putUsers(entries: Iterable<[string, Credentials]>): number;
  deleteUser(user: string): boolean;
  hasUser(user: string): boolean;
  listUsers(): string[];
  credentials(user: string): Credentials | undefined;
  close(): void;
}
