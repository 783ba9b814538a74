import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { processTree } from "./proc.js";

/**
 * A CPU budget for a server's processes: a Linux cgroup with CFS bandwidth control (v1's cpu controller, or
 * v2's cpu.max), so that one worker and n workers can be given 1 and n "cores" of the same size on a machine
 * with too few real ones, and their throughputs compared at saturation (issue 14: n workers against n times
 * one). Everything in the group shares the quota: the workers, their primary, their threads, a nats-server.
 * Needs root; says why when it cannot.
 */
export class CpuQuota {
  private readonly dir: string;
  private readonly root: string;
  private readonly v2: boolean;
  private readonly moved = new Set<number>();

  private constructor(dir: string, root: string, v2: boolean) {
    this.dir = dir;
    this.root = root;
    this.v2 = v2;
  }

  /** A group allowed `cores` CPUs' worth of time in every `periodUs` (short periods: throttling comes in small steps). */
  static create(cores: number, periodUs = 10_000): CpuQuota {
    if (!(cores > 0)) throw new Error(`CPU quota ${cores}: a number of cores above 0`);
    const name = `switchboard-bench-${process.pid}`;
    const quotaUs = Math.round(cores * periodUs);
    const v1 = "/sys/fs/cgroup/cpu";
    try {
      if (existsSync(join(v1, "cpu.cfs_quota_us"))) {
        const dir = join(v1, name);
        mkdirSync(dir);
        writeFileSync(join(dir, "cpu.cfs_period_us"), String(periodUs));
        writeFileSync(join(dir, "cpu.cfs_quota_us"), String(quotaUs));
        return new CpuQuota(dir, v1, false);
      }
      const v2 = "/sys/fs/cgroup";
      if (readFileSync(join(v2, "cgroup.controllers"), "utf8").split(/\s+/).includes("cpu")) {
        writeFileSync(join(v2, "cgroup.subtree_control"), "+cpu");
        const dir = join(v2, name);
        mkdirSync(dir);
        writeFileSync(join(dir, "cpu.max"), `${quotaUs} ${periodUs}`);
        return new CpuQuota(dir, v2, true);
      }
    } catch (e) {
      throw new Error(`--server-quota needs a cgroup with CPU bandwidth control (root; cgroup v1 cpu or v2 cpu.max): ${(e as Error).message}`);
    }
    throw new Error("--server-quota: no cgroup CPU controller on this machine");
  }

  /** Moves each root and all its descendants into the group (children forked later inherit it). */
  addTrees(roots: readonly number[]): void {
    for (const r of roots) {
      for (const pid of processTree(r)) {
        try {
          writeFileSync(join(this.dir, "cgroup.procs"), String(pid));
          this.moved.add(pid);
        } catch {
          // Exited meanwhile.
        }
      }
    }
  }

  /** Periods in which the group ran out of its quota, of all periods it ran in, and the time it waited. */
  throttling(): { periods: number; throttled: number; throttledSeconds: number } {
    const stat = new Map<string, number>();
    for (const line of readFileSync(join(this.dir, "cpu.stat"), "utf8").split("\n")) {
      const [k, v] = line.split(" ");
      if (k) stat.set(k, Number(v));
    }
    return {
      periods: stat.get("nr_periods") ?? NaN,
      throttled: stat.get("nr_throttled") ?? NaN,
      throttledSeconds: this.v2 ? (stat.get("throttled_usec") ?? NaN) / 1e6 : (stat.get("throttled_time") ?? NaN) / 1e9,
    };
  }

  /** Moves whatever is still in the group back to the root and removes it. */
  remove(): void {
    let left: string[] = [];
    try {
      left = readFileSync(join(this.dir, "cgroup.procs"), "utf8").split("\n").filter((x) => x !== "");
    } catch {
      return;
    }
    for (const pid of left) {
      try {
        writeFileSync(join(this.root, "cgroup.procs"), pid);
      } catch {
        // Exited meanwhile.
      }
    }
    try {
      rmdirSync(this.dir);
    } catch {
      // A process still exiting keeps it a moment; the next run's name differs (pid).
    }
  }
}
