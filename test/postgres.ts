import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort, processTree } from "../bench/lib/proc.js";
import type { PostgresConfig } from "../src/store/postgres.js";
import { defaults } from "../src/config/config.js";

/**
 * A real PostgreSQL server for one test file: initdb in a temp dir, a free port on
 * 127.0.0.1, trust authentication for loopback; removed after. Debian's package
 * (`postgresql`, which .ci/run installs) keeps its binaries in
 * /usr/lib/postgresql/<version>/bin; elsewhere they may be on the PATH. As root
 * (CI) the server runs as the `postgres` user, which PostgreSQL requires.
 */

function findBin(): string | null {
  const debian = "/usr/lib/postgresql";
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter((v) => existsSync(join(debian, v, "bin", "initdb")) && existsSync(join(debian, v, "bin", "postgres")))
      .sort((a, b) => Number(b) - Number(a));
    if (versions.length > 0) return join(debian, versions[0], "bin");
  }
  const found = spawnSync("sh", ["-c", "command -v initdb"], { encoding: "utf8" });
  const path = found.status === 0 ? found.stdout.trim() : "";
  return path !== "" && existsSync(join(path, "..", "postgres")) ? join(path, "..") : null;
}

/** Root runs the server as `postgres` (uid, gid); anyone else as themselves. */
function runAs(): { uid: number; gid: number } | null | "missing" {
  if (process.getuid?.() !== 0) return null;
  const id = (flag: string) => spawnSync("id", [flag, "postgres"], { encoding: "utf8" });
  const u = id("-u");
  const g = id("-g");
  if (u.status !== 0 || g.status !== 0) return "missing";
  return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
}

const BIN = findBin();
const USER = runAs();

/** Why PostgreSQL tests cannot run here, or null when they can (node:test's `skip` takes it). */
export const HAVE_POSTGRES: string | null =
  BIN === null ? "PostgreSQL is not installed (initdb, postgres: Debian package postgresql)" : USER === "missing" ? "running as root without a postgres user to run the server as" : null;

export interface PostgresServer {
  port: number;
  pid: number;
  /** storage.postgres for `database` on this server (user postgres, trust). */
  config(database?: string): PostgresConfig;
  /** A fresh, empty database; returns its storage.postgres. */
  createDatabase(name: string): Promise<PostgresConfig>;
  /** Stops the server (fast shutdown) and waits for it to exit; the data stays for start(). */
  halt(): Promise<void>;
  /** Starts it again on the same port and data after halt(). */
  start(): Promise<void>;
  /** SIGSTOP to the server and its backends (the processes it started): connections stay open, nothing answers. */
  pause(): void;
  /** SIGCONT to them, after pause(). */
  resume(): void;
  /** Stops it and removes its files. */
  stop(): Promise<void>;
}

/** Extra server settings (`-c name=value`), and where its log goes (benchmarks that trace it: bench/mam-query.ts). */
export interface PostgresOptions {
  settings?: Record<string, string>;
  log?: (chunk: string) => void;
}

export async function startPostgres(opts: PostgresOptions = {}): Promise<PostgresServer> {
  if (HAVE_POSTGRES !== null) throw new Error(HAVE_POSTGRES);
  const bin = BIN!;
  const as: { uid?: number; gid?: number } = USER === null || USER === "missing" ? {} : USER;
  const dir = mkdtempSync(join(tmpdir(), "switchboard-pg-"));
  if (as.uid !== undefined) chownSync(dir, as.uid, as.gid!);
  const data = join(dir, "data");
  const init = spawnSync(join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "--locale=C", "-E", "UTF8"], { ...as, encoding: "utf8" });
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
  }
  const port = await freePort();
  let child: ChildProcess | null = null;
  let output = "";

  const launch = async () => {
    output = "";
    // Durability is not what these tests are about: no fsync. The socket directory is ours, not /var/run.
    child = spawn(
      join(bin, "postgres"),
      ["-D", data, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", `unix_socket_directories=${dir}`, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200", ...Object.entries(opts.settings ?? {}).flatMap(([k, v]) => ["-c", `${k}=${v}`])],
      { ...as, stdio: ["ignore", "pipe", "pipe"] },
    );
    // Not left behind if this test process ends without stop().
    const c = child;
    process.once("exit", () => c.exitCode === null && c.signalCode === null && c.kill("SIGKILL"));
    child.stdout!.on("data", (b) => ((output += b), opts.log?.(String(b))));
    child.stderr!.on("data", (b) => ((output += b), opts.log?.(String(b))));
    await ready(port, 30_000, () => output, () => child!.exitCode !== null);
  };

  const halt = () =>
    new Promise<void>((resolve) => {
      const c = child;
      if (c === null || c.exitCode !== null || c.signalCode !== null) return resolve();
      c.once("exit", () => resolve());
      // SIGINT: PostgreSQL's fast shutdown (clients are disconnected at once).
      c.kill("SIGINT");
    });

  await launch();
  const server: PostgresServer = {
    port,
    get pid() {
      return child!.pid!;
    },
    config: (database = "postgres") => ({ ...defaults().storage.postgres, host: "127.0.0.1", port, user: "postgres", database, connectTimeoutMs: 2000, statementTimeoutMs: 5000 }),
    async createDatabase(name) {
      const c = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres" });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS "${name}"`);
        await c.query(`CREATE DATABASE "${name}"`);
      } finally {
        await c.end();
      }
      return server.config(name);
    },
    halt,
    start: launch,
    pause: () => signalTree(child!.pid!, "SIGSTOP"),
    resume: () => signalTree(child!.pid!, "SIGCONT"),
    async stop() {
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

/** The postmaster first on SIGSTOP (so it forks nothing new meanwhile), last on SIGCONT. */
function signalTree(pid: number, sig: "SIGSTOP" | "SIGCONT"): void {
  const tree = processTree(pid);
  for (const p of sig === "SIGSTOP" ? tree : tree.reverse()) {
    try {
      process.kill(p, sig);
    } catch {
      // Gone meanwhile.
    }
  }
}

/** Until a query answers (not only the port: the server accepts before it finishes recovery). */
async function ready(port: number, ms: number, output: () => string, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const c = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres", connectionTimeoutMillis: 1000 });
    c.on("error", () => {});
    try {
      await c.connect();
      await c.query("SELECT 1");
      await c.end();
      return;
    } catch {
      await c.end().catch(() => {});
    }
    if (exited()) throw new Error(`postgres exited at start: ${output()}`);
    if (Date.now() >= deadline) throw new Error(`postgres did not answer within ${ms} ms: ${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
