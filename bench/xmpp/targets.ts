import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BenchAccount } from "../lib/accounts.js";
import { ensureCommand, freePort, ProcWatch, spawnPinned, stopChild, versionOf, waitPort } from "../lib/proc.js";
import { startSwitchboard, type RunningServer } from "../lib/switchboard.js";

/** BENCH_KEEP_DIR=1 keeps a peer's temp dir (config, logs) for a post-mortem. */
function removeDir(dir: string): void {
  if (process.env.BENCH_KEEP_DIR) console.error(`bench: kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}

export type TargetName = "switchboard" | "prosody" | "ejabberd" | "custom";

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

/** ejabberd's external-auth protocol (2-byte length, "auth:user:host:password"): userK has password pwdK. */
const EXTAUTH = `import sys, struct
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    h = inp.read(2)
    if len(h) < 2:
        sys.exit(0)
    op = inp.read(struct.unpack(">H", h)[0]).decode().split(":", 3)
    user = op[1] if len(op) > 1 else ""
    known = user.startswith("user") and user[4:].isdigit()
    ok = known and (op[0] != "auth" or op[3] == "pwd" + user[4:])
    out.write(struct.pack(">HH", 2, 1 if ok else 0))
    out.flush()
`;

/**
 * ejabberd 23.01 from Debian, run by its own ejabberdctl in the foreground with
 * a config dir of ours; no epmd (ERL_DIST_PORT), accounts by external auth.
 */
async function ejabberd(cpu: string): Promise<Target> {
  ensureCommand("ejabberdctl", "ejabberd");
  const dir = mkdtempSync(join(tmpdir(), "bench-ejabberd-"));
  chmodSync(dir, 0o755);
  const port = await freePort();
  const dist = await freePort();
  for (const d of ["spool", "logs"]) mkdirSync(join(dir, d));
  writeFileSync(join(dir, "extauth.py"), EXTAUTH, { mode: 0o755 });
  writeFileSync(join(dir, "inetrc"), ""); // ejabberdctl points ERL_INETRC here
  // ejabberdctl started as root runs erl through \`su ejabberd\`, and su's PAM session
  // resets the soft open-files limit to 1,024: ejabberd then fails every accept
  // ("Failed TCP accept: too many open files") from about 1,000 clients on. Its
  // ejabberdctl.cfg may set ERL, so erl starts through this wrapper at the hard limit.
  writeFileSync(join(dir, "erl"), `#!/bin/sh\nulimit -n "$(ulimit -Hn)"\nexec /usr/bin/erl "$@"\n`, { mode: 0o755 });
  const settings = [
    "listener `shaper: none` and `shaper_rules: c2s_shaper: none` (the default `normal` shaper is 1,000 B/s per client)",
    "`max_stanza_size: 262144`, `starttls_required: false` (plain TCP on loopback like the others)",
    "`auth_method: external` with a small Python script (so only PLAIN is offered) and `auth_use_cache: true`; accounts are not created at all",
    "modules: mod_roster, mod_disco, mod_ping only; `loglevel: warning`",
    "Erlang VM: `+S 1:1` (one scheduler for its one core), `+sbwt none +sbwtdcpu none +sbwtdio none` (no busy-waiting counted as CPU), `+K true`, `ERL_MAX_PORTS=32000`; `ERL_DIST_PORT` so no epmd is left running",
  ];
  writeFileSync(
    join(dir, "ejabberd.yml"),
    `hosts: ["localhost"]
loglevel: warning
auth_method: external
extauth_program: "python3 ${dir}/extauth.py"
auth_use_cache: true
listen:
  - port: ${port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
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
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 +S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none"
`,
  );
  spawnSync("chown", ["-R", "ejabberd", dir]);
  const child = spawnPinned(cpu, "ejabberdctl", ["--config-dir", dir, "--spool", join(dir, "spool"), "--logs", join(dir, "logs"), "--node", "bench@localhost", "foreground"], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  await waitPort(port, "127.0.0.1", 120_000);
  const watch = new ProcWatch(child.pid!);
  return {
    server: { name: "ejabberd", child, watch, dir, stop: async () => (watch.stop(), await stopChild(child, 10_000), removeDir(dir)) },
    port,
    version: `ejabberd ${versionOf("dpkg-query", ["-W", "-f=${Version}", "ejabberd"])}`,
    settings,
  };
}

async function switchboard(cpu: string, accounts: BenchAccount[], nodeArgs: string[]): Promise<Target> {
  const port = await freePort();
  const settings = [
    "one worker (one process), SQLite store in a temp dir, accounts written into it with the same SCRAM keys",
    "`xmpp` listener on plain TCP: loopback is exempt from `requireEncryption` by default (`xmpp.exemptLoopback`)",
    "`log.level: warn`; every other setting is the default",
  ];
  const server = await startSwitchboard({ cpu, accounts, waitOn: [port], nodeArgs, config: { listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port }] } });
  return { server, port, version: `Switchboard ${process.env.npm_package_version ?? "0.1.0"} (Node.js ${process.version})`, settings };
}

export async function startTarget(name: TargetName, cpu: string, accounts: BenchAccount[], opts: { port?: number; nodeArgs?: string[] }): Promise<Target> {
  switch (name) {
    case "prosody":
      return prosody(cpu, accounts);
    case "ejabberd":
      return ejabberd(cpu);
    case "switchboard":
      return switchboard(cpu, accounts, opts.nodeArgs ?? []);
    case "custom":
      if (opts.port === undefined) throw new Error("--target custom needs --port (and --host, --domain)");
      return { server: null, port: opts.port, version: "custom", settings: ["a server started by the user"] };
  }
}
