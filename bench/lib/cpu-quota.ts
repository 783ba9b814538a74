import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { processTree } from "./proc.js";

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

function parentOf(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(s.slice(s.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return -1;
  }
}

/**
 * A CPU budget for a server's processes: a Linux cgroup with CFS bandwidth control (v1's cpu controller, or
 * v2's cpu.max), so that one worker and n workers can be given 1 and n "cores" of the same size on a machine
 * with too few real ones, and their throughputs compared at saturation (issue 14: n workers against n times
 * one). Everything in the group shares the quota: the workers, their primary, their threads, a nats-server.
 * Split (addTreesPerWorker), each worker also has a group of its own under it with an equal share, so that
 * one worker's burst cannot take another's time, as on a machine with a core per worker; the rest (primary,
 * nats-server) runs in a child group under the total alone. Needs root; says why when it cannot.
 */
export class CpuQuota {
  private readonly dir: string;
  private readonly root: string;
  private readonly v2: boolean;
  private readonly moved = new Set<number>();
  /** Groups under this one (addTreesPerWorker): the rest's, then each worker's. */
  private readonly children: CpuQuota[] = [];
  private limited = true;

  private constructor(dir: string, root: string, v2: boolean) {
    this.dir = dir;
    this.root = root;
    this.v2 = v2;
  }

  /** A group under this one, with its own quota of `cores` (undefined: only the parent's). */
  private child(name: string, cores: number | undefined, periodUs = 10_000): CpuQuota {
    const dir = join(this.dir, name);
    if (this.v2) writeFileSync(join(this.dir, "cgroup.subtree_control"), "+cpu");
    mkdirSync(dir);
    if (cores !== undefined) {
      const quotaUs = Math.round(cores * periodUs);
      if (this.v2) writeFileSync(join(dir, "cpu.max"), `${quotaUs} ${periodUs}`);
      else {
        writeFileSync(join(dir, "cpu.cfs_period_us"), String(periodUs));
        writeFileSync(join(dir, "cpu.cfs_quota_us"), String(quotaUs));
      }
    }
    const c = new CpuQuota(dir, this.root, this.v2);
    c.limited = cores !== undefined;
    this.children.push(c);
    return c;
  }

  /**
   * Splits the budget: each worker process (a node process whose parent is a node process of the trees: the
   * primary's forks) gets a group of `cores` ÷ workers under this one; everything else of the trees goes to a
   * group with no quota of its own, under the total. Returns how many workers were found.
   */
  addTreesPerWorker(roots: readonly number[], cores: number): number {
    const pids = roots.flatMap((r) => processTree(r));
    const node = new Set(pids.filter((pid) => commOf(pid) === "node"));
    const workers = [...node].filter((pid) => node.has(parentOf(pid)));
    if (workers.length === 0) throw new Error("--quota-per-worker: no worker processes found under the server");
    const mine = new Set(workers.flatMap((w) => processTree(w)));
    this.child("rest", undefined).addTrees(pids.filter((pid) => !mine.has(pid)), false);
    workers.forEach((w, i) => this.child(`w${i}`, cores / workers.length).addTrees([w]));
    return workers.length;
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
  addTrees(roots: readonly number[], descend = true): void {
    for (const r of roots) {
      for (const pid of descend ? processTree(r) : [r]) {
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
    // Split: the workers' groups, summed (each is throttled on its own).
    const limited = this.children.filter((c) => c.limited);
    if (limited.length > 0) {
      const all = limited.map((c) => c.throttling());
      return { periods: sum(all.map((t) => t.periods)), throttled: sum(all.map((t) => t.throttled)), throttledSeconds: sum(all.map((t) => t.throttledSeconds)) };
    }
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
    for (const c of this.children) c.remove();
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
