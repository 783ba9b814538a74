import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import Database from "better-sqlite3";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BenchAccount } from "../lib/accounts.js";
import { connect } from "node:net";
import { ensureCommand, ensurePackage, freePort, ProcWatch, sleep, spawnPinned, stopChild, versionOf, waitPort } from "../lib/proc.js";
import { REPO, startSwitchboard, type RunningServer } from "../lib/switchboard.js";
import { startPostgres } from "../../test/postgres.js";
import { PgStore } from "../../src/store/postgres-store.js";
import { silentLogger } from "../../src/log/logger.js";

/** ejabberd's SQLite schema, as Debian installs it. */
const EJABBERD_LITE_SQL = "/usr/share/ejabberd/sql/lite.sql";

/** BENCH_KEEP_DIR=1 keeps a peer's temp dir (config, logs) for a post-mortem. */
function removeDir(dir: string): void {
  if (process.env.BENCH_KEEP_DIR) console.error(`bench: kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}

export type TargetName = "switchboard" | "prosody" | "ejabberd" | "floor" | "custom";

export interface Target {
  server: RunningServer | null;
  port: number;
  version: string;
  /** Every setting changed from the server's defaults for this benchmark, and why. */
  settings: string[];
}

/**
 * Prosody 0.12 with internal_hashed accounts written as its own data files
 * (mod_auth_internal_hashed: salt, iteration_count, stored_key and server_key in hex).
 */
async function prosody(cpu: string, accounts: BenchAccount[]): Promise<Target> {
  ensureCommand("prosody", "prosody");
  const dir = mkdtempSync(join(tmpdir(), "bench-prosody-"));
  const port = await freePort();
  const acc = join(dir, "data", "localhost", "accounts");
  mkdirSync(acc, { recursive: true });
  const lua = (b: Buffer) => `"${[...b].map((x) => `\\${x}`).join("")}"`;
  for (const a of accounts) {
    writeFileSync(join(acc, `${a.user}.dat`), `return {\n\t["iteration_count"] = ${a.creds.iterations};\n\t["salt"] = ${lua(a.creds.salt)};\n\t["stored_key"] = "${a.creds.sha1.storedKey.toString("hex")}";\n\t["server_key"] = "${a.creds.sha1.serverKey.toString("hex")}";\n};\n`);
  }
  const settings = [
    "`network_backend = \"epoll\"` (the default select backend stops at 1,024 sockets)",
    "`network_settings = { nagle = false; tcp_backlog = 4096 }`: TCP_NODELAY on client sockets, as Switchboard sets it (Prosody's default leaves Nagle on; at 2,000 msg/s it made no difference: p99 70 ms with, 65 ms without), and a listen backlog of 4,096 (default 128) so a login burst cannot overflow the accept queue",
    "`mod_limits` not loaded: no c2s rate limit (Prosody's only throttle)",
    "`c2s_require_encryption = false`: plain TCP on loopback like the other servers (SCRAM-SHA-1 is still used)",
    "`modules_disabled = { \"s2s\", \"offline\" }`, modules_enabled = roster, saslauth, disco, ping",
    "`log`: warnings to a file only; `run_as_root = true` so it runs in the bench's temp dir",
  ];
  writeFileSync(
    join(dir, "prosody.cfg.lua"),
    `run_as_root = true
pidfile = "${dir}/prosody.pid"
data_path = "${dir}/data"
log = { warn = "${dir}/prosody.log" }
network_backend = "epoll"
network_settings = { nagle = false; tcp_backlog = 4096 }
modules_enabled = { "roster"; "saslauth"; "disco"; "ping" }
modules_disabled = { "s2s"; "offline" }
c2s_ports = { ${port} }
c2s_interfaces = { "127.0.0.1" }
s2s_ports = {}
c2s_require_encryption = false
authentication = "internal_hashed"
storage = "internal"
VirtualHost "localhost"
`,
  );
  const child = spawnPinned(cpu, "prosody", ["-F", "--config", join(dir, "prosody.cfg.lua")], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  await waitPort(port);
  const watch = new ProcWatch(child.pid!);
  return {
    server: { name: "prosody", child, watch, dir, stop: async () => (watch.stop(), await stopChild(child), removeDir(dir)) },
    port,
    version: `Prosody ${versionOf("dpkg-query", ["-W", "-f=${Version}", "prosody"])}`,
    settings,
  };
}

/**
 * ejabberd 23.01 from Debian, run by its own ejabberdctl in the foreground with
 * a config dir of ours; no epmd (ERL_DIST_PORT). Accounts: its SQL auth on an
 * SQLite file (Debian's erlang-p1-sqlite3) that we create from ejabberd's own
 * schema and fill with the same SCRAM-SHA-1 keys in one transaction, so it
 * offers SCRAM-SHA-1 like the others and no login waits on a helper process.
 */
async function ejabberd(cpu: string, accounts: BenchAccount[]): Promise<Target> {
  ensureCommand("ejabberdctl", "ejabberd");
  ensurePackage("erlang-p1-sqlite3");
  const dir = mkdtempSync(join(tmpdir(), "bench-ejabberd-"));
  chmodSync(dir, 0o755);
  const port = await freePort();
  const dist = await freePort();
  for (const d of ["spool", "logs"]) mkdirSync(join(dir, d));
  const db = new Database(join(dir, "ejabberd.db"));
  db.exec(readFileSync(EJABBERD_LITE_SQL, "utf8"));
  const put = db.prepare("INSERT INTO users (username, password, serverkey, salt, iterationcount) VALUES (?, ?, ?, ?, ?)");
  db.transaction(() => {
    for (const a of accounts) put.run(a.user, a.creds.sha1.storedKey.toString("base64"), a.creds.sha1.serverKey.toString("base64"), a.creds.salt.toString("base64"), a.creds.iterations);
  })();
  db.close();
  writeFileSync(join(dir, "inetrc"), ""); // ejabberdctl points ERL_INETRC here
  // ejabberdctl started as root runs erl through \`su ejabberd\`, and su's PAM session
  // resets the soft open-files limit to 1,024: ejabberd then fails every accept
  // ("Failed TCP accept: too many open files") from about 1,000 clients on. Its
  // ejabberdctl.cfg may set ERL, so erl starts through this wrapper at the hard limit.
  writeFileSync(join(dir, "erl"), `#!/bin/sh\nulimit -n "$(ulimit -Hn)"\nexec /usr/bin/erl "$@"\n`, { mode: 0o755 });
  const settings = [
    "listener `shaper: none` and `shaper_rules: c2s_shaper: none` (the default `normal` shaper is 1,000 B/s per client)",
    "`max_stanza_size: 262144`, `starttls_required: false` (plain TCP on loopback like the others), listener `backlog: 4096` (default 128: a login burst overflowed the accept queue and stalled a few connections for a minute)",
    "`cache_size: 20000` (default 1,000: the auth and roster caches were shrinking with more users)",
    "`auth_method: sql` on an SQLite file (`sql_type: sqlite`, Debian's erlang-p1-sqlite3) created from ejabberd's lite.sql with the accounts written in one transaction, `auth_password_format: scram` with the same SCRAM-SHA-1 keys as the others, `auth_use_cache: true` (the default); `default_db: mnesia` for everything else",
    "modules: mod_roster, mod_disco, mod_ping only; `loglevel: warning`",
    "Erlang VM: `+S 1:1` (one scheduler for its one core), `+sbwt none +sbwtdcpu none +sbwtdio none` (no busy-waiting counted as CPU), `+K true`, `ERL_MAX_PORTS=32000`; `-kernel inet_default_listen_options [{nodelay,true}]` (TCP_NODELAY as Switchboard sets it; ejabberd leaves Nagle on); erl started with the soft open-files limit raised to the hard one (20,000; \`su ejabberd\` otherwise leaves 1,024 and every accept past ~1,000 clients fails); `ERL_DIST_PORT` so no epmd is left running",
  ];
  writeFileSync(
    join(dir, "ejabberd.yml"),
    `hosts: ["localhost"]
loglevel: warning
auth_method: sql
auth_password_format: scram
auth_scram_hash: sha
auth_use_cache: true
cache_size: 20000
sql_type: sqlite
sql_database: "${dir}/ejabberd.db"
default_db: mnesia
listen:
  - port: ${port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
    backlog: 4096
    shaper: none
    access: all
    starttls_required: false
shaper_rules:
  c2s_shaper: none
  max_user_sessions: 10
modules:
  mod_roster: {}
  mod_disco: {}
  mod_ping: {}
`,
  );
  writeFileSync(
    join(dir, "ejabberdctl.cfg"),
    `ERL=${dir}/erl
POLL=true
ERL_MAX_PORTS=32000
ERL_PROCESSES=1000000
ERL_DIST_PORT=${dist}
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 -kernel inet_default_listen_options [{nodelay,true}] +S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none"
`,
  );
  spawnSync("chown", ["-R", "ejabberd", dir]);
  const child = spawnPinned(cpu, "ejabberdctl", ["--config-dir", dir, "--spool", join(dir, "spool"), "--logs", join(dir, "logs"), "--node", "bench@localhost", "foreground"], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  await waitPort(port, "127.0.0.1", 120_000);
  // The listener accepts before the SQL pool is up; logins then crash
  // (binary_to_existing_atom ejabberd_sql_localhost_1): wait for a SASL challenge.
  await untilChallenge(port, accounts[0]?.user ?? "user0", 60_000);
  const watch = new ProcWatch(child.pid!);
  return {
    server: { name: "ejabberd", child, watch, dir, stop: async () => (watch.stop(), await stopChild(child, 10_000), removeDir(dir)) },
    port,
    version: `ejabberd ${versionOf("dpkg-query", ["-W", "-f=${Version}", "ejabberd"])}`,
    settings,
  };
}

/** Resolves once a SCRAM-SHA-1 <auth> for `user` gets a <challenge> back (the account store answers). */
async function untilChallenge(port: number, user: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  const first = Buffer.from(`n,,n=${user},r=benchprobe0123456789`).toString("base64");
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      let buf = "";
      let sentAuth = false;
      const s = connect({ host: "127.0.0.1", port }, () => s.write("<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"));
      const done = (v: boolean) => (s.destroy(), clearTimeout(t), resolve(v));
      const t = setTimeout(() => done(false), 5000);
      s.setEncoding("utf8");
      s.on("data", (d: string) => {
        buf += d;
        if (!sentAuth && buf.includes("</stream:features>")) {
          sentAuth = true;
          s.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>${first}</auth>`);
        } else if (sentAuth && buf.includes("<challenge")) done(true);
      });
      s.on("error", () => done(false));
      s.on("close", () => done(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`no SASL challenge from 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(500);
  }
}

/**
 * Switchboard as a user runs it. With `workers` > 1: a host of that many
 * processes (node:cluster) whose bus is a nats-server started here on the
 * same CPUs; its CPU and memory count as the server's.
 */
async function switchboard(cpu: string, accounts: BenchAccount[], nodeArgs: string[], workers: number, writerThread: boolean | "always", custody = true, mam = false, handoff?: boolean, coalesceMs?: number, more?: MoreConfig, store: "sqlite" | "postgres" = "sqlite"): Promise<Target> {
  const port = await freePort();
  const listeners = [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port }];
  const common = [
    "`xmpp` listener on plain TCP: loopback is exempt from `requireEncryption` by default (`xmpp.exemptLoopback`)",
    writerThread === true ? "`log.level: warn`; every other setting is the default" : `\`log.level: warn\`, \`io.writerThread: ${JSON.stringify(writerThread)}\`; every other setting is the default`,
  ];
  const io = { ...(writerThread === true ? {} : { io: { writerThread } }), ...(mam ? { xmpp: { mam: { enabled: true } } } : {}) };
  if (mam) common.push(`XEP-0313 archives on (\`xmpp.mam.enabled: true\`), written to the same ${store === "postgres" ? "PostgreSQL database" : "SQLite file"}`);
  // A bench's own keys (bench/muc: the `muc` section), and why, before the line that says the rest is the default.
  Object.assign(io, more?.config ?? {});
  common.splice(1, 0, ...(more?.settings ?? []));
  const version = `Switchboard ${process.env.npm_package_version ?? "0.1.0"} (Node.js ${process.version})`;
  if (store === "postgres") {
    if (workers > 1) throw new Error("--store postgres: one worker only (--hosts runs several on PostgreSQL)");
    return onPostgres(cpu, accounts, nodeArgs, { listeners, ...io }, port, version, common);
  }
  if (workers <= 1) {
    const server = await startSwitchboard({ cpu, accounts, waitOn: [port], nodeArgs, config: { listeners, ...io } });
    return { server, port, version, settings: ["one worker (one process), SQLite store in a temp dir, accounts written into it with the same SCRAM keys", ...common] };
  }
  ensureCommand("nats-server", "nats-server");
  const natsPort = await freePort();
  const nats = spawnPinned(cpu, "nats-server", ["-a", "127.0.0.1", "-p", String(natsPort)], { stdio: ["ignore", "ignore", "inherit"] });
  await waitPort(natsPort);
  let host: RunningServer;
  try {
    host = await startSwitchboard({ cpu, accounts, waitOn: [port], nodeArgs, config: { listeners, ...io, cluster: { bus: "nats", workers, nats: { servers: [`nats://127.0.0.1:${natsPort}`] }, ...(custody ? {} : { custody: { maxHeld: 0 } }), ...(handoff === undefined ? {} : { handoff }), ...(coalesceMs === undefined ? {} : { coalesceMs }) } } });
  } catch (e) {
    await stopChild(nats);
    throw e;
  }
  // The primary listens as soon as one worker does: give the others their turn to join.
  await sleep(2000);
  host.watch.stop();
  const watch = new ProcWatch([host.child.pid!, nats.pid!]);
  const server: RunningServer = {
    ...host,
    watch,
    stop: async () => {
      watch.stop();
      await host.stop();
      await stopChild(nats);
    },
  };
  const settings = [
    `${workers} worker processes under node:cluster (\`cluster.workers: ${workers}\`), \`cluster.bus: nats\` through a nats-server (${versionOf("nats-server", ["--version"])}, default settings) on the same CPUs; its CPU and memory are counted as the server's`,
    "SQLite store in a temp dir shared by the workers, accounts written into it with the same SCRAM keys",
    ...(custody ? [] : ["custody off (`cluster.custody.maxHeld: 0`)"]),
    ...(handoff === undefined ? [] : [`\`cluster.handoff: ${handoff}\``]),
    ...(coalesceMs === undefined ? [] : [`\`cluster.coalesceMs: ${coalesceMs}\``]),
    ...common,
  ];
  return { server, port, version: `${version}, ${workers} workers`, settings };
}

/**
 * One worker on PostgreSQL (`--store postgres`), started here by test/postgres.ts (initdb in a temp dir,
 * fsync off, not pinned: the kernel places its backends); its CPU is not counted as the server's, and is
 * printed at the end of the run. The accounts are written into it with the same SCRAM keys.
 */
async function onPostgres(cpu: string, accounts: BenchAccount[], nodeArgs: string[], config: Record<string, unknown>, port: number, version: string, common: string[]): Promise<Target> {
  const pgs = await startPostgres();
  let server: RunningServer;
  try {
    const postgres = await pgs.createDatabase("bench");
    const store = await PgStore.open(postgres, silentLogger());
    await store.putUsers(accounts.map((a) => [a.user, a.creds]));
    await store.close();
    server = await startSwitchboard({ cpu, accounts: [], waitOn: [port], nodeArgs, config: { ...config, storage: { type: "postgres", postgres } } });
  } catch (e) {
    await pgs.stop();
    throw e;
  }
  const dbWatch = new ProcWatch(pgs.pid);
  const stop = server.stop;
  server.stop = async () => {
    console.error(`bench: PostgreSQL used ${dbWatch.cpu().total.toFixed(1)} CPU-s over the whole run (not counted as the server's)`);
    dbWatch.stop();
    await stop();
    await pgs.stop();
  };
  return { server, port, version, settings: ["one worker (one process), PostgreSQL store (initdb in a temp dir by test/postgres.ts: fsync off, trust on loopback), accounts written into it with the same SCRAM keys; PostgreSQL's CPU is not the server's", ...common] };
}

/** A byte forwarder that does no XMPP work (floor-server.ts): the yardstick for any Node.js server here. */
async function floor(cpu: string): Promise<Target> {
  const port = await freePort();
  const child = spawnPinned(cpu, process.execPath, [join(REPO, "dist/bench/xmpp/floor-server.js"), String(port)], { stdio: ["ignore", "inherit", "inherit"] });
  await waitPort(port);
  const watch = new ProcWatch(child.pid!);
  const server: RunningServer = {
    name: "floor",
    child,
    watch,
    dir: "",
    stop: async () => {
      watch.stop();
      await stopChild(child);
    },
  };
  const settings = ["not a server: any PLAIN login is taken unchecked, and each <message/>'s bytes are copied to the socket its `to` names (no parsing, routing tables, from-stamping or queues); TCP_NODELAY, one process pinned like the others"];
  return { server, port, version: `byte forwarder (Node.js ${process.version})`, settings };
}

/** Top-level config sections a bench adds to Switchboard's (e.g. bench/muc's `muc`), with the sentences that say why. */
export interface MoreConfig {
  config: Record<string, unknown>;
  settings: string[];
}

export async function startTarget(name: TargetName, cpu: string, accounts: BenchAccount[], opts: { port?: number; nodeArgs?: string[]; workers?: number; writerThread?: boolean | "always"; custody?: boolean; mam?: boolean; handoff?: boolean; coalesceMs?: number; more?: MoreConfig; store?: "sqlite" | "postgres" }): Promise<Target> {
  switch (name) {
    case "prosody":
      return prosody(cpu, accounts);
    case "ejabberd":
      return ejabberd(cpu, accounts);
    case "switchboard":
      return switchboard(cpu, accounts, opts.nodeArgs ?? [], opts.workers ?? 1, opts.writerThread ?? true, opts.custody ?? true, opts.mam ?? false, opts.handoff, opts.coalesceMs, opts.more, opts.store);
    case "floor":
      return floor(cpu);
    case "custom":
      if (opts.port === undefined) throw new Error("--target custom needs --port (and --host, --domain)");
      return { server: null, port: opts.port, version: "custom", settings: ["a server started by the user"] };
  }
}
