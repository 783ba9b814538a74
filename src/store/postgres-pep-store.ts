import type pg from "pg";
import { satisfies, type AccessModel, type LastItem, type NodeConfig, type PepItem, type PepStore, type PublishOutcome, type PublishRequest } from "./pep-store.js";
import type { Component } from "./postgres-schema.js";
import { transaction } from "./postgres.js";

/** XEP-0163 PEP nodes and items (component "pep"); append steps, never edit. */
export const PEP: Component = {
  name: "pep",
  steps: [
    `CREATE TABLE pep_nodes (
       username text NOT NULL,
       node text NOT NULL,
       access_model text NOT NULL,
       persist_items boolean NOT NULL,
       max_items integer NOT NULL,
       PRIMARY KEY (username, node)
     );
     CREATE TABLE pep_items (
       seq bigserial PRIMARY KEY,
       username text NOT NULL,
       node text NOT NULL,
       item_id text NOT NULL,
       payload text NOT NULL,
       UNIQUE (username, node, item_id)
     );
     CREATE INDEX pep_items_by_node ON pep_items (username, node, seq);
     CREATE FUNCTION users_delete_pep() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       DELETE FROM pep_items WHERE username = OLD.username;
       DELETE FROM pep_nodes WHERE username = OLD.username;
       RETURN NULL;
     END $$;
     CREATE TRIGGER users_delete_pep AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION users_delete_pep()`,
  ],
};

interface NodeRow {
  access_model: string;
  persist_items: boolean;
  max_items: number;
}

function config(r: NodeRow): NodeConfig {
  return { accessModel: r.access_model as AccessModel, persistItems: r.persist_items, maxItems: r.max_items };
}

const TRIM = `DELETE FROM pep_items WHERE username = $1 AND node = $2 AND seq NOT IN
  (SELECT seq FROM pep_items WHERE username = $1 AND node = $2 ORDER BY seq DESC LIMIT $3)`;

/** PepStore on PostgreSQL, sharing the accounts' pool. */
export class PgPepStore implements PepStore {
  constructor(private readonly pool: pg.Pool) {}

  async node(user: string, node: string): Promise<NodeConfig | null> {
    const r = await this.pool.query<NodeRow>("SELECT access_model, persist_items, max_items FROM pep_nodes WHERE username = $1 AND node = $2", [user, node]);
    return r.rows.length === 0 ? null : config(r.rows[0]);
  }

  async nodes(user: string): Promise<{ node: string; config: NodeConfig }[]> {
    const r = await this.pool.query<NodeRow & { node: string }>("SELECT node, access_model, persist_items, max_items FROM pep_nodes WHERE username = $1 ORDER BY node", [user]);
    return r.rows.map((x) => ({ node: x.node, config: config(x) }));
  }

  /** Two publishes or creates of one user at once (two resources, two workers) must not pass maxNodes together: the users row lock serializes them. */
  private async lockUser(c: pg.PoolClient, user: string): Promise<void> {
    await c.query("SELECT 1 FROM users WHERE username = $1 FOR UPDATE", [user]);
  }

  publish(user: string, r: PublishRequest): Promise<{ outcome: PublishOutcome; config: NodeConfig }> {
    return transaction(this.pool, async (c) => {
      await this.lockUser(c, user);
      const row = (await c.query<NodeRow>("SELECT access_model, persist_items, max_items FROM pep_nodes WHERE username = $1 AND node = $2", [user, r.node])).rows[0];
      let cfg: NodeConfig;
      if (row === undefined) {
        cfg = r.create;
        const n = Number((await c.query<{ n: string }>("SELECT COUNT(*) AS n FROM pep_nodes WHERE username = $1", [user])).rows[0].n);
        if (n >= r.maxNodes) return { outcome: "too-many-nodes" as const, config: cfg };
        await c.query("INSERT INTO pep_nodes (username, node, access_model, persist_items, max_items) VALUES ($1, $2, $3, $4, $5)", [
          user,
          r.node,
          cfg.accessModel,
          cfg.persistItems,
          cfg.maxItems,
        ]);
      } else {
        cfg = config(row);
        if (!satisfies(cfg, r.require)) return { outcome: "precondition-not-met" as const, config: cfg };
      }
      await c.query("DELETE FROM pep_items WHERE username = $1 AND node = $2 AND item_id = $3", [user, r.node, r.item.id]);
      if (cfg.persistItems) {
        await c.query("INSERT INTO pep_items (username, node, item_id, payload) VALUES ($1, $2, $3, $4)", [user, r.node, r.item.id, r.item.payload]);
        await c.query(TRIM, [user, r.node, cfg.maxItems]);
      }
      return { outcome: "published" as const, config: cfg };
    });
  }

  create(user: string, node: string, cfg: NodeConfig, maxNodes: number): Promise<"created" | "exists" | "too-many-nodes"> {
    return transaction(this.pool, async (c) => {
      await this.lockUser(c, user);
      const has = await c.query("SELECT 1 FROM pep_nodes WHERE username = $1 AND node = $2", [user, node]);
      if (has.rows.length > 0) return "exists" as const;
      const n = Number((await c.query<{ n: string }>("SELECT COUNT(*) AS n FROM pep_nodes WHERE username = $1", [user])).rows[0].n);
      if (n >= maxNodes) return "too-many-nodes" as const;
      await c.query("INSERT INTO pep_nodes (username, node, access_model, persist_items, max_items) VALUES ($1, $2, $3, $4, $5)", [user, node, cfg.accessModel, cfg.persistItems, cfg.maxItems]);
      return "created" as const;
    });
  }

  async retract(user: string, node: string, id: string): Promise<boolean | null> {
    const r = await this.pool.query<{ has_node: boolean; removed: boolean }>(
      `WITH d AS (DELETE FROM pep_items WHERE username = $1 AND node = $2 AND item_id = $3 RETURNING 1)
       SELECT EXISTS (SELECT 1 FROM pep_nodes WHERE username = $1 AND node = $2) AS has_node, EXISTS (SELECT 1 FROM d) AS removed`,
      [user, node, id],
    );
    const x = r.rows[0];
    return x.has_node ? x.removed : null;
  }

  async items(user: string, node: string, q: { max?: number; ids?: readonly string[] }): Promise<PepItem[] | null> {
    const has = await this.pool.query("SELECT 1 FROM pep_nodes WHERE username = $1 AND node = $2", [user, node]);
    if (has.rows.length === 0) return null;
    const r =
      q.ids !== undefined
        ? await this.pool.query<{ item_id: string; payload: string }>(
            "SELECT item_id, payload FROM pep_items WHERE username = $1 AND node = $2 AND item_id = ANY($3::text[]) ORDER BY seq",
            [user, node, [...q.ids]],
          )
        : q.max !== undefined
          ? await this.pool.query<{ item_id: string; payload: string }>(
              "SELECT item_id, payload FROM (SELECT seq, item_id, payload FROM pep_items WHERE username = $1 AND node = $2 ORDER BY seq DESC LIMIT $3) t ORDER BY seq",
              [user, node, q.max],
            )
          : await this.pool.query<{ item_id: string; payload: string }>("SELECT item_id, payload FROM pep_items WHERE username = $1 AND node = $2 ORDER BY seq", [user, node]);
    return r.rows.map((x) => ({ id: x.item_id, payload: x.payload }));
  }

  deleteNode(user: string, node: string): Promise<boolean> {
    return transaction(this.pool, async (c) => {
      await c.query("DELETE FROM pep_items WHERE username = $1 AND node = $2", [user, node]);
      return ((await c.query("DELETE FROM pep_nodes WHERE username = $1 AND node = $2", [user, node])).rowCount ?? 0) > 0;
    });
  }

  configure(user: string, node: string, cfg: NodeConfig): Promise<boolean> {
    return transaction(this.pool, async (c) => {
      const r = await c.query("UPDATE pep_nodes SET access_model = $3, persist_items = $4, max_items = $5 WHERE username = $1 AND node = $2", [
        user,
        node,
        cfg.accessModel,
        cfg.persistItems,
        cfg.maxItems,
      ]);
      if ((r.rowCount ?? 0) === 0) return false;
      if (cfg.persistItems) await c.query(TRIM, [user, node, cfg.maxItems]);
      else await c.query("DELETE FROM pep_items WHERE username = $1 AND node = $2", [user, node]);
      return true;
    });
  }

  async lastItems(users: readonly string[], nodes: readonly string[]): Promise<LastItem[]> {
    if (users.length === 0 || nodes.length === 0) return [];
    const r = await this.pool.query<{ username: string; node: string; item_id: string; payload: string; access_model: string }>(
      `SELECT DISTINCT ON (i.username, i.node) i.username, i.node, i.item_id, i.payload, n.access_model
         FROM pep_nodes n JOIN pep_items i ON i.username = n.username AND i.node = n.node
        WHERE n.username = ANY($1::text[]) AND n.node = ANY($2::text[])
        ORDER BY i.username, i.node, i.seq DESC`,
      [[...users], [...nodes]],
    );
    return r.rows.map((x) => ({ user: x.username, node: x.node, id: x.item_id, payload: x.payload, accessModel: x.access_model as AccessModel }));
  }
}
