/**
 * XEP-0163 Personal Eventing: each account's nodes (by name, with their
 * XEP-0060 configuration) and their items, the newest last. Schema component
 * "pep" on both backends, emptied with the account. Read and written per
 * request, never on the forwarding path. Users are named by their local part.
 */

/** XEP-0060 §4.5: who may read a node and get its notifications (PEP: presence by default, XEP-0163 §4.5). */
export type AccessModel = "presence" | "open" | "whitelist";

export interface NodeConfig {
  accessModel: AccessModel;
  /** pubsub#persist_items: items are kept (false: only notified). */
  persistItems: boolean;
  /** pubsub#max_items: items kept at most, the oldest dropped first. */
  maxItems: number;
}

export interface PepItem {
  id: string;
  /** The item's payload as serialized (the one child of <item/>). */
  payload: string;
}

/** What a publish did: stored (or only notified: persist_items false), or why not. */
export type PublishOutcome = "published" | "too-many-nodes" | "precondition-not-met";

export interface PublishRequest {
  node: string;
  item: PepItem;
  /** The configuration a node created by this publish gets (XEP-0163 §3 auto-create). */
  create: NodeConfig;
  /** XEP-0223 publish-options: what an existing node's configuration must be; null: anything. */
  require: Partial<NodeConfig> | null;
  /** Nodes the account may have (xmpp.pep.maxNodes). */
  maxNodes: number;
}

export interface LastItem extends PepItem {
  user: string;
  node: string;
  accessModel: AccessModel;
}

export interface PepStore {
  /** The node's configuration, or null when there is none. */
  node(user: string, node: string): Promise<NodeConfig | null>;
  /** Every node of the account, by name. */
  nodes(user: string): Promise<{ node: string; config: NodeConfig }[]>;
  /**
   * One transaction: creates the node when absent (unless the account already
   * has maxNodes), checks `require` against an existing node, then keeps the
   * item (replacing one with its id, which becomes the newest) and drops the
   * oldest past max_items. Resolves to what happened and the node's configuration.
   */
  publish(user: string, r: PublishRequest): Promise<{ outcome: PublishOutcome; config: NodeConfig }>;
  /** XEP-0060 §8.1: a node with this configuration; false: it exists already, or the account has maxNodes. */
  create(user: string, node: string, config: NodeConfig, maxNodes: number): Promise<"created" | "exists" | "too-many-nodes">;
  /** Removes one item; null: no such node, false: no such item. */
  retract(user: string, node: string, id: string): Promise<boolean | null>;
  /** Items oldest first: the newest `max`, or those with `ids`, or all; null: no such node. */
  items(user: string, node: string, q: { max?: number; ids?: readonly string[] }): Promise<PepItem[] | null>;
  /** Removes the node and its items; false: there was none. */
  deleteNode(user: string, node: string): Promise<boolean>;
  /** Sets the node's configuration and drops items past its max_items (all of them when persist_items is off); false: no such node. */
  configure(user: string, node: string, config: NodeConfig): Promise<boolean>;
  /** The newest item of each of these users' nodes named in `nodes` (XEP-0163 §4.3.4: sent when a contact comes online). */
  lastItems(users: readonly string[], nodes: readonly string[]): Promise<LastItem[]>;
}

/** Whether an existing node's configuration satisfies XEP-0223 publish-options. */
export function satisfies(config: NodeConfig, require: Partial<NodeConfig> | null): boolean {
  if (require === null) return true;
  return (
    (require.accessModel === undefined || require.accessModel === config.accessModel) &&
    (require.persistItems === undefined || require.persistItems === config.persistItems) &&
    (require.maxItems === undefined || require.maxItems === config.maxItems)
  );
}
