import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { ChildProcess } from "node:child_process";
import { SqliteStore } from "../../src/store/sqlite-store.js";
import type { BenchAccount } from "./accounts.js";
import { freePort, ProcWatch, spawnPinned, stopChild, waitPort } from "./proc.js";

export const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

export interface RunningServer {
  name: string;
  child: ChildProcess;
  watch: ProcWatch;
  dir: string;
  /** Where its /metrics answers (Switchboard only). */
  adminPort?: number;
  stop(): Promise<void>;
}

/**
 * Switchboard as a user runs it (`switchboard start --config FILE`), pinned to
 * `cpu`, with its accounts written straight into its SQLite store.
 */
export async function startSwitchboard(opts: { cpu: string; config: Record<string, unknown>; accounts: BenchAccount[]; waitOn: number[]; nodeArgs?: string[] }): Promise<RunningServer> {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-bench-"));
  const dbPath = join(dir, "db.sqlite");
  const store = new SqliteStore(dbPath);
  await store.putUsers(opts.accounts.map((a) => [a.user, a.creds]));
  await store.close();
  // The admin listener on as in production, on a free port (runs side by side never collide on 9464) that the bench scrapes.
  // A caller that configures its own admin listener (the soak) is waited on there.
  const adminPort = (opts.config.admin as { port?: number } | undefined)?.port ?? (await freePort());
  const config = { log: { level: "warn", format: "text" }, storage: { type: "sqlite", path: dbPath }, admin: { port: adminPort }, ...opts.config };
  const file = join(dir, "config.json");
  writeFileSync(file, JSON.stringify(config, null, 2));
  const child = spawnPinned(opts.cpu, process.execPath, [...(opts.nodeArgs ?? []), join(REPO, "dist/src/cli/main.js"), "start", "--config", file], { cwd: dir, stdio: ["ignore", "inherit", "inherit"] });
  await Promise.all([...opts.waitOn, adminPort].map((p) => waitPort(p)));
  const watch = new ProcWatch(child.pid!);
  return {
    name: "switchboard",
    child,
    watch,
    dir,
    adminPort,
    stop: async () => {
      watch.stop();
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
