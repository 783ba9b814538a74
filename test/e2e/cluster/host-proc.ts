import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { waitUntil, within } from "../../helpers.js";
import { HostLog } from "./host-log.js";

/** The real CLI, as an operator runs it. */
export const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "src", "cli", "main.js");

/** The pids whose parent is `pid` (a host primary's workers). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = readFileSync(`/proc/${name}/stat`, "utf8");
      if (Number(s.slice(s.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out.sort();
}

/** A temp dir with config.json (`config`) and users h0…h(users-1) with password pw, imported by the CLI. */
export function hostDir(config: object, users = 0): { dir: string; cfg: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-host-"));
  const cfg = join(dir, "config.json");
  writeFileSync(cfg, JSON.stringify(config));
  if (users > 0) {
    writeFileSync(join(dir, "users.csv"), Array.from({ length: users }, (_, i) => `h${i},pw`).join("\n"));
    const imp = spawnSync(process.execPath, [CLI, "users", "import", join(dir, "users.csv"), "--config", cfg], { encoding: "utf8" });
    assert.equal(imp.status, 0, imp.stderr);
  }
  return { dir, cfg, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** One `switchboard start` process: its log, and its exit code once it exits. */
export interface Host {
  child: ChildProcess;
  log: HostLog;
  exited: Promise<number | null>;
  /** SIGKILL to the host and its workers (test cleanup). */
  kill(): void;
  /** Waits for the exit (or fails the test after `ms`), giving the code. */
  exit(ms: number): Promise<number | null>;
}

export function startHost(cfg: string, env?: NodeJS.ProcessEnv): Host {
  const child = spawn(process.execPath, [CLI, "start", "--config", cfg], { stdio: ["ignore", "ignore", "pipe"], ...(env !== undefined ? { env: { ...process.env, ...env } } : {}) });
  const log = new HostLog();
  child.stderr!.on("data", log.onData);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    log,
    exited,
    kill: () => {
      for (const p of childrenOf(child.pid!)) process.kill(p, "SIGKILL");
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
    exit: (ms) => within(exited, ms, () => `the host to exit; its stderr:\n${log.text}`),
  };
}

/** A host started and ready: each of its `workers` logged that it started (within 20 s). */
export async function startedHost(cfg: string, workers: number): Promise<Host> {
  const host = startHost(cfg);
  await waitUntil(() => host.log.logged("switchboard started").length === workers, 20_000, () => `${workers} workers started; stderr:\n${host.log.text}`, 20);
  return host;
}

/** GET /readyz on an admin port: its status and body. */
export async function readyz(adminPort: number): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
  return { status: r.status, body: await r.text() };
}
