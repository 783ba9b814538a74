import { spawn, spawnSync, type ChildProcess, type StdioOptions } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { connect } from "node:net";
import { availableParallelism } from "node:os";

/** Linux clock ticks per second (getconf CLK_TCK); 100 on every kernel we run on. */
const HZ = 100;

/** The pid and all its descendants, found through /proc/N/stat's ppid. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (st === null) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(name));
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length > 0) {
    const p = todo.pop()!;
    out.push(p);
    for (const c of children.get(p) ?? []) todo.push(c);
  }
  return out;
}

/** CPU-seconds (user + system) spent so far by the processes of these trees (a process gone takes its count along). */
export function treesCpuSeconds(roots: number[]): number {
  let ticks = 0;
  for (const root of roots) for (const p of processTree(root)) ticks += readStat(p)?.cpuTicks ?? 0;
  return ticks / HZ;
}

function readStat(pid: number, path = `/proc/${pid}/stat`): { ppid: number; cpuTicks: number; sysTicks: number } | null {
  try {
    const s = readFileSync(path, "utf8");
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(f[1]), cpuTicks: Number(f[11]) + Number(f[12]), sysTicks: Number(f[12]) };
  } catch {
    return null;
  }
}

function statusKb(pid: number, key: string): number {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * CPU-seconds (user + system) and peak RSS of a server's processes. Sampled
 * while it runs, because a child that exits takes its counters with it.
 */
export class ProcWatch {
  private timer: NodeJS.Timeout;
  private peakKb = 0;

  private readonly roots: number[];

  /** `pid`: the server's process, or all of them (a host and its nats-server). */
  constructor(pid: number | number[], intervalMs = 500) {
    this.roots = typeof pid === "number" ? [pid] : pid;
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  /** Every process of the watched trees now. */
  pids(): number[] {
    return this.roots.flatMap((r) => processTree(r));
  }

  /** CPU-seconds spent so far by the whole tree. */
  cpuSeconds(): number {
    return this.cpu().total;
  }

  /**
   * CPU-seconds so far by the whole tree: all of it, the kernel's part (sockets, loopback, epoll), and the
   * processes' main threads alone (Node.js's event loop: what forwarding costs, without the threads beside
   * it, such as the archive's writer, the native writer, libuv's pool and V8's helpers).
   */
  cpu(): { total: number; sys: number; main: number; perRoot: number[] } {
    let ticks = 0;
    let sys = 0;
    let main = 0;
    // Each root's tree apart too: a host's workers and its nats-server are counted separately as well as together.
    const perRoot = this.roots.map((root) => {
      let rootTicks = 0;
      for (const p of processTree(root)) {
        const st = readStat(p);
        rootTicks += st?.cpuTicks ?? 0;
        sys += st?.sysTicks ?? 0;
        main += readStat(p, `/proc/${p}/task/${p}/stat`)?.cpuTicks ?? 0;
      }
      ticks += rootTicks;
      return rootTicks / HZ;
    });
    return { total: ticks / HZ, sys: sys / HZ, main: main / HZ, perRoot };
  }

  /**
   * Context switches so far (/proc/N/task/T/status): voluntary (the thread blocked: an event loop's
   * epoll_wait that slept, a futex) and involuntary (preempted), of every thread of the tree and of the
   * processes' main threads alone; and the main threads' kernel CPU-seconds (their stime).
   */
  switches(): { voluntary: number; involuntary: number; mainVoluntary: number; mainInvoluntary: number; mainSys: number } {
    const out = { voluntary: 0, involuntary: 0, mainVoluntary: 0, mainInvoluntary: 0, mainSys: 0 };
    for (const p of this.roots.flatMap(processTree)) {
      let tasks: string[];
      try {
        tasks = readdirSync(`/proc/${p}/task`);
      } catch {
        continue; // gone
      }
      for (const t of tasks) {
        try {
          const st = readFileSync(`/proc/${p}/task/${t}/status`, "utf8");
          const v = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0);
          const iv = Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0);
          out.voluntary += v;
          out.involuntary += iv;
          if (Number(t) === p) {
            out.mainVoluntary += v;
            out.mainInvoluntary += iv;
            out.mainSys += (readStat(p, `/proc/${p}/task/${p}/stat`)?.sysTicks ?? 0) / HZ;
          }
        } catch {
          // A thread that ended between the listing and the read.
        }
      }
    }
    return out;
  }

  /** Read and write system calls so far by the whole tree (/proc/N/io's syscr and syscw; 0 where unreadable). */
  syscalls(): { reads: number; writes: number } {
    let reads = 0;
    let writes = 0;
    for (const p of this.roots.flatMap(processTree)) {
      try {
        const io = readFileSync(`/proc/${p}/io`, "utf8");
        reads += Number(/^syscr: (\d+)/m.exec(io)?.[1] ?? 0);
        writes += Number(/^syscw: (\d+)/m.exec(io)?.[1] ?? 0);
      } catch {
        // Gone, or not ours to read.
      }
    }
    return { reads, writes };
  }

  sample(): void {
    // Sum of each process's own high-water mark: an upper bound of the tree's peak.
    let kb = 0;
    for (const p of this.roots.flatMap(processTree)) kb += statusKb(p, "VmHWM");
    if (kb > this.peakKb) this.peakKb = kb;
  }

  get peakRssMiB(): number {
    this.sample();
    return this.peakKb / 1024;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** Starts a command pinned to CPUs (taskset -c), so server and load never share a core. */
export function spawnPinned(cpus: string, cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; stdio?: StdioOptions } = {}): ChildProcess {
  // A machine without that core (or without taskset) runs everything unpinned.
  const pin = Math.max(...cpus.split(/[,-]/).map(Number)) < availableParallelism() && spawnSync("sh", ["-c", "command -v taskset"]).status === 0;
  if (!pin) return spawn(cmd, args, { stdio: opts.stdio ?? ["ignore", "pipe", "pipe"], cwd: opts.cwd, env: opts.env ?? process.env });
  return spawn("taskset", ["-c", cpus, cmd, ...args], { stdio: opts.stdio ?? ["ignore", "pipe", "pipe"], cwd: opts.cwd, env: opts.env ?? process.env });
}

/** Resolves once something accepts TCP connections on host:port. */
export async function waitPort(port: number, host = "127.0.0.1", timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Stops a child we started: SIGTERM, then SIGKILL to whatever of its tree is left. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const tree = processTree(child.pid);
  let timer: NodeJS.Timeout | undefined;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
  clearTimeout(timer);
  for (const p of tree) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A free TCP port on loopback, picked by the kernel. */
/** Ports this process has handed out: the kernel may give the same free port to two calls in a row. */
const handedOut = new Set<number>();

export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.listen(0, "127.0.0.1", () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
      srv.on("error", reject);
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

let aptUpdated = false;

/**
 * Makes sure `command` exists, installing Debian package `pkg` when it does not:
 * CI machines start clean.
 */
export function ensureCommand(command: string, pkg: string): void {
  if (spawnSync("sh", ["-c", `command -v ${command}`]).status === 0) return;
  console.error(`bench: ${command} missing, installing Debian package ${pkg}`);
  aptInstall(pkg);
}

/** apt-get install, after one apt-get update per process (a clean machine's package lists may be empty). */
function aptInstall(pkg: string): void {
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  if (!aptUpdated) {
    spawnSync("apt-get", ["update"], { stdio: "inherit", env });
    aptUpdated = true;
  }
  const r = spawnSync("apt-get", ["install", "-y", pkg], { stdio: "inherit", env });
  if (r.status !== 0) throw new Error(`apt-get install ${pkg} failed`);
}

/** Makes sure Debian package `pkg` is installed (e.g. a library a server loads at run time). */
export function ensurePackage(pkg: string): void {
  if (spawnSync("dpkg-query", ["-W", "-f=${Status}", pkg], { encoding: "utf8" }).stdout?.includes("install ok installed")) return;
  console.error(`bench: installing Debian package ${pkg}`);
  aptInstall(pkg);
}

/** First line of a command's output, for the versions written beside the figures. */
export function versionOf(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n")[0] ?? "";
}

/** CPU-seconds the whole machine has been busy (all cores, /proc/stat), to tell how much others used. */
/** The /proc/stat times of one CPU (or all: ""), in ticks: user nice system idle iowait irq softirq steal … */
function cpuTicks(cpu: string): number[] {
  const line = readFileSync("/proc/stat", "utf8").split("\n").find((l) => l.startsWith(`cpu${cpu} `));
  return line === undefined ? [] : line.trim().split(/\s+/).slice(1).map(Number);
}

export function machineBusySeconds(): number {
  const f = cpuTicks("");
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / HZ;
}

/** CPU time the given CPUs ("0", "0,1") spent busy (user, nice, system, irq, softirq; steal apart). */
export function cpuBusySeconds(cpus: string): number {
  return cpus.split(",").reduce((n, c) => {
    const f = cpuTicks(c);
    return n + (f[0] + f[1] + f[2] + f[5] + f[6]) / HZ;
  }, 0);
}

/**
 * Sets the CPUs this process (all its threads) may run on, e.g. the generator's while the server
 * has its own core; returns the previous list (to restore), or null where taskset failed.
 */
export function pinSelf(cpus: string): string | null {
  const was = spawnSync("taskset", ["-p", "-c", String(process.pid)], { encoding: "utf8" });
  const prev = /:\s*(\S+)\s*$/.exec(was.stdout ?? "")?.[1];
  if (was.status !== 0 || prev === undefined) return null;
  const r = spawnSync("taskset", ["-a", "-p", "-c", cpus, String(process.pid)], { stdio: "ignore" });
  return r.status === 0 ? prev : null;
}

/**
 * Time the hypervisor gave one CPU (or all: "") to someone else: on a shared
 * virtual machine, the pauses that no program on it can account for.
 */
export function stealSeconds(cpu = ""): number {
  if (cpu.includes(",")) return cpu.split(",").reduce((n, c) => n + stealSeconds(c), 0);
  const steal = cpuTicks(cpu)[7];
  return steal === undefined ? NaN : steal / HZ;
}

/**
 * Waits until the machine is quiet (others' builds and tests share it): busy
 * below `maxBusy` cores over one second, at most `timeoutMs`. Returns the last load seen.
 */
export async function waitQuiet(maxBusy = 0.3, timeoutMs = 60_000): Promise<number> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const b0 = machineBusySeconds();
    await sleep(1000);
    const busy = machineBusySeconds() - b0;
    if (busy <= maxBusy || Date.now() > until) return busy;
  }
}
