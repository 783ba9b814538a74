import type Database from "better-sqlite3";
import type { OfflineEntry, OfflineResult, RosterItem, Subscription, XmppStore } from "./xmpp-store.js";
import { migrate } from "./sqlite-schema.js";
import { retrying } from "./sqlite-retry.js";

interface RosterRow {
  jid: string;
  name: string;
  subscription: Subscription;
  ask: number;
  groups: string;
}

/**
 * The XMPP tables' schema steps (schema_versions component "xmpp"); append, never edit.
 * RFC 6121: rosters, unanswered subscription requests, offline messages; gone with the
 * account (the trigger on the accounts store's users table).
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE roster (
     username TEXT NOT NULL,
     jid TEXT NOT NULL,
     name TEXT NOT NULL DEFAULT '',
     subscription TEXT NOT NULL DEFAULT 'none',
     ask INTEGER NOT NULL DEFAULT 0,
     groups TEXT NOT NULL DEFAULT '[]',
     PRIMARY KEY (username, jid)
   ) WITHOUT ROWID;
   CREATE TABLE subscription_requests (
     username TEXT NOT NULL,
     jid TEXT NOT NULL,
     stanza TEXT NOT NULL,
     PRIMARY KEY (username, jid)
   ) WITHOUT ROWID;
   CREATE TABLE offline (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     username TEXT NOT NULL,
     stanza TEXT NOT NULL,
     created_at INTEGER NOT NULL
   );
   CREATE INDEX offline_by_user ON offline (username, id);
   CREATE TRIGGER users_delete_xmpp AFTER DELETE ON users BEGIN
     DELETE FROM roster WHERE username = old.username;
     DELETE FROM subscription_requests WHERE username = old.username;
     DELETE FROM offline WHERE username = old.username;
   END`,
  // 2: the sender and id of a stored message (OfflineEntry.key), so that a resent copy is told from a new one.
  `ALTER TABLE offline ADD COLUMN msgkey TEXT`,
];

/**
 * XmppStore in the accounts database file, beside the users table: open the
 * SqliteStore first (its schema holds the table this store's trigger watches);
 * SqliteStore.xmpp does. Calls run at once; a locked file is retried on a timer.
 */
export class SqliteXmppStore implements XmppStore {
  private readonly s;

  constructor(
    private readonly db: Database.Database,
    private readonly lockTimeoutMs = 5000,
  ) {
    migrate(db, "xmpp", MIGRATIONS);
    const p = <P extends unknown[], R = unknown>(sql: string) => db.prepare<P, R>(sql);
    this.s = {
      roster: p<[string], RosterRow>(`SELECT jid, name, subscription, ask, groups FROM roster WHERE username = ? ORDER BY jid`),
      item: p<[string, string], RosterRow>(`SELECT jid, name, subscription, ask, groups FROM roster WHERE username = ? AND jid = ?`),
      count: p<[string], { n: number }>(`SELECT COUNT(*) AS n FROM roster WHERE username = ?`),
      put: p<[string, string, string, string, number, string]>(
        `INSERT OR REPLACE INTO roster (username, jid, name, subscription, ask, groups) VALUES (?, ?, ?, ?, ?, ?)`,
      ),
      del: p<[string, string]>(`DELETE FROM roster WHERE username = ? AND jid = ?`),
      putReq: p<[string, string, string]>(`INSERT OR REPLACE INTO subscription_requests (username, jid, stanza) VALUES (?, ?, ?)`),
      reqs: p<[string], { jid: string; stanza: string }>(`SELECT jid, stanza FROM subscription_requests WHERE username = ? ORDER BY jid`),
      hasReq: p<[string, string], { x: number }>(`SELECT 1 AS x FROM subscription_requests WHERE username = ? AND jid = ?`),
      delReq: p<[string, string]>(`DELETE FROM subscription_requests WHERE username = ? AND jid = ?`),
      countReq: p<[string], { n: number }>(`SELECT COUNT(*) AS n FROM subscription_requests WHERE username = ?`),
      hasUser: p<[string], { x: number }>(`SELECT 1 AS x FROM users WHERE username = ?`),
      pushOff: p<[string, string, number, string | null]>(`INSERT INTO offline (username, stanza, created_at, msgkey) VALUES (?, ?, ?, ?)`),
      // The user's rows by the index, then their keys: only for a resent copy, rare.
      hasKey: p<[string, string], { x: number }>(`SELECT 1 AS x FROM offline WHERE username = ? AND msgkey = ? LIMIT 1`),
      countOff: p<[string], { n: number }>(`SELECT COUNT(*) AS n FROM offline WHERE username = ?`),
      takeOff: p<[string], { stanza: string }>(`SELECT stanza FROM offline WHERE username = ? ORDER BY id`),
      clearOff: p<[string]>(`DELETE FROM offline WHERE username = ?`),
    };
  }

  private run<T>(fn: () => T): Promise<T> {
    return retrying(fn, this.lockTimeoutMs);
  }

  roster(user: string): Promise<RosterItem[]> {
    return this.run(() => this.s.roster.all(user).map(toItem));
  }

  rosterItem(user: string, jid: string): Promise<RosterItem | undefined> {
    return this.run(() => {
      const r = this.s.item.get(user, jid);
      return r === undefined ? undefined : toItem(r);
    });
  }

  rosterSize(user: string): Promise<number> {
    return this.run(() => this.s.count.get(user)!.n);
  }

  putRosterItem(user: string, i: RosterItem): Promise<void> {
    return this.run(() => void this.s.put.run(user, i.jid, i.name, i.subscription, i.ask ? 1 : 0, JSON.stringify(i.groups)));
  }

  removeRosterItem(user: string, jid: string): Promise<boolean> {
    return this.run(() => this.s.del.run(user, jid).changes > 0);
  }

  putSubscriptionRequest(user: string, from: string, stanza: string): Promise<void> {
    return this.run(() => void this.s.putReq.run(user, from, stanza));
  }

  subscriptionRequests(user: string): Promise<{ from: string; stanza: string }[]> {
    return this.run(() => this.s.reqs.all(user).map((r) => ({ from: r.jid, stanza: r.stanza })));
  }

  hasSubscriptionRequest(user: string, from: string): Promise<boolean> {
    return this.run(() => this.s.hasReq.get(user, from) !== undefined);
  }

  removeSubscriptionRequest(user: string, from: string): Promise<boolean> {
    return this.run(() => this.s.delReq.run(user, from).changes > 0);
  }

  subscriptionRequestCount(user: string): Promise<number> {
    return this.run(() => this.s.countReq.get(user)!.n);
  }

  // Both write after reading: IMMEDIATE takes the write lock first, so a second worker process
  // gets SQLITE_BUSY at BEGIN (retried on a timer) instead of failing when upgrading its read.
  pushOffline(batch: readonly OfflineEntry[], cap: number): Promise<OfflineResult[]> {
    return this.run(() =>
      this.db
        .transaction(() => {
          const now = Date.now();
          // Per user in this batch: messages waiting, or -1 for no such account.
          const waiting = new Map<string, number>();
          return batch.map(({ user, stanza, key, resent }): OfflineResult => {
            let n = waiting.get(user);
            if (n === undefined) {
              n = this.s.hasUser.get(user) === undefined ? -1 : this.s.countOff.get(user)!.n;
              waiting.set(user, n);
            }
            if (n < 0) return "unknown";
            if (resent === true && key && this.s.hasKey.get(user, key) !== undefined) return "duplicate";
            if (n >= cap) return "full";
            this.s.pushOff.run(user, stanza, now, key || null);
            waiting.set(user, n + 1);
            return "stored";
          });
        })
        .immediate(),
    );
  }

  takeOffline(user: string): Promise<string[]> {
    return this.run(() =>
      this.db
        .transaction(() => {
          const rows = this.s.takeOff.all(user).map((r) => r.stanza);
          if (rows.length > 0) this.s.clearOff.run(user);
          return rows;
        })
        .immediate(),
    );
  }

  offlineCount(user: string): Promise<number> {
    return this.run(() => this.s.countOff.get(user)!.n);
  }
}

function toItem(r: RosterRow): RosterItem {
  let groups: string[] = [];
  try {
    const g = JSON.parse(r.groups);
    if (Array.isArray(g)) groups = g.filter((x): x is string => typeof x === "string");
  } catch {
    // A damaged groups column costs the groups, not the roster.
  }
  return { jid: r.jid, name: r.name, subscription: r.subscription, ask: r.ask !== 0, groups };
}
