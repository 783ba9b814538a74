import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";

/** "component": XEP-0114 external components (jabber:component:accept), domains in xmpp.components. */
export type Protocol = "relay" | "xmpp" | "component";
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
    /**
     * Client input one worker reads in one event-loop turn, in milliseconds, before the rest waits; with it, a host
     * link 1 MiB behind stops the worker reading its clients (src/transport/intake.ts). 0: neither.
     */
    maxTurnMs: number;
  };
  auth: { scramIterations: number; tokenSecret: string | null };
  /** Socket output (docs/architecture.md, "The writer thread"). */
  /** true: where there are two cores; "always": on one core too (for measuring it); false: never. */
  io: { writerThread: boolean | "always" };
  xmpp: XmppConfig;
  /** XEP-0045 multi-user chat (docs/xmpp.md, "XEP-0045"). */
  muc: MucConfig;
  relay: RelayConfig;
  cluster: ClusterConfig;
  admin: AdminConfig;
  /** XEP-0363 HTTP File Upload (docs/xmpp.md, "HTTP File Upload"). */
  upload: UploadConfig;
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
  /**
   * Connections each worker opens at start and keeps while idle (at most poolSize); others close after 30 s idle.
   * A query on a connection opened for it waited ~10 ms for the connection and a few more for a new backend's
   * first plan (docs/benchmarks.md, "Archives", session 15).
   */
  poolKept: number;
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

/** XEP-0363 HTTP File Upload: the service's address, its HTTP listener (one per host), its files and limits. */
export interface UploadConfig {
  enabled: boolean;
  /** The service's address; null: upload.<domain> (validate fills it). */
  domain: string | null;
  /** The HTTP(S) listener for PUT and GET (one per host: the primary's, or the only worker's). */
  http: {
    host: string;
    /** 0: any free port (tests). */
    port: number;
    /** PEM files (relative to the config file): HTTPS; null: plain HTTP (behind a reverse proxy, or loopback). */
    tls: { cert: string; key: string } | null;
    /** A request's headers must all arrive within this long (slowloris). */
    headersTimeoutMs: number;
    /** A connection silent this long (no header or body bytes) is closed. */
    idleTimeoutMs: number;
    /** Connections at once; past it new ones are refused. */
    maxConnections: number;
  };
  /** What slot URLs start with (scheme, host, port, optional path); null: the listener's own address (domain for a wildcard host). */
  publicUrl: string | null;
  /** Where files are kept; null: "uploads" beside storage.path (validate fills it). */
  path: string | null;
  /** Largest file a slot is given for, in bytes (announced in disco#info, XEP-0363 §3). */
  maxFileBytes: number;
  /** Bytes of unexpired files one user may hold (per host's storage); 0: no quota. */
  quotaBytes: number;
  /** A file is deleted this long after its upload; 0: kept for ever. */
  expireAfterMs: number;
  /** A slot not used (PUT) within this long is refused (XEP-0363 §7 recommends about 60 s). */
  slotTimeoutMs: number;
  /** Key that signs slots (at least 32 characters); null: generated once into <path>/upload.key. */
  secret: string | null;
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
  /** A worker's bus batches go at most once per this many ms (0: every event-loop turn; 1 by default); docs/architecture.md, "Coalescing". */
  coalesceMs: number;
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
  /** XEP-0114: the external components that may connect to a "component" listener, one per domain. */
  components: ComponentConfig[];
  /** XEP-0077 in-band registration and password change. */
  register: RegisterConfig;
  /** XEP-0163 personal eventing and XEP-0115 capabilities. */
  pep: PepConfig;
  /** XEP-0388 SASL2 with XEP-0386 Bind2 and XEP-0198 inline. */
  sasl2: Sasl2Config;
  /** XEP-0484 FAST tokens (inside SASL2). */
  fast: FastConfig;
}

/** XEP-0114: a component's domain (a subdomain of the server's, or any other name) and its handshake secret. */
export interface ComponentConfig {
  domain: string;
  secret: string;
  /** Its name in the server's disco#items; absent: none. */
  name?: string;
}

/** XEP-0077 (docs/xmpp.md, "In-band registration"). */
export interface RegisterConfig {
  /** Accounts may be created before authentication (the stream feature, jabber:iq:register get/set). */
  enabled: boolean;
  /** Registration attempts one IP address may make per windowMs (on each worker) before it is refused. */
  maxPerIp: number;
  windowMs: number;
  /** Authenticated users may change their password with jabber:iq:register. */
  passwordChange: boolean;
  /** Authenticated users may remove their account with <remove/>. */
  remove: boolean;
}

/** XEP-0163 PEP and XEP-0115 entity capabilities (docs/xmpp.md, "Personal eventing"). */
export interface PepConfig {
  /** The largest item payload (serialized, bytes) a user may publish. */
  maxItemBytes: number;
  /** Items kept per node at most (a node's pubsub#max_items may ask fewer, never more). */
  maxItemsPerNode: number;
  /** Nodes per account at most. */
  maxNodes: number;
  /** XEP-0115: verified capabilities remembered per worker, by ver. */
  capsCacheSize: number;
  /** XEP-0115: how long the server waits for a client's disco#info answer about a new ver. */
  capsTimeoutMs: number;
}

/** XEP-0388 Extensible SASL Profile (docs/xmpp.md, "SASL2, Bind2, FAST"). */
export interface Sasl2Config {
  /** Offer <authentication xmlns='urn:xmpp:sasl:2'> beside RFC 6120 SASL; off: not advertised, <authenticate/> refused. */
  enabled: boolean;
}

/** XEP-0484 Fast Authentication Streamlining Tokens. */
export interface FastConfig {
  /** Offer FAST inside SASL2 (over TLS only); off: not advertised, no token issued or accepted. */
  enabled: boolean;
  /** How long an issued token is valid. */
  tokenLifetimeMs: number;
  /** A token used with less than this left gets a successor in the <success/> (XEP-0484 §3.5); 0: only on request. */
  rotateBeforeMs: number;
}

/** XEP-0313 Message Archive Management (docs/xmpp.md, "Message archives"). */
export interface MucConfig {
  enabled: boolean;
  /** The service's domain; null: `conference.<domain>`. */
  domain: string | null;
  /** Rooms one worker holds at most (each lives on the worker that owns its address). */
  maxRoomsPerWorker: number;
  maxOccupants: number;
  /** Groupchat messages each room keeps for history on join (XEP-0045 §7.2.15); 0: none. */
  historyMessages: number;
  maxNickLength: number;
  /** Presence stanzas one occupant may send a room in a second; past it they are refused (<policy-violation/>). */
  maxPresencePerSecond: number;
  /** XEP-0313 archives of rooms (docs/xmpp.md, "Multi-user chat"): rooms archive unless their owner turns muc#roomconfig_enablelogging off. */
  mam: { enabled: boolean; maxPageSize: number };
}

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
  /** Users whose preferences (XEP-0313 §6) the writer keeps in memory, per worker, least recently used dropped first. */
  prefsCacheSize: number;
  /** How long archived messages gather before a batch is written (ms); 0: one batch per event-loop turn. */
  gatherMs: number;
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
  /**
   * How long the <a/> answering a client's <r/> may wait for other output to that client, to leave in the same
   * write (XEP-0198 §4 allows withholding it for a timeout); 0: at the end of the turn that read the <r/>.
   */
  answerDelayMs: number;
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
        poolKept: 2,
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
      maxTurnMs: 20,
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
      sm: { ackEveryStanzas: 10, ackEveryMs: 5000, maxUnacked: 1000, resumeTimeoutMs: 300000, answerDelayMs: 1000 },
      mam: { enabled: false, defaultMode: "always", maxPageSize: 100, retentionDays: 0, maxQueued: 100000, maxBatch: 500, prefsCacheSize: 100000, gatherMs: 50 },
      components: [],
      register: { enabled: false, maxPerIp: 5, windowMs: 3600000, passwordChange: true, remove: true },
      pep: { maxItemBytes: 262144, maxItemsPerNode: 256, maxNodes: 256, capsCacheSize: 10000, capsTimeoutMs: 10000 },
      sasl2: { enabled: true },
      fast: { enabled: true, tokenLifetimeMs: 1209600000, rotateBeforeMs: 259200000 },
    },
    muc: { enabled: false, domain: null, maxRoomsPerWorker: 10000, maxOccupants: 200, historyMessages: 20, maxNickLength: 64, maxPresencePerSecond: 5, mam: { enabled: false, maxPageSize: 100 } },
    relay: { pingAfterMs: 60000, pingTimeoutMs: 30000 },
    cluster: {
      bus: "local",
      hostAddress: "127.0.0.1",
      vnodes: 2048,
      workers: 1,
      nats: { servers: ["nats://127.0.0.1:4222"], subject: "switchboard", heartbeatMs: 1000, connectTimeoutMs: 60000 },
      hostLinks: true,
      handoff: true,
      holdAfterExpiryMs: 10000,
      coalesceMs: 1,
      custody: { confirmTimeoutMs: 5000, maxTries: 5, dedupWindowMs: 10000, maxHeld: 100000, heldMaxMs: 900000, resumeGraceMs: 10000 },
    },
    admin: { enabled: true, host: "127.0.0.1", port: 9464 },
    upload: {
      enabled: false,
      domain: null,
      http: { host: "127.0.0.1", port: 5443, tls: null, headersTimeoutMs: 10000, idleTimeoutMs: 30000, maxConnections: 1000 },
      publicUrl: null,
      path: null,
      maxFileBytes: 104857600,
      quotaBytes: 1073741824,
      expireAfterMs: 604800000,
      slotTimeoutMs: 60000,
      secret: null,
    },
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
  int(P.poolKept, "storage.postgres.poolKept", 0, 1000);
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
    oneOf(l.protocol, `${key}.protocol`, ["relay", "xmpp", "component"]);
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
    // XEP-0114 runs over a plain or TLS stream only.
    if (l.protocol === "component") need(l.transport !== "websocket", `${key}.transport`, "must be tcp or tls for protocol component");
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
  int(L.maxTurnMs, "limits.maxTurnMs", 0);
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
  // Clients time out unanswered requests (tens of seconds); a few seconds at most is still "as soon as possible" (§4).
  int(X.sm.answerDelayMs, "xmpp.sm.answerDelayMs", 0, 5000);
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
  int(X.mam.prefsCacheSize, "xmpp.mam.prefsCacheSize", 1, 10000000);
  int(X.mam.gatherMs, "xmpp.mam.gatherMs", 0, 10000);
  need(isObject(X.pep), "xmpp.pep", "must be an object");
  int(X.pep.maxItemBytes, "xmpp.pep.maxItemBytes", 1, 16777216);
  int(X.pep.maxItemsPerNode, "xmpp.pep.maxItemsPerNode", 1, 100000);
  int(X.pep.maxNodes, "xmpp.pep.maxNodes", 0, 100000);
  int(X.pep.capsCacheSize, "xmpp.pep.capsCacheSize", 1, 10000000);
  int(X.pep.capsTimeoutMs, "xmpp.pep.capsTimeoutMs", 100, 300000);

  components(c);
  const R = X.register;
  need(isObject(R), "xmpp.register", "must be an object");
  for (const k of ["enabled", "passwordChange", "remove"] as const) need(typeof R[k] === "boolean", `xmpp.register.${k}`, "must be true or false");
  int(R.maxPerIp, "xmpp.register.maxPerIp", 1, 1000000);
  int(R.windowMs, "xmpp.register.windowMs", 1000, 86400000);

  need(isObject(X.sasl2), "xmpp.sasl2", "must be an object");
  need(typeof X.sasl2.enabled === "boolean", "xmpp.sasl2.enabled", "must be true or false");
  need(isObject(X.fast), "xmpp.fast", "must be an object");
  need(typeof X.fast.enabled === "boolean", "xmpp.fast.enabled", "must be true or false");
  // A minute to a year; rotation must leave a token some life before it is replaced.
  int(X.fast.tokenLifetimeMs, "xmpp.fast.tokenLifetimeMs", 60000, 31536000000);
  int(X.fast.rotateBeforeMs, "xmpp.fast.rotateBeforeMs", 0, 31536000000);
  need(X.fast.rotateBeforeMs < X.fast.tokenLifetimeMs, "xmpp.fast.rotateBeforeMs", "must be less than xmpp.fast.tokenLifetimeMs");

  const M = c.muc;
  need(typeof M.enabled === "boolean", "muc.enabled", "must be true or false");
  need(M.domain === null || (typeof M.domain === "string" && /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/.test(M.domain)), "muc.domain", "must be null or a lower-case domain name");
  M.domain ??= `conference.${c.domain}`;
  need(M.domain !== c.domain, "muc.domain", "must differ from domain");
  int(M.maxRoomsPerWorker, "muc.maxRoomsPerWorker", 1, 10000000);
  int(M.maxOccupants, "muc.maxOccupants", 1, 100000);
  int(M.historyMessages, "muc.historyMessages", 0, 1000);
  int(M.maxNickLength, "muc.maxNickLength", 1, 1023);
  int(M.maxPresencePerSecond, "muc.maxPresencePerSecond", 1, 1000);
  need(isObject(M.mam), "muc.mam", "must be an object");
  need(typeof M.mam.enabled === "boolean", "muc.mam.enabled", "must be true or false");
  int(M.mam.maxPageSize, "muc.mam.maxPageSize", 1, 1000);

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
  int(C.coalesceMs, "cluster.coalesceMs", 0, 100);
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
  upload(c, baseDir, A.enabled && A.port !== 0 ? new Set([...seen, `${A.host}:${A.port}`]) : seen);
  return c;
}

/** upload.* (XEP-0363): fills domain, path and publicUrl when null. `taken`: host:port of the other listeners. */
function upload(c: Config, baseDir: string, taken: Set<string>): void {
  const U = c.upload;
  need(typeof U.enabled === "boolean", "upload.enabled", "must be true or false");
  need(U.domain === null || (typeof U.domain === "string" && /^[a-z0-9-]+(\.[a-z0-9-]+)+$/i.test(U.domain)), "upload.domain", "must be null or a host name");
  U.domain = (U.domain ?? `upload.${c.domain}`).toLowerCase();
  need(U.domain !== c.domain, "upload.domain", "must differ from domain (the service has its own address)");
  const H = U.http;
  str(H.host, "upload.http.host");
  int(H.port, "upload.http.port", 0, 65535);
  if (U.enabled && H.port !== 0) need(!taken.has(`${H.host}:${H.port}`), "upload.http.port", `${H.host}:${H.port} is used by another listener`);
  if (H.tls !== null) {
    const tls = H.tls as unknown;
    need(isObject(tls), "upload.http.tls", "must be null or an object with cert and key");
    for (const k of Object.keys(tls as object)) oneOf(k, `upload.http.tls.${k}`, ["cert", "key"]);
    str(H.tls.cert, "upload.http.tls.cert");
    str(H.tls.key, "upload.http.tls.key");
    H.tls = { cert: resolve(baseDir, H.tls.cert), key: resolve(baseDir, H.tls.key) };
  }
  int(H.headersTimeoutMs, "upload.http.headersTimeoutMs", 100, 600000);
  int(H.idleTimeoutMs, "upload.http.idleTimeoutMs", 100, 3600000);
  int(H.maxConnections, "upload.http.maxConnections", 1, 1000000);
  if (U.publicUrl !== null) {
    let url: URL | null = null;
    try {
      url = typeof U.publicUrl === "string" ? new URL(U.publicUrl) : null;
    } catch {
      url = null;
    }
    need(url !== null && (url.protocol === "http:" || url.protocol === "https:") && url.search === "" && url.hash === "" && url.username === "", "upload.publicUrl", "must be null or an http(s) URL without query, fragment or credentials");
    U.publicUrl = url!.href.replace(/\/+$/, "");
  }
  need(U.path === null || (typeof U.path === "string" && U.path.length > 0), "upload.path", "must be null or a directory");
  const dataDir = c.storage.type === "sqlite" && c.storage.path !== ":memory:" ? dirname(c.storage.path) : resolve(baseDir, "data");
  U.path = U.path === null ? resolve(dataDir, "uploads") : resolve(baseDir, U.path);
  int(U.maxFileBytes, "upload.maxFileBytes", 1);
  int(U.quotaBytes, "upload.quotaBytes", 0);
  need(U.quotaBytes === 0 || U.quotaBytes >= U.maxFileBytes, "upload.quotaBytes", "must be 0 (none) or at least upload.maxFileBytes");
  need(U.expireAfterMs === 0 || (Number.isInteger(U.expireAfterMs) && U.expireAfterMs >= 1000), "upload.expireAfterMs", "must be 0 (never) or an integer of at least 1000");
  int(U.slotTimeoutMs, "upload.slotTimeoutMs", 1000, 86400000);
  need(U.secret === null || (typeof U.secret === "string" && U.secret.length >= 32), "upload.secret", "must be null (generated) or a string of at least 32 characters");
}

/** XEP-0114: each domain once, not the server's own, with a secret; a component listener needs at least one. */
function components(c: Config): void {
  const list = c.xmpp.components;
  need(Array.isArray(list), "xmpp.components", "must be an array of { domain, secret }");
  const domains = new Set<string>();
  list.forEach((e, i) => {
    const key = `xmpp.components[${i}]`;
    need(isObject(e), key, "must be an object with domain and secret");
    for (const k of Object.keys(e)) oneOf(k, `${key}.${k}`, ["domain", "secret", "name"]);
    str(e.domain, `${key}.domain`);
    need(/^[a-z0-9-]+(\.[a-z0-9-]+)*$/i.test(e.domain), `${key}.domain`, "must be a host name");
    e.domain = e.domain.toLowerCase();
    need(e.domain !== c.domain, `${key}.domain`, "must not be the server's own domain");
    need(!domains.has(e.domain), `${key}.domain`, `${e.domain} is listed twice`);
    domains.add(e.domain);
    str(e.secret, `${key}.secret`);
    need(e.name === undefined || typeof e.name === "string", `${key}.name`, "must be a string");
  });
  const listener = c.listeners.findIndex((l) => l.protocol === "component");
  if (listener >= 0) need(list.length > 0, `listeners[${listener}]`, "a component listener needs xmpp.components");
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
