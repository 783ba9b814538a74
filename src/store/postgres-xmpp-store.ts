import type pg from "pg";
import type { OfflineEntry, OfflineResult, RosterItem, Subscription, XmppStore } from "./xmpp-store.js";
import type { Component } from "./postgres-schema.js";
import { transaction } from "./postgres.js";

/**
 * The XMPP tables' schema steps (component "xmpp"); append, never edit. As in
 * SQLite: rosters, unanswered subscription requests, offline messages, emptied
 * with the account by a trigger on the accounts' users table.
 */
export const XMPP: Component = {
  name: "xmpp",
  steps: [
    `CREATE TABLE roster (
       username text NOT NULL,
       jid text NOT NULL,
       name text NOT NULL DEFAULT '',
       subscription text NOT NULL DEFAULT 'none',
       ask boolean NOT NULL DEFAULT false,
       groups jsonb NOT NULL DEFAULT '[]',
       PRIMARY KEY (username, jid)
     );
     CREATE TABLE subscription_requests (
       username text NOT NULL,
       jid text NOT NULL,
       stanza text NOT NULL,
       PRIMARY KEY (username, jid)
     );
     CREATE TABLE offline (
       id bigserial PRIMARY KEY,
       username text NOT NULL,
       stanza text NOT NULL,
       created_at bigint NOT NULL
     );
     CREATE INDEX offline_by_user ON offline (username, id);
     CREATE FUNCTION users_delete_xmpp() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       DELETE FROM roster WHERE username = OLD.username;
       DELETE FROM subscription_requests WHERE username = OLD.username;
       DELETE FROM offline WHERE username = OLD.username;
       RETURN NULL;
     END $$;
     CREATE TRIGGER users_delete_xmpp AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION users_delete_xmpp()`,
    // 2: the sender and id of a stored message (OfflineEntry.key), so that a resent copy is told from a new one.
    `ALTER TABLE offline ADD COLUMN msgkey text`,
  ],
};

interface RosterRow {
  jid: string;
  name: string;
  subscription: Subscription;
  ask: boolean;
  groups: unknown;
}

const ROSTER_COLUMNS = "jid, name, subscription, ask, groups";

/** XmppStore on PostgreSQL, sharing the accounts' pool. */
export class PgXmppStore implements XmppStore {
  constructor(private readonly pool: pg.Pool) {}

  private async rows<R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<R[]> {
    return (await this.pool.query<R>(sql, params)).rows;
  }

  private async changed(sql: string, params: unknown[]): Promise<boolean> {
    return ((await this.pool.query(sql, params)).rowCount ?? 0) > 0;
  }

  async roster(user: string): Promise<RosterItem[]> {
    return (await this.rows<RosterRow>(`SELECT ${ROSTER_COLUMNS} FROM roster WHERE username = $1 ORDER BY jid COLLATE "C"`, [user])).map(toItem);
  }

  async rosterItem(user: string, jid: string): Promise<RosterItem | undefined> {
    const r = (await this.rows<RosterRow>(`SELECT ${ROSTER_COLUMNS} FROM roster WHERE username = $1 AND jid = $2`, [user, jid]))[0];
    return r === undefined ? undefined : toItem(r);
  }

  async rosterSize(user: string): Promise<number> {
    return (await this.rows<{ n: number }>("SELECT count(*)::int AS n FROM roster WHERE username = $1", [user]))[0].n;
  }

  async putRosterItem(user: string, i: RosterItem): Promise<void> {
    await this.pool.query(
      `INSERT INTO roster (username, jid, name, subscription, ask, groups) VALUES ($1, $2, $3, $4, $5, $6::jsonb)
       ON CONFLICT (username, jid) DO UPDATE SET name = excluded.name, subscription = excluded.subscription, ask = excluded.ask, groups = excluded.groups`,
      [user, i.jid, i.name, i.subscription, i.ask, JSON.stringify(i.groups)],
    );
  }

  removeRosterItem(user: string, jid: string): Promise<boolean> {
    return this.changed("DELETE FROM roster WHERE username = $1 AND jid = $2", [user, jid]);
  }

  async putSubscriptionRequest(user: string, from: string, stanza: string): Promise<void> {
    await this.pool.query(
      `INSERT INTO subscription_requests (username, jid, stanza) VALUES ($1, $2, $3) ON CONFLICT (username, jid) DO UPDATE SET stanza = excluded.stanza`,
      [user, from, stanza],
    );
  }

  async subscriptionRequests(user: string): Promise<{ from: string; stanza: string }[]> {
    const rows = await this.rows<{ jid: string; stanza: string }>(`SELECT jid, stanza FROM subscription_requests WHERE username = $1 ORDER BY jid COLLATE "C"`, [user]);
    return rows.map((r) => ({ from: r.jid, stanza: r.stanza }));
  }

  async hasSubscriptionRequest(user: string, from: string): Promise<boolean> {
    return (await this.rows("SELECT 1 FROM subscription_requests WHERE username = $1 AND jid = $2", [user, from])).length > 0;
  }

  removeSubscriptionRequest(user: string, from: string): Promise<boolean> {
    return this.changed("DELETE FROM subscription_requests WHERE username = $1 AND jid = $2", [user, from]);
  }

  async subscriptionRequestCount(user: string): Promise<number> {
    return (await this.rows<{ n: number }>("SELECT count(*)::int AS n FROM subscription_requests WHERE username = $1", [user]))[0].n;
  }

  /**
   * One transaction, four statements whatever the batch's size. The users'
   * rows are locked (in name order, so two batches cannot deadlock): writers on
   * other workers and hosts count a user's waiting messages in turn, so the cap
   * holds, and an account deleted meanwhile waits and then takes them along.
   */
  pushOffline(batch: readonly OfflineEntry[], cap: number): Promise<OfflineResult[]> {
    if (batch.length === 0) return Promise.resolve([]);
    const users = [...new Set(batch.map((e) => e.user))].sort();
    return transaction(this.pool, async (c) => {
      const known = new Set((await c.query<{ username: string }>(`SELECT username FROM users WHERE username = ANY($1::text[]) ORDER BY username COLLATE "C" FOR UPDATE`, [users])).rows.map((r) => r.username));
      const waiting = new Map<string, number>();
      if (known.size > 0) {
        const counts = await c.query<{ username: string; n: number }>("SELECT username, count(*)::int AS n FROM offline WHERE username = ANY($1::text[]) GROUP BY username", [[...known]]);
        for (const r of counts.rows) waiting.set(r.username, r.n);
      }
      // Resent copies (rare): the keys among them that wait already, by user and key; and those this batch stores.
      const waitingKeys = new Set<string>();
      const resends = batch.filter((e) => e.resent === true && e.key && known.has(e.user));
      if (resends.length > 0) {
        const r = await c.query<{ username: string; msgkey: string }>("SELECT username, msgkey FROM offline WHERE username = ANY($1::text[]) AND msgkey = ANY($2::text[])", [resends.map((e) => e.user), resends.map((e) => e.key)]);
        for (const row of r.rows) waitingKeys.add(`${row.username}\u0000${row.msgkey}`);
      }
      const names: string[] = [];
      const stanzas: string[] = [];
      const keys: (string | null)[] = [];
      const results = batch.map(({ user, stanza, key, resent }): OfflineResult => {
        if (!known.has(user)) return "unknown";
        if (resent === true && key && waitingKeys.has(`${user}\u0000${key}`)) return "duplicate";
        const n = waiting.get(user) ?? 0;
        if (n >= cap) return "full";
        waiting.set(user, n + 1);
        names.push(user);
        stanzas.push(stanza);
        keys.push(key || null);
        if (key && resends.length > 0) waitingKeys.add(`${user}\u0000${key}`);
        return "stored";
      });
      // unnest keeps the arrays' order, and bigserial numbers the rows in it: the order takeOffline returns.
      if (names.length > 0) await c.query("INSERT INTO offline (username, stanza, created_at, msgkey) SELECT u, s, $3, m FROM unnest($1::text[], $2::text[], $4::text[]) WITH ORDINALITY AS t (u, s, m, k) ORDER BY k", [names, stanzas, Date.now(), keys]);
      return results;
    });
  }

  async takeOffline(user: string): Promise<string[]> {
    const rows = await this.rows<{ stanza: string }>("WITH gone AS (DELETE FROM offline WHERE username = $1 RETURNING id, stanza) SELECT stanza FROM gone ORDER BY id", [user]);
    return rows.map((r) => r.stanza);
  }

  async offlineCount(user: string): Promise<number> {
    return (await this.rows<{ n: number }>("SELECT count(*)::int AS n FROM offline WHERE username = $1", [user]))[0].n;
  }
}

function toItem(r: RosterRow): RosterItem {
  const groups = Array.isArray(r.groups) ? r.groups.filter((x): x is string => typeof x === "string") : [];
  return { jid: r.jid, name: r.name, subscription: r.subscription, ask: r.ask, groups };
}
