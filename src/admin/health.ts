import type { Server } from "../server/server.js";

/**
 * Why this worker should not be sent clients now; empty when it is ready.
 * Checked on each /readyz: every listener accepting, the store answering a
 * cheap query, the cluster bus connected. Each reason is short and names the part.
 */
export async function workerProblems(server: Server): Promise<string[]> {
  const out: string[] = [];
  if (server.draining) out.push("draining");
  const closed = server.listeners.filter((l) => !l.open);
  if (closed.length > 0) out.push(`listeners closed: ${closed.map((l) => `${l.config.protocol}/${l.config.transport} ${l.config.host}:${l.port}`).join(", ")}`);
  try {
    // Bounded by the store's own timeouts (PostgreSQL: connect and statement timeouts).
    await server.store.ping();
  } catch (e) {
    out.push(`store: ${(e as Error).message}`);
  }
  if (!server.bus.connected) out.push("cluster bus: disconnected");
  return out;
}
