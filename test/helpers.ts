import { mkdtempSync, rmSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { validate, type Config } from "../src/config/config.js";
import { Server } from "../src/server/server.js";
import { silentLogger, type Logger } from "../src/log/logger.js";
import { deriveCredentials } from "../src/store/scram.js";
import { stopReading } from "../src/transport/node-internals.js";
import { createServer, connect, type Socket } from "node:net";

/** test/fixtures, found from dist/test at run time. */
export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "test", "fixtures");
export const TLS_FILES = { cert: join(FIXTURES, "localhost.crt"), key: join(FIXTURES, "localhost.key") };
export const CA = readFileSync(TLS_FILES.cert);

export interface TestServer {
  server: Server;
  config: Config;
  dir: string;
  port(protocol: "relay" | "xmpp", transport: string): number;
  stop(): Promise<void>;
}

/**
 * Starts a real server on ephemeral loopback ports with a fresh SQLite store
 * in a temp dir (or the `storage` the overrides give, e.g. a test PostgreSQL). `overrides` is laid over a config like a user's file would be.
 * `users` are created before it starts (SCRAM at the minimum 4096 iterations).
 */
export async function startServer(overrides: Record<string, unknown> = {}, users: Record<string, string> = {}, log: Logger = silentLogger()): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-test-"));
  const config = validate({
    storage: { type: "sqlite", path: join(dir, "db.sqlite") },
    listeners: [
      { protocol: "relay", transport: "tcp", host: "127.0.0.1", port: 0 },
      { protocol: "relay", transport: "tls", host: "127.0.0.1", port: 0, tls: TLS_FILES },
      { protocol: "relay", transport: "websocket", host: "127.0.0.1", port: 0, path: "/relay" },
    ],
    ...overrides,
  });
  const server = await Server.start(config, { log });
  for (const [u, p] of Object.entries(users)) await server.store.putUser(u, await deriveCredentials(p, config.auth.scramIterations));
  return {
    server,
    config,
    dir,
    port: (protocol, transport) => server.port(protocol, transport),
    stop: async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Resolves once `pred()` holds, looking every `everyMs`; rejects at the deadline
 * naming `what` (a function is worded only then, e.g. with a child's output so far).
 * For state that has no event to wait on (a map's size, a log line in a child's
 * output): the deadline is what keeps the loop honest.
 */
export async function waitUntil(pred: () => boolean | Promise<boolean>, ms: number, what: string | (() => string), everyMs = 5): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === "string" ? what : what()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** `p`, or a rejection naming `what` when it has not settled within `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string | (() => string)): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${typeof what === "string" ? what : what()}`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(t));
}

/** Resolves when `emitter` emits `event`, or rejects after `ms`. */
export function once<T = unknown>(emitter: NodeJS.EventEmitter, event: string, ms = 2000): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${event}`)), ms);
    emitter.once(event, (v: T) => {
      clearTimeout(t);
      resolve(v);
    });
  });
}

/**
 * A TCP server on 127.0.0.1 that reads none of the connections it accepts (as a worker holds a login it hands
 * off): `pair()` connects a client and gives both ends; `close()` stops listening.
 */
export async function heldTcp(): Promise<{ pair(): Promise<{ client: Socket; theirs: Socket }>; close(): void }> {
  const accepted: Socket[] = [];
  const server = createServer((s) => {
    stopReading(s);
    accepted.push(s);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  return {
    pair: async () => {
      const n = accepted.length;
      const client = connect(port, "127.0.0.1");
      await once(client, "connect");
      await waitUntil(() => accepted.length > n, 2000, "the server accepted");
      return { client, theirs: accepted[n] };
    },
    close: () => server.close(),
  };
}

/** XMPP listeners for tests: plain tcp (STARTTLS offered when `starttls`), and direct TLS. */
export function xmppListeners(starttls = false): Record<string, unknown>[] {
  return [
    { protocol: "relay", transport: "tcp", host: "127.0.0.1", port: 0 },
    starttls ? { protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0, tls: TLS_FILES } : { protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 },
    { protocol: "xmpp", transport: "tls", host: "127.0.0.1", port: 0, tls: TLS_FILES },
  ];
}

/** startServer with XMPP listeners (and one relay tcp listener for cross-protocol tests). */
export function startXmppServer(overrides: Record<string, unknown> = {}, users: Record<string, string> = {}, starttls = false): Promise<TestServer> {
  return startServer({ listeners: xmppListeners(starttls), ...overrides }, users);
}
