import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { AdminConfig } from "../config/config.js";
import type { Logger } from "../log/logger.js";

/** What the admin routes read: one worker's own state, or a host primary asking its workers. */
export interface AdminSource {
  /** The Prometheus text exposition and its content type. */
  metrics(): Promise<{ contentType: string; text: string }>;
  /** Why the host should not get clients now; empty when ready. */
  problems(): Promise<string[]>;
}

/**
 * The admin HTTP listener (docs/operations.md, "Metrics and health"):
 * GET /metrics, /healthz (the process answers: 200), /readyz (200 or 503
 * with the reasons). It is bound before the server starts, so a port in use
 * stops the start, and answers "starting" until serve() is given a source.
 */
export class AdminServer {
  private source: AdminSource | null = null;

  private constructor(
    private readonly http: HttpServer,
    readonly port: number,
    private readonly log: Logger,
  ) {
    http.on("request", (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res));
  }

  static async start(cfg: Pick<AdminConfig, "host" | "port">, log: Logger): Promise<AdminServer> {
    const http = createServer();
    await new Promise<void>((resolve, reject) => {
      http.once("error", reject);
      http.listen(cfg.port, cfg.host, () => {
        http.removeListener("error", reject);
        resolve();
      });
    });
    const port = (http.address() as AddressInfo).port;
    log.info("admin listening", { host: cfg.host, port, routes: "/metrics /healthz /readyz" });
    return new AdminServer(http, port, log);
  }

  serve(source: AdminSource): void {
    this.source = source;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?", 1)[0];
    if (req.method !== "GET" && req.method !== "HEAD") return reply(res, 405, "GET or HEAD\n", { Allow: "GET, HEAD" });
    const source = this.source;
    try {
      switch (path) {
        case "/healthz":
          return reply(res, 200, "ok\n");
        case "/readyz": {
          const problems = source === null ? ["starting"] : await source.problems();
          return problems.length === 0 ? reply(res, 200, "ready\n") : reply(res, 503, `not ready: ${problems.join("; ")}\n`);
        }
        case "/metrics": {
          if (source === null) return reply(res, 503, "starting\n");
          const { contentType, text } = await source.metrics();
          return reply(res, 200, text, { "Content-Type": contentType });
        }
        default:
          return reply(res, 404, "not found: try /metrics, /healthz, /readyz\n");
      }
    } catch (e) {
      this.log.error("admin request failed", { path, error: (e as Error).stack });
      reply(res, 500, "internal error\n");
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.http.close(() => resolve());
      // Prometheus keeps its connection open between scrapes.
      this.http.closeAllConnections();
    });
  }
}

function reply(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store", ...headers });
  res.end(body);
}
