import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";

export type Protocol = "relay" | "xmpp";
export type Transport = "tcp" | "tls" | "websocket";

export interface ListenerConfig {
  protocol: Protocol;
  transport: Transport;
  host: string;
  port: number;
  /** tls: required; websocket: optional (wss). Paths are relative to the config file. */
  tls?: { cert: string; key: string };
  /** websocket: the HTTP path to accept upgrades on. */
  path?: string;
}

export interface TimeoutConfig {
  defaultMs: number;
  minMs: number;
  maxMs: number;
}

export interface Config {
  domain: string;
  log: { level: "error" | "warn" | "info" | "debug"; format: "text" | "json" };
  listeners: ListenerConfig[];
  storage: StorageConfig;
  timeouts: {
    sweepIntervalMs: number;
    relay: TimeoutConfig;
    xmpp: TimeoutConfig & { byNamespace: Record<string, number> };
  };
  limits: {
    maxFrameBytes: number;
    maxStanzaBytes: number;
    maxPendingPerSession: number;
    maxInboundPerSession: number;
    maxOutboundBytes: number;
    authTimeoutMs: number;
    /** Deprecated: xmpp.pingAfterMs/pingTimeoutMs and relay.pingAfterMs/pingTimeoutMs; null: not set. */
    idleTimeoutMs: number | null;
    /** TCP keepalive on every client socket (SO_KEEPALIVE, first probe after this much silence); 0: off. */
    tcpKeepAliveMs: number;
    maxAuthAttempts: number;
  };
  auth: { scramIterations: number; tokenSecret: string | null };
  /** Socket output (docs/architecture.md, "The writer thread"). */
  /** true: where there are two cores; "always": on one core too (for measuring it); false: never. */
  io: { writerThread: boolean | "always" };
  xmpp: XmppConfig;
  relay: RelayConfig;
  cluster: ClusterConfig;
  admin: AdminConfig;
  /**
   * SIGTERM or Server.stop(): how long the graceful drain may take (queues flushed, streams ended with
   * a shutdown notice); what is left after it is destroyed. The host's own kill timer is longer.
   */
  drainTimeoutMs: number;
}

/** Where accounts, rosters and offline messages live (docs/configuration.md, docs/operations.md "Storage"). */
/** storage.postgres (docs/configuration.md). */
export interface PostgresConfig {
  /** libpq-style URL; when set, host, port, user, password and database are not used. */
  connectionString: string | null;
  host: string;
  port: number;
  user: string;
  /** null: PGPASSWORD or ~/.pgpass, as libpq does. */
  password: string | null;
  database: string;
  /** Connections per worker process. */
  poolSize: number;
  /** Connecting (TCP, TLS, authentication) longer than this fails the call that waited for it. */
  connectTimeoutMs: number;
  /** The server cancels any statement running longer (statement_timeout); the client gives up a little later. */
  statementTimeoutMs: number;
  /** TLS to the server; null: none (unless the connection string's sslmode asks for it). */
  ssl: { ca: string | null; rejectUnauthorized: boolean } | null;
}

export interface StorageConfig {
  /** sqlite: one file, embedded (one host); postgres: one database every host shares. */
  type: "sqlite" | "postgres";
  /** sqlite: the database file. */
  path: string;
  /** sqlite: how long a call retries, on a timer, a file another process holds locked before it fails. */
  lockTimeoutMs: number;
  postgres: PostgresConfig;
  /** The queue of offline messages waiting to be written, per worker (docs/architecture.md, "The store"). */
  offlineWrites: {
    /** Messages waiting at most; past it a message is bounced to its sender at once. */
    maxQueued: number;
    /** Messages written in one transaction at most. */
    maxBatch: number;
  };
}

/** The admin HTTP listener: /metrics, /healthz, /readyz (docs/operations.md, "Metrics and health"). One per host. */
export interface AdminConfig {
  enabled: boolean;
  /** Loopback by default: the routes have no authentication. */
  host: string;
  /** 0: any free port (tests). */
  port: number;
}

/** How workers find each other (docs/configuration.md, docs/operations.md). */
export interface ClusterConfig {
  /** local: one worker in one process; nats: workers (processes, hosts) talk over NATS. */
  bus: "local" | "nats";
  hostAddress: string;
  vnodes: number;
  /** Worker processes on this host under node:cluster; 0: one per core. More than one needs bus nats. */
  workers: number;
  /** connectTimeoutMs: how long a worker tries to reach NATS at start before it gives up (0: once). */
  nats: { servers: string[]; subject: string; heartbeatMs: number; connectTimeoutMs: number };
  /** Workers of this host send each other bus messages over Unix domain sockets; NATS carries membership and other hosts' traffic. */
  hostLinks: boolean;
  /** With several workers: a plain TCP XMPP connection moves to the worker that owns its user after SASL (docs/architecture.md, "Connections on their owner"). */
  handoff: boolean;
  /** After a worker was dropped for silence (dead, or stopped), owners hold what comes for unbound users this long for their binds; 0: the heal window (docs/architecture.md, "Hold"). */
  holdAfterExpiryMs: number;
  /** Messages held by the worker that accepted them until settled (docs/architecture.md, "Custody"). */
  custody: { confirmTimeoutMs: number; maxTries: number; dedupWindowMs: number; maxHeld: number; heldMaxMs: number; resumeGraceMs: number };
}

/** Dead-peer detection of one protocol (docs/operations.md, "Keepalives for NAT and mobile"). */
export interface PingConfig {
  /** Silence on a bound session after which the server pings the client; 0: never. */
  pingAfterMs: number;
  /** No traffic within this long after the ping: the connection counts as dropped. */
  pingTimeoutMs: number;
}

/** Relay front end (docs/relay-protocol.md). */
export type RelayConfig = PingConfig;

/** XMPP front end (docs/xmpp.md). */
export interface XmppConfig extends PingConfig {
  /** Clients must use TLS (STARTTLS or direct TLS) before SASL, like Prosody's c2s_require_encryption. */
  requireEncryption: boolean;
  /** Connections from 127.0.0.0/8 and ::1 may authenticate without TLS even when requireEncryption is on. */
  exemptLoopback: boolean;
  /** Offer SASL PLAIN on connections without TLS (otherwise PLAIN only over TLS). */
  allowPlainWithoutTls: boolean;
  /** Messages stored per offline user; past it the sender gets <resource-constraint/>. */
  offlineQueueMax: number;
  /** Roster items per user (also caps unanswered subscription requests). */
  maxRosterItems: number;
  /** XEP-0191: JIDs one user may block. */
  maxBlocklistItems: number;
  /** XEP-0054: the largest vCard a user may store, in bytes as serialized. */
  maxVcardBytes: number;
  /** XEP-0092: the server's software version tells its operating system (off: only name and version). */
  versionShowsOs: boolean;
  /** Failed authentications from one IP address within authFailureWindowMs before it is refused. */
  maxAuthFailuresPerIp: number;
  authFailureWindowMs: number;
  /** XEP-0198 stream management. */
  sm: StreamManagementConfig;
  /** XEP-0313 message archives. */
  mam: MamConfig;
}

/** XEP-0313 Message Archive Management (docs/xmpp.md, "Message archives"). */
export interface MamConfig {
  /** Archive chat and normal messages with a body, and answer queries; off: neither, nor advertised. */
  enabled: boolean;
  /** What is archived for a user who set no preferences (XEP-0313 §6). */
  defaultMode: "always" | "never" | "roster";
  /** RSM: results per page at most (a larger <max/> is cut to it), and the page size when none is asked. */
  maxPageSize: number;
  /** Messages older than this many days are removed (swept hourly); 0: kept for ever. */
  retentionDays: number;
  /** Messages waiting to be written per worker; past it the archive misses them (counted, logged). */
  maxQueued: number;
  /** Messages per write (one transaction, one statement on PostgreSQL) at most. */
  maxBatch: number;
}

/** XEP-0198 (docs/xmpp.md): when the server asks for acks, and how much unacked output a client may have. */
export interface StreamManagementConfig {
  /** Ask for an ack (<r/>) after this many stanzas sent since the last request; 0: never by count. */
  ackEveryStanzas: number;
  /** Ask for an ack this long after the first stanza sent since the last request; 0: never by time. */
  ackEveryMs: number;
  /** More sent stanzas unacknowledged than this: the client is cut as a slow consumer. */
  maxUnacked: number;
  /** How long a session whose connection dropped stays resumable (announced as max, in seconds); 0: no resumption. */
  resumeTimeoutMs: number;
}

/** The embedded defaults: what `npm start` runs with when the file says nothing else. */
export function defaults(): Config {
  return {
    domain: "localhost",
    log: { level: "info", format: "text" },
    listeners: [
      { protocol: "relay", transport: "tcp", host: "127.0.0.1", port: 7422 },
      { protocol: "relay", transport: "websocket", host: "127.0.0.1", port: 7423, path: "/relay" },
      // No certificate by default: plain TCP on loopback (see xmpp.exemptLoopback); add "tls" to offer STARTTLS.
      { protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 5222 },
    ],
    storage: {
      type: "sqlite",
      path: "data/switchboard.db",
      lockTimeoutMs: 5000,
      postgres: {
        connectionString: null,
        host: "127.0.0.1",
        port: 5432,
        user: "switchboard",
        password: null,
        database: "switchboard",
        poolSize: 10,
        connectTimeoutMs: 5000,
        statementTimeoutMs: 5000,
        ssl: null,
      },
      offlineWrites: { maxQueued: 10000, maxBatch: 100 },
    },
    timeouts: {
      sweepIntervalMs: 50,
      relay: { defaultMs: 5000, minMs: 100, maxMs: 120000 },
      xmpp: { defaultMs: 30000, minMs: 1000, maxMs: 300000, byNamespace: { "urn:xmpp:ping": 10000 } },
    },
    limits: {
      maxFrameBytes: 1048576,
      maxStanzaBytes: 262144,
      maxPendingPerSession: 1000,
      maxInboundPerSession: 10000,
      maxOutboundBytes: 8388608,
      authTimeoutMs: 10000,
      idleTimeoutMs: null,
      tcpKeepAliveMs: 60000,
      maxAuthAttempts: 3,
    },
    auth: { scramIterations: 4096, tokenSecret: null },
    io: { writerThread: true },
    xmpp: {
      requireEncryption: true,
      exemptLoopback: true,
      allowPlainWithoutTls: false,
      offlineQueueMax: 100,
      maxRosterItems: 1000,
      maxBlocklistItems: 1000,
      maxVcardBytes: 65536,
      versionShowsOs: false,
      maxAuthFailuresPerIp: 10,
      authFailureWindowMs: 600000,
      pingAfterMs: 60000,
      pingTimeoutMs: 30000,
      sm: { ackEveryStanzas: 10, ackEveryMs: 5000, maxUnacked: 1000, resumeTimeoutMs: 300000 },
      mam: { enabled: false, defaultMode: "always", maxPageSize: 100, retentionDays: 0, maxQueued: 100000, maxBatch: 500 },
    },
    relay: { pingAfterMs: 60000, pingTimeoutMs: 30000 },
    cluster: {
      bus: "local",
      hostAddress: "127.0.0.1",
      vnodes: 2048,
      workers: 1,
      nats: { servers: ["nats://127.0.0.1:4222"], subject: "switchboard", heartbeatMs: 1000, connectTimeoutMs: 60000 },
      hostLinks: true,
      handoff: false,
      holdAfterExpiryMs: 0,
      custody: { confirmTimeoutMs: 5000, maxTries: 5, dedupWindowMs: 10000, maxHeld: 100000, heldMaxMs: 900000, resumeGraceMs: 10000 },
    },
    admin: { enabled: true, host: "127.0.0.1", port: 9464 },
    drainTimeoutMs: 10000,
  };
}

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(`config: ${key}: ${message}`);
  }
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const isObject = (v: unknown): v is Record<string, Json> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Lays `input` over the defaults key by key. Every key must exist in the
 * defaults and keep its type, so a typo is an error naming it, not a silent default.
 */
function overlay(base: Record<string, unknown>, input: unknown, path: string, open: Set<string>): void {
  if (!isObject(input)) throw new ConfigError(path || "(root)", "must be an object");
  for (const [k, v] of Object.entries(input)) {
    const key = path ? `${path}.${k}` : k;
    if (open.has(path)) {
      base[k] = v;
      continue;
    }
    if (!Object.hasOwn(base, k)) throw new ConfigError(key, "unknown key");
    const cur = base[k];
    if (isObject(cur)) overlay(cur as Record<string, unknown>, v, key, open);
    else base[k] = v;
  }
}

function need(cond: boolean, key: string, msg: string): void {
  if (!cond) throw new ConfigError(key, msg);
}

function int(v: unknown, key: string, min: number, max = Number.MAX_SAFE_INTEGER): void {
  need(Number.isInteger(v) && (v as number) >= min && (v as number) <= max, key, `must be an integer in [${min}, ${max}]`);
}

function oneOf(v: unknown, key: string, allowed: readonly string[]): void {
  need(allowed.includes(v as string), key, `must be one of ${allowed.join(", ")}`);
}

function str(v: unknown, key: string): void {
  need(typeof v === "string" && v.length > 0, key, "must be a non-empty string");
}

function storage(S: StorageConfig, baseDir: string): void {
  oneOf(S.type, "storage.type", ["sqlite", "postgres"]);
  str(S.path, "storage.path");
  if (S.path !== ":memory:" && !isAbsolute(S.path)) S.path = resolve(baseDir, S.path);
  int(S.lockTimeoutMs, "storage.lockTimeoutMs", 0, 600000);
  const P = S.postgres;
  need(P.connectionString === null || (typeof P.connectionString === "string" && /^postgres(ql)?:\/\//.test(P.connectionString)), "storage.postgres.connectionString", "must be null or a postgres:// URL");
  str(P.host, "storage.postgres.host");
  int(P.port, "storage.postgres.port", 1, 65535);
  str(P.user, "storage.postgres.user");
  need(P.password === null || typeof P.password === "string", "storage.postgres.password", "must be null (PGPASSWORD, ~/.pgpass) or a string");
  str(P.database, "storage.postgres.database");
  int(P.poolSize, "storage.postgres.poolSize", 1, 1000);
  int(P.connectTimeoutMs, "storage.postgres.connectTimeoutMs", 100, 600000);
  int(P.statementTimeoutMs, "storage.postgres.statementTimeoutMs", 100, 600000);
  if (P.ssl !== null) {
    const ssl = P.ssl as unknown;
    need(isObject(ssl), "storage.postgres.ssl", "must be null or an object with ca and rejectUnauthorized");
    const given = ssl as Record<string, unknown>;
    for (const k of Object.keys(given)) oneOf(k, `storage.postgres.ssl.${k}`, ["ca", "rejectUnauthorized"]);
    const ca = given.ca ?? null;
    need(ca === null || (typeof ca === "string" && ca.length > 0), "storage.postgres.ssl.ca", "must be null or the path of a CA certificate file");
    const reject = given.rejectUnauthorized ?? true;
    need(typeof reject === "boolean", "storage.postgres.ssl.rejectUnauthorized", "must be true or false");
    P.ssl = { ca: ca === null ? null : resolve(baseDir, ca as string), rejectUnauthorized: reject as boolean };
  }
  int(S.offlineWrites.maxQueued, "storage.offlineWrites.maxQueued", 1, 10000000);
  int(S.offlineWrites.maxBatch, "storage.offlineWrites.maxBatch", 1, 100000);
}

function timeouts(t: TimeoutConfig, key: string): void {
  int(t.minMs, `${key}.minMs`, 1);
  int(t.maxMs, `${key}.maxMs`, t.minMs);
  int(t.defaultMs, `${key}.defaultMs`, t.minMs, t.maxMs);
}

function pings(p: PingConfig, key: string): void {
  int(p.pingAfterMs, `${key}.pingAfterMs`, 0);
  int(p.pingTimeoutMs, `${key}.pingTimeoutMs`, 1);
}

/**
 * limits.idleTimeoutMs (deprecated) meant: ping after this much silence, close
 * after as much again. It stands in for the ping keys a file does not set.
 */
function pingFallback(input: unknown, c: Config): void {
  const idle = c.limits.idleTimeoutMs;
  if (idle === null || !isObject(input)) return;
  for (const key of ["xmpp", "relay"] as const) {
    const given = input[key];
    if (isObject(given) && (given.pingAfterMs !== undefined || given.pingTimeoutMs !== undefined)) continue;
    c[key].pingAfterMs = idle;
    c[key].pingTimeoutMs = Math.max(1, idle);
  }
}

export function validate(input: unknown, baseDir = process.cwd()): Config {
  const c = defaults();
  // Free-form maps whose keys are the user's (namespaces).
  overlay(c as unknown as Record<string, unknown>, input, "", new Set(["timeouts.xmpp.byNamespace"]));

  str(c.domain, "domain");
  need(/^[a-z0-9.-]+$/i.test(c.domain), "domain", "must be a host name");
  c.domain = c.domain.toLowerCase();
  oneOf(c.log.level, "log.level", ["error", "warn", "info", "debug"]);
  oneOf(c.log.format, "log.format", ["text", "json"]);

  need(Array.isArray(c.listeners), "listeners", "must be an array");
  const seen = new Set<string>();
  c.listeners = c.listeners.map((l, i) => {
    const key = `listeners[${i}]`;
    need(isObject(l), key, "must be an object");
    for (const k of Object.keys(l)) oneOf(k, `${key}.${k}`, ["protocol", "transport", "host", "port", "tls", "path"]);
    oneOf(l.protocol, `${key}.protocol`, ["relay", "xmpp"]);
    oneOf(l.transport, `${key}.transport`, ["tcp", "tls", "websocket"]);
    str(l.host, `${key}.host`);
    int(l.port, `${key}.port`, 0, 65535);
    if (l.port !== 0) {
      need(!seen.has(`${l.host}:${l.port}`), `${key}.port`, `${l.host}:${l.port} is used by another listener`);
      seen.add(`${l.host}:${l.port}`);
    }
    if (l.transport === "tls") need(l.tls !== undefined, `${key}.tls`, "is required for transport tls");
    if (l.tls !== undefined) {
      need(isObject(l.tls), `${key}.tls`, "must be an object with cert and key");
      str(l.tls.cert, `${key}.tls.cert`);
      str(l.tls.key, `${key}.tls.key`);
      l = { ...l, tls: { cert: resolve(baseDir, l.tls.cert), key: resolve(baseDir, l.tls.key) } };
    }
    if (l.path !== undefined) {
      need(l.transport === "websocket", `${key}.path`, "is only for transport websocket");
      need(typeof l.path === "string" && l.path.startsWith("/"), `${key}.path`, "must start with /");
    }
    // RFC 7395 needs the HTTP path the upgrade goes to (and XEP-0156 names it).
    if (l.protocol === "xmpp" && l.transport === "websocket") need(l.path !== undefined, `${key}.path`, "is required for xmpp over websocket (e.g. /xmpp-websocket)");
    return l;
  });

  storage(c.storage, baseDir);

  timeouts(c.timeouts.relay, "timeouts.relay");
  timeouts(c.timeouts.xmpp, "timeouts.xmpp");
  need(isObject(c.timeouts.xmpp.byNamespace), "timeouts.xmpp.byNamespace", "must be an object");
  for (const [ns, ms] of Object.entries(c.timeouts.xmpp.byNamespace)) {
    int(ms, `timeouts.xmpp.byNamespace.${ns}`, c.timeouts.xmpp.minMs, c.timeouts.xmpp.maxMs);
  }
  // Seed 004 §5: the sweep must come round faster than the shortest timeout.
  const shortest = Math.min(c.timeouts.relay.minMs, c.timeouts.xmpp.minMs);
  int(c.timeouts.sweepIntervalMs, "timeouts.sweepIntervalMs", 1, Math.max(1, shortest));

  const L = c.limits;
  int(L.maxFrameBytes, "limits.maxFrameBytes", 64, 0x7fffffff);
  int(L.maxStanzaBytes, "limits.maxStanzaBytes", 1024);
  int(L.maxPendingPerSession, "limits.maxPendingPerSession", 1);
  int(L.maxInboundPerSession, "limits.maxInboundPerSession", 1);
  int(L.maxOutboundBytes, "limits.maxOutboundBytes", 1024);
  int(L.authTimeoutMs, "limits.authTimeoutMs", 100);
  if (L.idleTimeoutMs !== null) int(L.idleTimeoutMs, "limits.idleTimeoutMs", 0);
  need(L.tcpKeepAliveMs === 0 || (Number.isInteger(L.tcpKeepAliveMs) && L.tcpKeepAliveMs >= 1000 && L.tcpKeepAliveMs <= 7200000), "limits.tcpKeepAliveMs", "must be 0 (off) or an integer in [1000, 7200000]");
  int(L.maxAuthAttempts, "limits.maxAuthAttempts", 1);
  int(c.drainTimeoutMs, "drainTimeoutMs", 100, 600000);

  int(c.auth.scramIterations, "auth.scramIterations", 4096);
  need(c.auth.tokenSecret === null || (typeof c.auth.tokenSecret === "string" && c.auth.tokenSecret.length >= 16), "auth.tokenSecret", "must be null or a string of at least 16 characters");

  need(typeof c.io.writerThread === "boolean" || c.io.writerThread === "always", "io.writerThread", 'must be true, false or "always"');

  const X = c.xmpp;
  for (const k of ["requireEncryption", "exemptLoopback", "allowPlainWithoutTls"] as const) need(typeof X[k] === "boolean", `xmpp.${k}`, "must be true or false");
  int(X.offlineQueueMax, "xmpp.offlineQueueMax", 0, 1000000);
  int(X.maxRosterItems, "xmpp.maxRosterItems", 1, 100000);
  int(X.maxBlocklistItems, "xmpp.maxBlocklistItems", 0, 100000);
  // A vCard travels in one stanza: limits.maxStanzaBytes caps it too, whichever is lower.
  int(X.maxVcardBytes, "xmpp.maxVcardBytes", 0, 16777216);
  need(typeof X.versionShowsOs === "boolean", "xmpp.versionShowsOs", "must be true or false");
  int(X.maxAuthFailuresPerIp, "xmpp.maxAuthFailuresPerIp", 1);
  int(X.authFailureWindowMs, "xmpp.authFailureWindowMs", 1000);
  need(isObject(X.sm), "xmpp.sm", "must be an object");
  int(X.sm.ackEveryStanzas, "xmpp.sm.ackEveryStanzas", 0, 1000000);
  int(X.sm.ackEveryMs, "xmpp.sm.ackEveryMs", 0, 3600000);
  // Acks must be asked for before the queue can fill, or every busy client would be cut.
  int(X.sm.maxUnacked, "xmpp.sm.maxUnacked", 1, 10000000);
  // Announced in whole seconds (XEP-0198 §5 max): 0 or at least one second.
  need(X.sm.resumeTimeoutMs === 0 || (Number.isInteger(X.sm.resumeTimeoutMs) && X.sm.resumeTimeoutMs >= 1000 && X.sm.resumeTimeoutMs <= 86400000), "xmpp.sm.resumeTimeoutMs", "must be 0 or an integer in [1000, 86400000]");
  need(X.sm.ackEveryStanzas === 0 || X.sm.ackEveryStanzas <= X.sm.maxUnacked, "xmpp.sm.ackEveryStanzas", "must not exceed xmpp.sm.maxUnacked");

  need(isObject(X.mam), "xmpp.mam", "must be an object");
  need(typeof X.mam.enabled === "boolean", "xmpp.mam.enabled", "must be true or false");
  oneOf(X.mam.defaultMode, "xmpp.mam.defaultMode", ["always", "never", "roster"]);
  int(X.mam.maxPageSize, "xmpp.mam.maxPageSize", 1, 1000);
  int(X.mam.retentionDays, "xmpp.mam.retentionDays", 0, 36500);
  int(X.mam.maxQueued, "xmpp.mam.maxQueued", 1, 10000000);
  int(X.mam.maxBatch, "xmpp.mam.maxBatch", 1, 100000);

  pingFallback(input, c);
  pings(X, "xmpp");
  pings(c.relay, "relay");

  const C = c.cluster;
  oneOf(C.bus, "cluster.bus", ["local", "nats"]);
  str(C.hostAddress, "cluster.hostAddress");
  need(/^[A-Za-z0-9_\-.:]+$/.test(C.hostAddress), "cluster.hostAddress", "must be a host name or address (it names this host's workers)");
  int(C.vnodes, "cluster.vnodes", 1, 65536);
  int(C.workers, "cluster.workers", 0, 1024);
  need(C.workers === 1 || C.bus === "nats", "cluster.workers", "more than one worker needs cluster.bus nats");
  need(C.workers === 1 || c.storage.type !== "sqlite" || c.storage.path !== ":memory:", "cluster.workers", "more than one worker needs storage.path to be a file they share");
  need(Array.isArray(C.nats.servers) && C.nats.servers.length > 0, "cluster.nats.servers", "must be a non-empty array of NATS URLs");
  C.nats.servers.forEach((u, i) => str(u, `cluster.nats.servers[${i}]`));
  need(typeof C.nats.subject === "string" && /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(C.nats.subject), "cluster.nats.subject", "must be a NATS subject without wildcards");
  int(C.nats.heartbeatMs, "cluster.nats.heartbeatMs", 100, 60000);
  int(C.nats.connectTimeoutMs, "cluster.nats.connectTimeoutMs", 0, 86_400_000);
  need(typeof C.hostLinks === "boolean", "cluster.hostLinks", "must be true or false");
  need(typeof C.handoff === "boolean", "cluster.handoff", "must be true or false");
  int(C.holdAfterExpiryMs, "cluster.holdAfterExpiryMs", 0, 600000);
  const K = C.custody;
  int(K.confirmTimeoutMs, "cluster.custody.confirmTimeoutMs", 100, 600000);
  int(K.maxTries, "cluster.custody.maxTries", 1, 100);
  int(K.dedupWindowMs, "cluster.custody.dedupWindowMs", 0, 3600000);
  need(K.dedupWindowMs >= K.confirmTimeoutMs, "cluster.custody.dedupWindowMs", "must be at least cluster.custody.confirmTimeoutMs (a message routed again must meet its receipt)");
  int(K.maxHeld, "cluster.custody.maxHeld", 0, 10000000);
  int(K.heldMaxMs, "cluster.custody.heldMaxMs", 1000, 86400000);
  int(K.resumeGraceMs, "cluster.custody.resumeGraceMs", 0, 600000);

  const A = c.admin;
  need(typeof A.enabled === "boolean", "admin.enabled", "must be true or false");
  str(A.host, "admin.host");
  int(A.port, "admin.port", 0, 65535);
  if (A.enabled && A.port !== 0) need(!seen.has(`${A.host}:${A.port}`), "admin.port", `${A.host}:${A.port} is used by a listener`);
  return c;
}

export function loadConfig(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(file, `cannot read: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, `not valid JSON: ${(e as Error).message}`);
  }
  return validate(json, dirname(resolve(file)));
}
