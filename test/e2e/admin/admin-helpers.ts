import { request } from "node:http";
import { Writable } from "node:stream";
import winston from "winston";
import { createLogger, type Logger } from "../../../src/log/logger.js";
import { AdminServer } from "../../../src/admin/http.js";
import { workerSource } from "../../../src/admin/worker.js";
import { silentLogger } from "../../../src/log/logger.js";
import type { Server } from "../../../src/server/server.js";

export interface HttpReply {
  status: number;
  type: string;
  body: string;
}

/** One real HTTP request to 127.0.0.1:port. */
export function http(port: number, path: string, method = "GET", ms = 5000): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method, timeout: ms, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"] ?? ""), body }));
    });
    req.on("timeout", () => req.destroy(new Error(`no answer to ${path} in ${ms} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/** One series of a scrape: name, labels, value. */
export interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text format, as far as prom-client writes it. */
export function parseExposition(text: string): Series[] {
  const out: Series[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** A scrape, summed over every series of `name` whose labels include `labels`. */
export class Scrape {
  constructor(readonly series: Series[]) {}

  get(name: string, labels: Record<string, string> = {}): number {
    let sum = 0;
    let found = false;
    for (const s of this.series) {
      if (s.name !== name || !Object.entries(labels).every(([k, v]) => s.labels[k] === v)) continue;
      sum += s.value;
      found = true;
    }
    if (!found) throw new Error(`no series ${name} ${JSON.stringify(labels)}`);
    return sum;
  }
}

export async function scrape(port: number): Promise<Scrape> {
  const r = await http(port, "/metrics");
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}: ${r.body}`);
  return new Scrape(parseExposition(r.body));
}

/** Polls `f` until it returns true; fails with `what` after `ms`. */
export async function until(what: string, f: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The admin listener of a test server on a free loopback port, serving that worker as a host of one does. */
export async function adminFor(server: Server): Promise<AdminServer> {
  const admin = await AdminServer.start({ host: "127.0.0.1", port: 0 }, silentLogger());
  admin.serve(workerSource(server));
  return admin;
}

/**
 * A logger made by createLogger whose output is kept instead of going to
 * stderr: each line as written in `text`, and parsed in `lines` (format json).
 */
export function capturingLogger(level: "info" | "debug" = "info", format: "json" | "text" = "json", meta?: { worker: string }): { log: Logger; lines: Record<string, unknown>[]; text: string[] } {
  const log = createLogger({ level, format }, meta);
  const lines: Record<string, unknown>[] = [];
  const text: string[] = [];
  log.clear();
  log.add(
    new winston.transports.Stream({
      stream: new Writable({
        write(chunk: Buffer, _enc, cb) {
          for (const l of chunk.toString("utf8").split("\n")) {
            if (l.trim() === "") continue;
            text.push(l);
            if (format === "json") lines.push(JSON.parse(l) as Record<string, unknown>);
          }
          cb();
        },
      }),
    }),
  );
  return { log, lines, text };
}
