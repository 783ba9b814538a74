import type { Registry } from "prom-client";
import type { Server } from "../server/server.js";
import type { AdminSource } from "./http.js";
import { workerRegistry } from "./registry.js";
import { workerProblems } from "./health.js";

/** The admin routes of a worker that serves them itself (a host of one worker, tests). */
export function workerSource(server: Server, reg: Registry = workerRegistry(server)): AdminSource {
  return {
    metrics: async () => ({ contentType: reg.contentType, text: await reg.metrics() }),
    problems: () => workerProblems(server),
  };
}
