import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError, defaults, loadConfig, validate } from "../../../src/config/config.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..");

function keyOf(input: unknown): string {
  try {
    validate(input, "/tmp");
  } catch (e) {
    assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
    assert.ok(e.message.includes(e.key), "the message names the key");
    return e.key;
  }
  assert.fail("accepted");
}

test("the embedded defaults are valid", () => {
  const c = validate(defaults(), "/tmp");
  assert.equal(c.domain, "localhost");
  assert.equal(c.storage.path, "/tmp/data/switchboard.db", "relative paths resolve against the config's directory");
  assert.equal(validate({}, "/tmp").timeouts.relay.defaultMs, defaults().timeouts.relay.defaultMs);
});

test("config.example.json at the repo root validates", () => {
  const file = join(ROOT, "config.example.json");
  const c = loadConfig(file);
  assert.equal(c.storage.path, join(ROOT, "data", "switchboard.db"));
  // The keys the issue requires, present in the file itself.
  const j = JSON.parse(readFileSync(file, "utf8"));
  assert.equal(typeof j.domain, "string");
  assert.ok(j.listeners.every((l: Record<string, unknown>) => "protocol" in l && "transport" in l && "host" in l && "port" in l));
  assert.equal(j.storage.type, "sqlite");
  for (const k of ["defaultMs", "minMs", "maxMs"]) assert.equal(typeof j.timeouts.relay[k], "number");
  assert.equal(typeof j.timeouts.sweepIntervalMs, "number");
});

test("an unknown key is a ConfigError naming it, at any depth", () => {
  assert.equal(keyOf({ timeouts: { relay: { defualtMs: 10 } } }), "timeouts.relay.defualtMs");
  assert.equal(keyOf({ domian: "x" }), "domian");
  assert.equal(keyOf({ limits: { maxFrameByte: 100 } }), "limits.maxFrameByte");
  assert.equal(keyOf({ listeners: [{ protocol: "relay", transport: "tcp", host: "h", port: 1, colour: "red" }] }), "listeners[0].colour");
});

test("inherited property names are not keys of the config, and __proto__ cannot reach Object.prototype", () => {
  assert.equal(keyOf({ constructor: 1 }), "constructor");
  assert.equal(keyOf({ limits: { toString: 1 } }), "limits.toString");
  const saved = Object.prototype.propertyIsEnumerable;
  try {
    assert.equal(keyOf(JSON.parse('{"__proto__": {"propertyIsEnumerable": 1}}')), "__proto__");
    assert.equal(Object.prototype.propertyIsEnumerable, saved, "Object.prototype was written through the config");
  } finally {
    Object.prototype.propertyIsEnumerable = saved;
  }
});

test("a wrong type or out-of-range value names its key", () => {
  assert.equal(keyOf({ timeouts: { relay: { defaultMs: "5000" } } }), "timeouts.relay.defaultMs");
  assert.equal(keyOf({ timeouts: { relay: { defaultMs: 50 } } }), "timeouts.relay.defaultMs", "below minMs");
  assert.equal(keyOf({ timeouts: { relay: { maxMs: 10 } } }), "timeouts.relay.maxMs", "below minMs");
  assert.equal(keyOf({ timeouts: "fast" }), "timeouts");
  assert.equal(keyOf({ limits: { maxPendingPerSession: 0 } }), "limits.maxPendingPerSession");
  assert.equal(keyOf({ limits: { maxPendingPerSession: 1.5 } }), "limits.maxPendingPerSession");
  assert.equal(keyOf({ log: { level: "verbose" } }), "log.level");
  assert.equal(keyOf({ listeners: [{ protocol: "relay", transport: "udp", host: "h", port: 1 }] }), "listeners[0].transport");
  assert.equal(keyOf({ listeners: [{ protocol: "relay", transport: "tcp", host: "h", port: 70000 }] }), "listeners[0].port");
  assert.equal(keyOf({ listeners: {} }), "listeners");
  assert.equal(keyOf({ auth: { scramIterations: 1000 } }), "auth.scramIterations");
  assert.equal(keyOf({ io: { writerThread: "yes" } }), "io.writerThread");
  assert.equal(validate({ io: { writerThread: "always" } }).io.writerThread, "always");
  assert.equal(keyOf({ auth: { tokenSecret: "short" } }), "auth.tokenSecret");
  assert.equal(keyOf({ storage: { type: "mysql" } }), "storage.type");
  assert.equal(keyOf({ domain: "bad domain" }), "domain");
  assert.equal(keyOf([]), "(root)");
});

test("storage: postgres by fields or connection string, with TLS; every key checked and named", () => {
  const c = validate({ storage: { type: "postgres", postgres: { host: "db.example", password: "pw", poolSize: 4, ssl: { ca: "certs/ca.pem" } } } }, "/etc/switchboard");
  assert.equal(c.storage.type, "postgres");
  assert.equal(c.storage.postgres.host, "db.example");
  assert.equal(c.storage.postgres.port, 5432);
  assert.equal(c.storage.postgres.poolSize, 4);
  assert.deepEqual(c.storage.postgres.ssl, { ca: "/etc/switchboard/certs/ca.pem", rejectUnauthorized: true }, "the CA file resolves against the config's directory");
  assert.equal(validate({ storage: { type: "postgres", postgres: { connectionString: "postgres://u@h/db" } } }).storage.postgres.connectionString, "postgres://u@h/db");
  assert.deepEqual(validate({ storage: { postgres: { ssl: { rejectUnauthorized: false } } } }).storage.postgres.ssl, { ca: null, rejectUnauthorized: false });
  assert.equal(validate({}).storage.postgres.ssl, null);
  assert.deepEqual(validate({}).storage.offlineWrites, { maxQueued: 10000, maxBatch: 100 });
  assert.equal(keyOf({ storage: { postgres: { connectionString: "mysql://h" } } }), "storage.postgres.connectionString");
  assert.equal(keyOf({ storage: { postgres: { port: 0 } } }), "storage.postgres.port");
  assert.equal(keyOf({ storage: { postgres: { poolSize: 0 } } }), "storage.postgres.poolSize");
  assert.equal(keyOf({ storage: { postgres: { password: 5 } } }), "storage.postgres.password");
  assert.equal(keyOf({ storage: { postgres: { statementTimeoutMs: 10 } } }), "storage.postgres.statementTimeoutMs");
  assert.equal(keyOf({ storage: { postgres: { connectTimeoutMs: "5s" } } }), "storage.postgres.connectTimeoutMs");
  assert.equal(keyOf({ storage: { postgres: { ssl: { ca: "x", verify: true } } } }), "storage.postgres.ssl.verify");
  assert.equal(keyOf({ storage: { postgres: { ssl: { rejectUnauthorized: "no" } } } }), "storage.postgres.ssl.rejectUnauthorized");
  assert.equal(keyOf({ storage: { postgres: { ssl: true } } }), "storage.postgres.ssl");
  assert.equal(keyOf({ storage: { postgres: { sslmode: "require" } } }), "storage.postgres.sslmode");
  assert.equal(keyOf({ storage: { lockTimeoutMs: -1 } }), "storage.lockTimeoutMs");
  assert.equal(keyOf({ storage: { offlineWrites: { maxQueued: 0 } } }), "storage.offlineWrites.maxQueued");
  assert.equal(keyOf({ storage: { offlineWrites: { maxBatch: 0 } } }), "storage.offlineWrites.maxBatch");
  // Several workers share a PostgreSQL database whatever storage.path says.
  assert.equal(validate({ cluster: { bus: "nats", workers: 2 }, storage: { type: "postgres", path: ":memory:" } }).cluster.workers, 2);
});

test("a tls listener without its tls block is rejected", () => {
  assert.equal(keyOf({ listeners: [{ protocol: "relay", transport: "tls", host: "127.0.0.1", port: 7000 }] }), "listeners[0].tls");
  const ok = validate({ listeners: [{ protocol: "relay", transport: "tls", host: "127.0.0.1", port: 7000, tls: { cert: "c.pem", key: "k.pem" } }] }, "/etc/sb");
  assert.deepEqual(ok.listeners[0].tls, { cert: "/etc/sb/c.pem", key: "/etc/sb/k.pem" });
});

test("an xmpp websocket listener (RFC 7395) needs a path; wss with tls", { timeout: 5000 }, () => {
  const l = { protocol: "xmpp", transport: "websocket", host: "127.0.0.1", port: 5280 };
  assert.equal(keyOf({ listeners: [l] }), "listeners[0].path");
  assert.equal(keyOf({ listeners: [{ ...l, path: "xmpp-websocket" }] }), "listeners[0].path");
  const ok = validate({ listeners: [{ ...l, path: "/xmpp-websocket" }, { ...l, port: 5281, path: "/ws", tls: { cert: "c.pem", key: "k.pem" } }] }, "/etc/sb");
  assert.equal(ok.listeners[0].path, "/xmpp-websocket");
  assert.equal(ok.listeners[0].transport, "websocket");
  assert.deepEqual(ok.listeners[1].tls, { cert: "/etc/sb/c.pem", key: "/etc/sb/k.pem" });
  assert.equal(keyOf({ listeners: [{ ...l, transport: "tcp", path: "/ws" }] }), "listeners[0].path");
});

test("two listeners on one host and port are rejected", () => {
  const l = { protocol: "relay", transport: "tcp", host: "127.0.0.1", port: 7000 };
  assert.equal(keyOf({ listeners: [l, { ...l, transport: "websocket" }] }), "listeners[1].port");
});

test("sweepIntervalMs larger than the smallest minMs is rejected; equal is allowed", () => {
  assert.equal(keyOf({ timeouts: { sweepIntervalMs: 101 } }), "timeouts.sweepIntervalMs");
  assert.equal(keyOf({ timeouts: { sweepIntervalMs: 30, relay: { minMs: 20 } } }), "timeouts.sweepIntervalMs");
  assert.equal(validate({ timeouts: { sweepIntervalMs: 100 } }).timeouts.sweepIntervalMs, 100);
});

test("byNamespace keys are the user's own, but their values are checked", () => {
  const c = validate({ timeouts: { xmpp: { byNamespace: { "jabber:iq:version": 5000 } } } });
  assert.equal(c.timeouts.xmpp.byNamespace["jabber:iq:version"], 5000);
  assert.equal(keyOf({ timeouts: { xmpp: { byNamespace: { "jabber:iq:version": 1 } } } }), "timeouts.xmpp.byNamespace.jabber:iq:version");
});

test("loadConfig names the file when it cannot be read or parsed", () => {
  assert.throws(() => loadConfig("/nonexistent/switchboard.json"), (e: unknown) => e instanceof ConfigError && e.key === "/nonexistent/switchboard.json");
});

test("several workers need the nats bus and a shared database file; the nats settings are checked", () => {
  assert.equal(keyOf({ cluster: { workers: 2 } }), "cluster.workers", "local bus");
  assert.equal(keyOf({ cluster: { workers: 0 } }), "cluster.workers", "one per core is several");
  assert.equal(keyOf({ cluster: { bus: "nats", workers: 2 }, storage: { type: "sqlite", path: ":memory:" } }), "cluster.workers");
  assert.equal(keyOf({ cluster: { bus: "kafka" } }), "cluster.bus");
  assert.equal(keyOf({ cluster: { bus: "nats", nats: { servers: [] } } }), "cluster.nats.servers");
  assert.equal(keyOf({ cluster: { bus: "nats", nats: { subject: "a.*" } } }), "cluster.nats.subject");
  assert.equal(keyOf({ cluster: { bus: "nats", nats: { heartbeatMs: 10 } } }), "cluster.nats.heartbeatMs");
  assert.equal(keyOf({ cluster: { hostAddress: "a host" } }), "cluster.hostAddress");
  assert.equal(keyOf({ cluster: { bus: "nats", nats: { connectTimeoutMs: -1 } } }), "cluster.nats.connectTimeoutMs");
  assert.equal(keyOf({ cluster: { bus: "nats", nats: { connectTimeoutMs: 1.5 } } }), "cluster.nats.connectTimeoutMs");
  assert.equal(keyOf({ cluster: { bus: "nats", nats: { connectTimeoutMs: "60s" } } }), "cluster.nats.connectTimeoutMs");
  assert.equal(validate({ cluster: { bus: "nats", nats: { connectTimeoutMs: 0 } } }).cluster.nats.connectTimeoutMs, 0, "0: one attempt");
  const c = validate({ cluster: { bus: "nats", workers: 4, nats: { servers: ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"] } } });
  assert.equal(c.cluster.workers, 4);
  assert.deepEqual(c.cluster.nats, { servers: ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"], subject: "switchboard", heartbeatMs: 1000, connectTimeoutMs: 60000 });
});

test("cluster.holdAfterExpiryMs: 10000 by default, 0 to 600000 ms", { timeout: 5000 }, () => {
  assert.equal(validate({}).cluster.holdAfterExpiryMs, 10000);
  assert.equal(validate({ cluster: { holdAfterExpiryMs: 10000 } }).cluster.holdAfterExpiryMs, 10000);
  assert.equal(keyOf({ cluster: { holdAfterExpiryMs: -1 } }), "cluster.holdAfterExpiryMs");
  assert.equal(keyOf({ cluster: { holdAfterExpiryMs: 600001 } }), "cluster.holdAfterExpiryMs");
  assert.equal(keyOf({ cluster: { holdAfterExpiryMs: "10s" } }), "cluster.holdAfterExpiryMs");
});

test("cluster.coalesceMs: 1 by default, 0 (every turn) to 100 ms, whole ms", { timeout: 5000 }, () => {
  assert.equal(validate({}).cluster.coalesceMs, 1);
  assert.equal(validate({ cluster: { coalesceMs: 0 } }).cluster.coalesceMs, 0);
  assert.equal(validate({ cluster: { coalesceMs: 2 } }).cluster.coalesceMs, 2);
  assert.equal(keyOf({ cluster: { coalesceMs: -1 } }), "cluster.coalesceMs");
  assert.equal(keyOf({ cluster: { coalesceMs: 101 } }), "cluster.coalesceMs");
  assert.equal(keyOf({ cluster: { coalesceMs: 0.5 } }), "cluster.coalesceMs");
});

test("cluster.hostLinks: on by default, a boolean", { timeout: 5000 }, () => {
  assert.equal(validate({}).cluster.hostLinks, true);
  assert.equal(validate({ cluster: { bus: "nats", workers: 2, hostLinks: false } }).cluster.hostLinks, false);
  assert.equal(keyOf({ cluster: { hostLinks: "yes" } }), "cluster.hostLinks");
  assert.equal(keyOf({ cluster: { hostLinks: 1 } }), "cluster.hostLinks");
});

test("cluster.handoff: on by default, a boolean", { timeout: 5000 }, () => {
  assert.equal(validate({}).cluster.handoff, true);
  assert.equal(validate({ cluster: { bus: "nats", workers: 2, handoff: true } }).cluster.handoff, true);
  assert.equal(keyOf({ cluster: { handoff: "on" } }), "cluster.handoff");
  assert.equal(keyOf({ cluster: { handoff: 0 } }), "cluster.handoff");
});

test("custody: defaults, bounds, and a dedup window no shorter than the confirm timeout", { timeout: 5000 }, () => {
  assert.deepEqual(validate({}).cluster.custody, { confirmTimeoutMs: 5000, maxTries: 5, dedupWindowMs: 10000, maxHeld: 100000, heldMaxMs: 900000, resumeGraceMs: 10000 });
  assert.equal(keyOf({ cluster: { custody: { resumeGraceMs: -1 } } }), "cluster.custody.resumeGraceMs");
  assert.equal(keyOf({ cluster: { custody: { confirmTimeoutMs: 10 } } }), "cluster.custody.confirmTimeoutMs");
  assert.equal(keyOf({ cluster: { custody: { maxTries: 0 } } }), "cluster.custody.maxTries");
  assert.equal(keyOf({ cluster: { custody: { dedupWindowMs: 1000 } } }), "cluster.custody.dedupWindowMs");
  assert.equal(keyOf({ cluster: { custody: { maxHeld: -1 } } }), "cluster.custody.maxHeld");
  assert.equal(keyOf({ cluster: { custody: { heldMaxMs: 5 } } }), "cluster.custody.heldMaxMs");
  assert.equal(validate({ cluster: { custody: { maxHeld: 0 } } }).cluster.custody.maxHeld, 0);
});

test("admin: loopback on 9464 by default; its keys are checked; its port may not be a listener's", { timeout: 5000 }, () => {
  assert.deepEqual(validate({}).admin, { enabled: true, host: "127.0.0.1", port: 9464 });
  assert.deepEqual(validate({ admin: { port: 0 } }).admin, { enabled: true, host: "127.0.0.1", port: 0 }, "0: any free port");
  assert.equal(validate({ admin: { enabled: false } }).admin.enabled, false);
  assert.equal(keyOf({ admin: { enabled: "yes" } }), "admin.enabled");
  assert.equal(keyOf({ admin: { host: "" } }), "admin.host");
  assert.equal(keyOf({ admin: { port: 65536 } }), "admin.port");
  assert.equal(keyOf({ admin: { port: "9464" } }), "admin.port");
  assert.equal(keyOf({ admin: { path: "/metrics" } }), "admin.path");
  const l = { protocol: "relay", transport: "tcp", host: "127.0.0.1", port: 7000 };
  assert.equal(keyOf({ listeners: [l], admin: { port: 7000 } }), "admin.port");
  assert.equal(validate({ listeners: [l], admin: { port: 7000, enabled: false } }).admin.port, 7000, "a disabled admin binds nothing");
  assert.equal(validate({ listeners: [l], admin: { port: 7000, host: "127.0.0.2" } }).admin.port, 7000, "another address");
});

test("dead-peer keys: TCP keepalive and per-protocol pings, with defaults for NAT and mobile; each checked", { timeout: 5000 }, () => {
  const c = validate({}, "/tmp");
  assert.equal(c.limits.tcpKeepAliveMs, 60000);
  assert.deepEqual([c.xmpp.pingAfterMs, c.xmpp.pingTimeoutMs], [60000, 30000]);
  assert.deepEqual(c.relay, { pingAfterMs: 60000, pingTimeoutMs: 30000 });
  assert.equal(validate({ limits: { tcpKeepAliveMs: 0 }, xmpp: { pingAfterMs: 0 } }, "/tmp").limits.tcpKeepAliveMs, 0, "0 turns either off");
  // Node gives keepalive whole seconds: less than one would silently mean "the kernel's default".
  assert.equal(keyOf({ limits: { tcpKeepAliveMs: 500 } }), "limits.tcpKeepAliveMs");
  assert.equal(keyOf({ limits: { tcpKeepAliveMs: "60s" } }), "limits.tcpKeepAliveMs");
  assert.equal(keyOf({ xmpp: { pingAfterMs: -1 } }), "xmpp.pingAfterMs");
  assert.equal(keyOf({ xmpp: { pingTimeoutMs: 0 } }), "xmpp.pingTimeoutMs");
  assert.equal(keyOf({ relay: { pingAfterMs: 1.5 } }), "relay.pingAfterMs");
  assert.equal(keyOf({ relay: { pingTimeoutMs: null } }), "relay.pingTimeoutMs");
  assert.equal(keyOf({ relay: { idleMs: 1 } }), "relay.idleMs");
});

test("limits.maxTurnMs: 20 by default, 0 for no budget, else a whole number of milliseconds", { timeout: 5000 }, () => {
  assert.equal(validate({}, "/tmp").limits.maxTurnMs, 20);
  assert.equal(validate({ limits: { maxTurnMs: 0 } }, "/tmp").limits.maxTurnMs, 0);
  assert.equal(keyOf({ limits: { maxTurnMs: -1 } }), "limits.maxTurnMs");
  assert.equal(keyOf({ limits: { maxTurnMs: 2.5 } }), "limits.maxTurnMs");
});

test("xmpp.sm keys (XEP-0198 ack policy and resumption window): defaults and checks", { timeout: 5000 }, () => {
  const c = validate({}, "/tmp");
  assert.deepEqual(c.xmpp.sm, { ackEveryStanzas: 10, ackEveryMs: 5000, maxUnacked: 1000, resumeTimeoutMs: 300000, answerDelayMs: 1000 });
  assert.deepEqual(validate({ xmpp: { sm: { ackEveryStanzas: 0, ackEveryMs: 0, resumeTimeoutMs: 0 } } }, "/tmp").xmpp.sm, { ackEveryStanzas: 0, ackEveryMs: 0, maxUnacked: 1000, resumeTimeoutMs: 0, answerDelayMs: 1000 }, "0 turns a trigger, or resumption, off");
  // Announced in whole seconds: under one would be announced as max='0'.
  assert.equal(keyOf({ xmpp: { sm: { resumeTimeoutMs: 500 } } }), "xmpp.sm.resumeTimeoutMs");
  assert.equal(keyOf({ xmpp: { sm: { resumeTimeoutMs: "5m" } } }), "xmpp.sm.resumeTimeoutMs");
  assert.equal(keyOf({ xmpp: { sm: { ackEveryStanzas: -1 } } }), "xmpp.sm.ackEveryStanzas");
  assert.equal(keyOf({ xmpp: { sm: { ackEveryStanzas: 20, maxUnacked: 10 } } }), "xmpp.sm.ackEveryStanzas", "no more than the queue may hold");
  assert.equal(keyOf({ xmpp: { sm: { ackEveryMs: 1.5 } } }), "xmpp.sm.ackEveryMs");
  assert.equal(keyOf({ xmpp: { sm: { maxUnacked: 0 } } }), "xmpp.sm.maxUnacked");
  assert.equal(keyOf({ xmpp: { sm: { answerDelayMs: 5001 } } }), "xmpp.sm.answerDelayMs", "held answers stay well within clients' patience");
  assert.equal(keyOf({ xmpp: { sm: { resume: true } } }), "xmpp.sm.resume");
  assert.equal(keyOf({ xmpp: { sm: 5 } }), "xmpp.sm");
});

test("limits.idleTimeoutMs (deprecated) stands in for the ping keys a file does not set", { timeout: 5000 }, () => {
  const c = validate({ limits: { idleTimeoutMs: 300000 }, relay: { pingAfterMs: 20000 } }, "/tmp");
  assert.deepEqual([c.xmpp.pingAfterMs, c.xmpp.pingTimeoutMs], [300000, 300000], "ping after it, drop after as much again, as before");
  assert.deepEqual([c.relay.pingAfterMs, c.relay.pingTimeoutMs], [20000, 30000], "keys given win over the fallback");
  assert.equal(validate({ limits: { idleTimeoutMs: 0 } }, "/tmp").xmpp.pingAfterMs, 0, "0 still means off");
  assert.equal(keyOf({ limits: { idleTimeoutMs: -5 } }), "limits.idleTimeoutMs");
});

test("drainTimeoutMs: 10 s by default, an integer in [100, 600000]", { timeout: 5000 }, () => {
  assert.equal(validate({}, "/tmp").drainTimeoutMs, 10000);
  assert.equal(validate({ drainTimeoutMs: 250 }, "/tmp").drainTimeoutMs, 250);
  assert.equal(keyOf({ drainTimeoutMs: 99 }), "drainTimeoutMs");
  assert.equal(keyOf({ drainTimeoutMs: 600001 }), "drainTimeoutMs");
  assert.equal(keyOf({ drainTimeoutMs: "10s" }), "drainTimeoutMs");
  assert.equal(keyOf({ drainTimeoutMs: 1.5 }), "drainTimeoutMs");
});

test("xmpp.maxBlocklistItems, xmpp.maxVcardBytes, xmpp.versionShowsOs (XEP-0191, XEP-0054, XEP-0092): defaults and checks", { timeout: 5000 }, () => {
  const c = validate({}, "/tmp");
  assert.deepEqual([c.xmpp.maxBlocklistItems, c.xmpp.maxVcardBytes, c.xmpp.versionShowsOs], [1000, 65536, false]);
  assert.equal(validate({ xmpp: { maxBlocklistItems: 0, maxVcardBytes: 0 } }, "/tmp").xmpp.maxVcardBytes, 0, "0: nothing may be blocked or stored");
  assert.equal(keyOf({ xmpp: { maxBlocklistItems: -1 } }), "xmpp.maxBlocklistItems");
  assert.equal(keyOf({ xmpp: { maxBlocklistItems: 1.5 } }), "xmpp.maxBlocklistItems");
  assert.equal(keyOf({ xmpp: { maxVcardBytes: "64k" } }), "xmpp.maxVcardBytes");
  assert.equal(keyOf({ xmpp: { maxVcardBytes: 16777217 } }), "xmpp.maxVcardBytes");
  assert.equal(validate({ limits: { maxStanzaBytes: 4096 } }, "/tmp").xmpp.maxVcardBytes, 65536, "a smaller stanza limit is no error: it caps vCards too");
  assert.equal(keyOf({ xmpp: { versionShowsOs: "yes" } }), "xmpp.versionShowsOs");
});

test("xmpp.mam keys (XEP-0313 archives): defaults and checks", { timeout: 5000 }, () => {
  const c = validate({}, "/tmp");
  assert.deepEqual(c.xmpp.mam, { enabled: false, defaultMode: "always", maxPageSize: 100, retentionDays: 0, maxQueued: 100000, maxBatch: 500, prefsCacheSize: 100000, gatherMs: 50 });
  const on = validate({ xmpp: { mam: { enabled: true, defaultMode: "roster", retentionDays: 30 } } }, "/tmp").xmpp.mam;
  assert.deepEqual(on, { enabled: true, defaultMode: "roster", maxPageSize: 100, retentionDays: 30, maxQueued: 100000, maxBatch: 500, prefsCacheSize: 100000, gatherMs: 50 }, "the rest keep their defaults");
  assert.equal(keyOf({ xmpp: { mam: { enabled: "yes" } } }), "xmpp.mam.enabled");
  assert.equal(keyOf({ xmpp: { mam: { defaultMode: "sometimes" } } }), "xmpp.mam.defaultMode");
  assert.equal(keyOf({ xmpp: { mam: { maxPageSize: 0 } } }), "xmpp.mam.maxPageSize");
  assert.equal(keyOf({ xmpp: { mam: { maxPageSize: 5000 } } }), "xmpp.mam.maxPageSize");
  assert.equal(keyOf({ xmpp: { mam: { retentionDays: -1 } } }), "xmpp.mam.retentionDays");
  assert.equal(keyOf({ xmpp: { mam: { retentionDays: 1.5 } } }), "xmpp.mam.retentionDays");
  assert.equal(keyOf({ xmpp: { mam: { maxQueued: 0 } } }), "xmpp.mam.maxQueued");
  assert.equal(keyOf({ xmpp: { mam: { maxBatch: 0 } } }), "xmpp.mam.maxBatch");
  assert.equal(validate({ xmpp: { mam: { prefsCacheSize: 10 } } }, "/tmp").xmpp.mam.prefsCacheSize, 10);
  assert.equal(keyOf({ xmpp: { mam: { prefsCacheSize: 0 } } }), "xmpp.mam.prefsCacheSize", "at least one user kept");
  assert.equal(keyOf({ xmpp: { mam: { prefsCacheSize: 2.5 } } }), "xmpp.mam.prefsCacheSize");
  assert.equal(keyOf({ xmpp: { mam: { prefsCacheSize: "many" } } }), "xmpp.mam.prefsCacheSize");
  assert.equal(validate({ xmpp: { mam: { gatherMs: 0 } } }, "/tmp").xmpp.mam.gatherMs, 0, "0: a batch per turn");
  assert.equal(keyOf({ xmpp: { mam: { gatherMs: -1 } } }), "xmpp.mam.gatherMs");
  assert.equal(keyOf({ xmpp: { mam: { gatherMs: 60000 } } }), "xmpp.mam.gatherMs");
  assert.equal(keyOf({ xmpp: { mam: { retention: 3 } } }), "xmpp.mam.retention", "an unknown key is named");
});

test("upload keys (XEP-0363 HTTP File Upload): defaults, derived values and checks", { timeout: 5000 }, () => {
  const c = validate({}, "/tmp").upload;
  assert.equal(c.enabled, false);
  assert.equal(c.domain, "upload.localhost", "upload.<domain> by default");
  assert.equal(c.path, "/tmp/data/uploads", "beside the SQLite file by default");
  assert.deepEqual(c.http, { host: "127.0.0.1", port: 5443, tls: null, headersTimeoutMs: 10000, idleTimeoutMs: 30000, maxConnections: 1000 });
  assert.deepEqual([c.publicUrl, c.maxFileBytes, c.quotaBytes, c.expireAfterMs, c.slotTimeoutMs, c.secret], [null, 104857600, 1073741824, 604800000, 60000, null]);
  assert.equal(validate({ domain: "Example.COM" }, "/tmp").upload.domain, "upload.example.com");
  assert.equal(validate({ storage: { path: "/var/lib/sb/db.sqlite" } }, "/tmp").upload.path, "/var/lib/sb/uploads");
  assert.equal(validate({ storage: { path: ":memory:" } }, "/etc/sb").upload.path, "/etc/sb/data/uploads");
  assert.equal(validate({ upload: { path: "files" } }, "/etc/sb").upload.path, "/etc/sb/files", "relative to the config file");
  const on = validate({ upload: { enabled: true, domain: "files.localhost", publicUrl: "https://files.example.com/up/", http: { tls: { cert: "c.pem", key: "k.pem" } }, secret: "x".repeat(32) } }, "/etc/sb").upload;
  assert.equal(on.publicUrl, "https://files.example.com/up", "the trailing slash is dropped");
  assert.deepEqual(on.http.tls, { cert: "/etc/sb/c.pem", key: "/etc/sb/k.pem" });
  assert.equal(on.http.port, 5443, "the rest of http keeps its defaults");
  assert.equal(keyOf({ upload: { enabled: 1 } }), "upload.enabled");
  assert.equal(keyOf({ upload: { domain: "localhost" } }), "upload.domain", "the service needs its own address");
  assert.equal(keyOf({ upload: { domain: "bad domain" } }), "upload.domain");
  assert.equal(keyOf({ upload: { http: { port: 70000 } } }), "upload.http.port");
  assert.equal(keyOf({ upload: { enabled: true, http: { port: 9464 } } }), "upload.http.port", "the admin listener's port");
  assert.equal(keyOf({ upload: { enabled: true, http: { port: 5222 } }, listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 5222 }] }), "upload.http.port");
  assert.equal(keyOf({ upload: { http: { tls: { cert: "c.pem" } } } }), "upload.http.tls.key");
  assert.equal(keyOf({ upload: { http: { tls: { cert: "c.pem", key: "k.pem", ca: "x" } } } }), "upload.http.tls.ca");
  assert.equal(keyOf({ upload: { http: { headersTimeoutMs: 10 } } }), "upload.http.headersTimeoutMs");
  assert.equal(keyOf({ upload: { http: { idleTimeoutMs: 1.5 } } }), "upload.http.idleTimeoutMs");
  assert.equal(keyOf({ upload: { http: { maxConnections: 0 } } }), "upload.http.maxConnections");
  assert.equal(keyOf({ upload: { publicUrl: "ftp://x" } }), "upload.publicUrl");
  assert.equal(keyOf({ upload: { publicUrl: "https://x/?a=1" } }), "upload.publicUrl");
  assert.equal(keyOf({ upload: { publicUrl: "not a url" } }), "upload.publicUrl");
  assert.equal(keyOf({ upload: { path: "" } }), "upload.path");
  assert.equal(keyOf({ upload: { maxFileBytes: 0 } }), "upload.maxFileBytes");
  assert.equal(keyOf({ upload: { quotaBytes: 1000 } }), "upload.quotaBytes", "a quota below the largest file");
  assert.equal(validate({ upload: { quotaBytes: 0 } }, "/tmp").upload.quotaBytes, 0, "0: no quota");
  assert.equal(keyOf({ upload: { expireAfterMs: 10 } }), "upload.expireAfterMs");
  assert.equal(validate({ upload: { expireAfterMs: 0 } }, "/tmp").upload.expireAfterMs, 0, "0: kept for ever");
  assert.equal(keyOf({ upload: { slotTimeoutMs: 0 } }), "upload.slotTimeoutMs");
  assert.equal(keyOf({ upload: { secret: "short" } }), "upload.secret");
  assert.equal(keyOf({ upload: { quota: 1 } }), "upload.quota", "an unknown key is named");
});

test("xmpp.components and component listeners (XEP-0114): defaults and checks", { timeout: 5000 }, () => {
  assert.deepEqual(validate({}, "/tmp").xmpp.components, []);
  const listeners = [{ protocol: "component", transport: "tcp", host: "127.0.0.1", port: 5347 }];
  const c = validate({ listeners, xmpp: { components: [{ domain: "GW.localhost", secret: "s3cret", name: "SMS" }] } }, "/tmp");
  assert.deepEqual(c.xmpp.components, [{ domain: "gw.localhost", secret: "s3cret", name: "SMS" }], "the domain is case-folded");
  assert.equal(c.listeners[0].protocol, "component");
  assert.equal(keyOf({ listeners }), "listeners[0]", "a component listener without components");
  assert.equal(keyOf({ listeners: [{ ...listeners[0], transport: "websocket", path: "/c" }], xmpp: { components: [{ domain: "gw", secret: "x" }] } }), "listeners[0].transport");
  assert.equal(keyOf({ xmpp: { components: { domain: "gw", secret: "x" } } }), "xmpp.components");
  assert.equal(keyOf({ xmpp: { components: [{ domain: "gw" }] } }), "xmpp.components[0].secret");
  assert.equal(keyOf({ xmpp: { components: [{ domain: "g w", secret: "x" }] } }), "xmpp.components[0].domain");
  assert.equal(keyOf({ xmpp: { components: [{ domain: "localhost", secret: "x" }] } }), "xmpp.components[0].domain", "not the server's own domain");
  assert.equal(keyOf({ xmpp: { components: [{ domain: "gw", secret: "x" }, { domain: "GW", secret: "y" }] } }), "xmpp.components[1].domain", "each domain once");
  assert.equal(keyOf({ xmpp: { components: [{ domain: "gw", secret: "x", port: 1 }] } }), "xmpp.components[0].port", "an unknown key is named");
});

test("xmpp.register keys (XEP-0077): off by default, password change on; checks", { timeout: 5000 }, () => {
  assert.deepEqual(validate({}, "/tmp").xmpp.register, { enabled: false, maxPerIp: 5, windowMs: 3600000, passwordChange: true, remove: true });
  const on = validate({ xmpp: { register: { enabled: true, maxPerIp: 2 } } }, "/tmp").xmpp.register;
  assert.deepEqual(on, { enabled: true, maxPerIp: 2, windowMs: 3600000, passwordChange: true, remove: true });
  assert.equal(keyOf({ xmpp: { register: { enabled: 1 } } }), "xmpp.register.enabled");
  assert.equal(keyOf({ xmpp: { register: { passwordChange: "no" } } }), "xmpp.register.passwordChange");
  assert.equal(keyOf({ xmpp: { register: { remove: null } } }), "xmpp.register.remove");
  assert.equal(keyOf({ xmpp: { register: { maxPerIp: 0 } } }), "xmpp.register.maxPerIp");
  assert.equal(keyOf({ xmpp: { register: { windowMs: 10 } } }), "xmpp.register.windowMs");
  assert.equal(keyOf({ xmpp: { register: { captcha: true } } }), "xmpp.register.captcha");
});

test("xmpp.pep keys (XEP-0163, XEP-0115): defaults and checks", { timeout: 5000 }, () => {
  const c = validate({}, "/tmp");
  assert.deepEqual(c.xmpp.pep, { maxItemBytes: 262144, maxItemsPerNode: 256, maxNodes: 256, capsCacheSize: 10000, capsTimeoutMs: 10000 });
  const some = validate({ xmpp: { pep: { maxItemBytes: 1024, maxNodes: 0 } } }, "/tmp").xmpp.pep;
  assert.deepEqual(some, { maxItemBytes: 1024, maxItemsPerNode: 256, maxNodes: 0, capsCacheSize: 10000, capsTimeoutMs: 10000 }, "the rest keep their defaults");
  assert.equal(keyOf({ xmpp: { pep: { maxItemBytes: 0 } } }), "xmpp.pep.maxItemBytes");
  assert.equal(keyOf({ xmpp: { pep: { maxItemBytes: "1M" } } }), "xmpp.pep.maxItemBytes");
  assert.equal(keyOf({ xmpp: { pep: { maxItemsPerNode: 0 } } }), "xmpp.pep.maxItemsPerNode");
  assert.equal(keyOf({ xmpp: { pep: { maxNodes: -1 } } }), "xmpp.pep.maxNodes");
  assert.equal(keyOf({ xmpp: { pep: { capsCacheSize: 0 } } }), "xmpp.pep.capsCacheSize");
  assert.equal(keyOf({ xmpp: { pep: { capsTimeoutMs: 10 } } }), "xmpp.pep.capsTimeoutMs");
  assert.equal(keyOf({ xmpp: { pep: { cacheSize: 3 } } }), "xmpp.pep.cacheSize", "an unknown key is named");
  assert.equal(keyOf({ xmpp: { pep: 5 } }), "xmpp.pep");
});

test("xmpp.sasl2 and xmpp.fast keys (XEP-0388, XEP-0484): defaults and checks", { timeout: 5000 }, () => {
  const c = validate({}, "/tmp");
  assert.deepEqual(c.xmpp.sasl2, { enabled: true }, "on by default (docs/configuration.md)");
  assert.deepEqual(c.xmpp.fast, { enabled: true, tokenLifetimeMs: 1209600000, rotateBeforeMs: 259200000 });
  const off = validate({ xmpp: { sasl2: { enabled: false }, fast: { tokenLifetimeMs: 86400000, rotateBeforeMs: 0 } } }, "/tmp").xmpp;
  assert.deepEqual([off.sasl2, off.fast], [{ enabled: false }, { enabled: true, tokenLifetimeMs: 86400000, rotateBeforeMs: 0 }], "the rest keep their defaults");
  assert.equal(keyOf({ xmpp: { sasl2: { enabled: 1 } } }), "xmpp.sasl2.enabled");
  assert.equal(keyOf({ xmpp: { sasl2: true } }), "xmpp.sasl2");
  assert.equal(keyOf({ xmpp: { fast: { enabled: "no" } } }), "xmpp.fast.enabled");
  assert.equal(keyOf({ xmpp: { fast: { tokenLifetimeMs: 59999 } } }), "xmpp.fast.tokenLifetimeMs");
  assert.equal(keyOf({ xmpp: { fast: { tokenLifetimeMs: 31536000001 } } }), "xmpp.fast.tokenLifetimeMs");
  assert.equal(keyOf({ xmpp: { fast: { rotateBeforeMs: -1 } } }), "xmpp.fast.rotateBeforeMs");
  assert.equal(keyOf({ xmpp: { fast: { tokenLifetimeMs: 3600000, rotateBeforeMs: 3600000 } } }), "xmpp.fast.rotateBeforeMs", "rotation must leave the token some life");
  assert.equal(keyOf({ xmpp: { fast: { lifetime: 5 } } }), "xmpp.fast.lifetime", "an unknown key is named");
});

test("muc keys (XEP-0045): defaults, the service domain, checks", { timeout: 5000 }, () => {
  const c = validate({}, "/tmp");
  assert.deepEqual(c.muc, { enabled: false, domain: "conference.localhost", maxRoomsPerWorker: 10000, maxOccupants: 200, historyMessages: 20, maxNickLength: 64, maxPresencePerSecond: 5, mam: { enabled: false, maxPageSize: 100 } });
  assert.equal(validate({ domain: "Example.ORG", muc: { enabled: true } }, "/tmp").muc.domain, "conference.example.org", "derived from the server's domain");
  assert.equal(validate({ muc: { domain: "rooms.example.org" } }, "/tmp").muc.domain, "rooms.example.org");
  assert.equal(keyOf({ muc: { enabled: 1 } }), "muc.enabled");
  assert.equal(keyOf({ muc: { domain: "Rooms" } }), "muc.domain");
  assert.equal(keyOf({ domain: "a.b", muc: { domain: "a.b" } }), "muc.domain");
  assert.equal(keyOf({ muc: { maxOccupants: 0 } }), "muc.maxOccupants");
  assert.equal(keyOf({ muc: { historyMessages: -1 } }), "muc.historyMessages");
  assert.equal(keyOf({ muc: { maxNickLength: 2000 } }), "muc.maxNickLength");
  assert.equal(keyOf({ muc: { maxRoomsPerWorker: 0 } }), "muc.maxRoomsPerWorker");
  assert.equal(keyOf({ muc: { maxPresencePerSecond: 0.5 } }), "muc.maxPresencePerSecond");
  assert.equal(keyOf({ muc: { rooms: 3 } }), "muc.rooms");
  assert.equal(validate({ muc: { mam: { enabled: true } } }, "/tmp").muc.mam.maxPageSize, 100, "room archives: a page size of their own");
  assert.equal(keyOf({ muc: { mam: true } }), "muc.mam");
  assert.equal(keyOf({ muc: { mam: { enabled: "yes" } } }), "muc.mam.enabled");
  assert.equal(keyOf({ muc: { mam: { maxPageSize: 0 } } }), "muc.mam.maxPageSize");
  assert.equal(keyOf({ muc: { mam: { retention: 1 } } }), "muc.mam.retention");
});
