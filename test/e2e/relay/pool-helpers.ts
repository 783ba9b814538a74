import type { RelayClient, IncomingRequest } from "../../../src/relay/client.js";

/** A gateway of a pool, served by our relay client: what it was asked, and how it answers. */
export interface Gateway {
  client: RelayClient;
  /** Requests it received. */
  served: number;
  /** Requests received and not yet answered. */
  holding: IncomingRequest[];
}

/**
 * Serves `client` as a gateway answering each request `delayMs` after it came
 * (0: at once), or never (`null`: kept in `holding`).
 */
export function gateway(client: RelayClient, delayMs: number | null): Gateway {
  const g: Gateway = { client, served: 0, holding: [] };
  client.on("request", (r: IncomingRequest) => {
    g.served++;
    if (delayMs === null) g.holding.push(r);
    else if (delayMs === 0) r.respond(client.jid);
    else setTimeout(() => r.respond(client.jid), delayMs);
  });
  return g;
}

/**
 * `total` requests to `to`, `inflight` of them outstanding at any time (a new
 * one as each answer arrives); resolves with how many answers came from each
 * responder's full address.
 */
export async function ask(asker: RelayClient, to: string, total: number, inflight: number, ttl?: number): Promise<Map<string, number>> {
  const from = new Map<string, number>();
  let sent = 0;
  const one = async (): Promise<void> => {
    while (sent < total) {
      sent++;
      const res = await asker.request(to, "work", ttl);
      const who = String(res.header.from);
      from.set(who, (from.get(who) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: inflight }, one));
  return from;
}
