import type Database from "better-sqlite3";
import { satisfies, type AccessModel, type LastItem, type NodeConfig, type PepItem, type PepStore, type PublishOutcome, type PublishRequest } from "./pep-store.js";
import { migrate } from "./sqlite-schema.js";
import { retrying } from "./sqlite-retry.js";

/** Schema steps of the component "pep" (XEP-0163); append, never edit. */
const PEP: readonly string[] = [
  `CREATE TABLE pep_nodes (
     username TEXT NOT NULL,
     node TEXT NOT NULL,
     access_model TEXT NOT NULL,
     persist_items INTEGER NOT NULL,
     max_items INTEGER NOT NULL,
     PRIMARY KEY (username, node)
   ) WITHOUT ROWID;
   CREATE TABLE pep_items (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     username TEXT NOT NULL,
     node TEXT NOT NULL,
     item_id TEXT NOT NULL,
     payload TEXT NOT NULL,
     UNIQUE (username, node, item_id)
   );
   CREATE INDEX pep_items_by_node ON pep_items (username, node, seq);
   CREATE TRIGGER users_delete_pep AFTER DELETE ON users BEGIN
     DELETE FROM pep_items WHERE username = old.username;
     DELETE FROM pep_nodes WHERE username = old.username;
   END`,
];

interface NodeRow {
  access_model: string;
  persist_items: number;
  max_items: number;
}

function config(r: NodeRow): NodeConfig {
  return { accessModel: r.access_model as AccessModel, persistItems: r.persist_items !== 0, maxItems: r.max_items };
}

/** PepStore in the accounts' SQLite file (opened after SqliteStore: its trigger watches the users table). */
export class SqlitePepStore implements PepStore {
  private readonly s;

  constructor(
    private readonly db: Database.Database,
    private readonly lockTimeoutMs = 5000,
  ) {
    migrate(db, "pep", PEP);
    const p = <P extends unknown[], R = unknown>(sql: string) => db.prepare<P, R>(sql);
    this.s = {
      node: p<[string, string], NodeRow>(`SELECT access_model, persist_items, max_items FROM pep_nodes WHERE username = ? AND node = ?`),
      nodes: p<[string], NodeRow & { node: string }>(`SELECT node, access_model, persist_items, max_items FROM pep_nodes WHERE username = ? ORDER BY node`),
      count: p<[string], { n: number }>(`SELECT COUNT(*) AS n FROM pep_nodes WHERE username = ?`),
      addNode: p<[string, string, string, number, number]>(`INSERT INTO pep_nodes (username, node, access_model, persist_items, max_items) VALUES (?, ?, ?, ?, ?)`),
      setNode: p<[string, number, number, string, string]>(`UPDATE pep_nodes SET access_model = ?, persist_items = ?, max_items = ? WHERE username = ? AND node = ?`),
      delNode: p<[string, string]>(`DELETE FROM pep_nodes WHERE username = ? AND node = ?`),
      delItems: p<[string, string]>(`DELETE FROM pep_items WHERE username = ? AND node = ?`),
      delItem: p<[string, string, string]>(`DELETE FROM pep_items WHERE username = ? AND node = ? AND item_id = ?`),
      addItem: p<[string, string, string, string]>(`INSERT INTO pep_items (username, node, item_id, payload) VALUES (?, ?, ?, ?)`),
      trim: p<[string, string, string, string, number]>(
        `DELETE FROM pep_items WHERE username = ? AND node = ? AND seq NOT IN
           (SELECT seq FROM pep_items WHERE username = ? AND node = ? ORDER BY seq DESC LIMIT ?)`,
      ),
      all: p<[string, string], { item_id: string; payload: string }>(`SELECT item_id, payload FROM pep_items WHERE username = ? AND node = ? ORDER BY seq`),
      newest: p<[string, string, number], { item_id: string; payload: string }>(
        `SELECT item_id, payload FROM (SELECT seq, item_id, payload FROM pep_items WHERE username = ? AND node = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq`,
      ),
      byIds: p<[string, string, string], { item_id: string; payload: string }>(
        `SELECT item_id, payload FROM pep_items WHERE username = ? AND node = ? AND item_id IN (SELECT value FROM json_each(?)) ORDER BY seq`,
      ),
      last: p<[string, string], { username: string; node: string; item_id: string; payload: string; access_model: string }>(
        `SELECT n.username, n.node, i.item_id, i.payload, n.access_model FROM pep_nodes n
           JOIN pep_items i ON i.seq = (SELECT MAX(seq) FROM pep_items WHERE username = n.username AND node = n.node)
         WHERE n.username IN (SELECT value FROM json_each(?)) AND n.node IN (SELECT value FROM json_each(?))`,
      ),
    };
  }

  private run<T>(fn: () => T): Promise<T> {
    return retrying(fn, this.lockTimeoutMs);
  }

  node(user: string, node: string): Promise<NodeConfig | null> {
    return this.run(() => {
      const r = this.s.node.get(user, node);
      return r === undefined ? null : config(r);
    });
  }

  nodes(user: string): Promise<{ node: string; config: NodeConfig }[]> {
    return this.run(() => this.s.nodes.all(user).map((r) => ({ node: r.node, config: config(r) })));
  }

  publish(user: string, r: PublishRequest): Promise<{ outcome: PublishOutcome; config: NodeConfig }> {
    return this.run(() =>
      this.db
        .transaction(() => {
          const row = this.s.node.get(user, r.node);
          let c: NodeConfig;
          if (row === undefined) {
            c = r.create;
            if (this.s.count.get(user)!.n >= r.maxNodes) return { outcome: "too-many-nodes" as const, config: c };
            this.s.addNode.run(user, r.node, c.accessModel, c.persistItems ? 1 : 0, c.maxItems);
          } else {
            c = config(row);
            if (!satisfies(c, r.require)) return { outcome: "precondition-not-met" as const, config: c };
          }
          this.s.delItem.run(user, r.node, r.item.id);
          if (c.persistItems) {
            this.s.addItem.run(user, r.node, r.item.id, r.item.payload);
            this.s.trim.run(user, r.node, user, r.node, c.maxItems);
          }
          return { outcome: "published" as const, config: c };
        })
        .immediate(),
    );
  }

  create(user: string, node: string, c: NodeConfig, maxNodes: number): Promise<"created" | "exists" | "too-many-nodes"> {
    return this.run(() =>
      this.db
        .transaction(() => {
          if (this.s.node.get(user, node) !== undefined) return "exists" as const;
          if (this.s.count.get(user)!.n >= maxNodes) return "too-many-nodes" as const;
          this.s.addNode.run(user, node, c.accessModel, c.persistItems ? 1 : 0, c.maxItems);
          return "created" as const;
        })
        .immediate(),
    );
  }

  retract(user: string, node: string, id: string): Promise<boolean | null> {
    return this.run(() =>
      this.db
        .transaction(() => {
          if (this.s.node.get(user, node) === undefined) return null;
          return this.s.delItem.run(user, node, id).changes > 0;
        })
        .immediate(),
    );
  }

  items(user: string, node: string, q: { max?: number; ids?: readonly string[] }): Promise<PepItem[] | null> {
    return this.run(() => {
      if (this.s.node.get(user, node) === undefined) return null;
      const rows =
        q.ids !== undefined ? this.s.byIds.all(user, node, JSON.stringify(q.ids)) : q.max !== undefined ? this.s.newest.all(user, node, q.max) : this.s.all.all(user, node);
      return rows.map((x) => ({ id: x.item_id, payload: x.payload }));
    });
  }

  deleteNode(user: string, node: string): Promise<boolean> {
    return this.run(() =>
      this.db
        .transaction(() => {
          this.s.delItems.run(user, node);
          return this.s.delNode.run(user, node).changes > 0;
        })
        .immediate(),
    );
  }

  configure(user: string, node: string, c: NodeConfig): Promise<boolean> {
    return this.run(() =>
      this.db
        .transaction(() => {
          if (this.s.setNode.run(c.accessModel, c.persistItems ? 1 : 0, c.maxItems, user, node).changes === 0) return false;
          if (c.persistItems) this.s.trim.run(user, node, user, node, c.maxItems);
          else this.s.delItems.run(user, node);
          return true;
        })
        .immediate(),
    );
  }

  lastItems(users: readonly string[], nodes: readonly string[]): Promise<LastItem[]> {
    if (users.length === 0 || nodes.length === 0) return Promise.resolve([]);
    return this.run(() =>
      this.s.last.all(JSON.stringify(users), JSON.stringify(nodes)).map((r) => ({ user: r.username, node: r.node, id: r.item_id, payload: r.payload, accessModel: r.access_model as AccessModel })),
    );
  }
}
