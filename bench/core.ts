/**
 * The core benchmark of issue 2 (`npm run bench:core`, run with --expose-gc):
 * PendingList insert + complete and memory per pending entry, HashRing lookup
 * and balance, relay round trips through the real server (a child process)
 * with that server's CPU time, and `users import` of 10,000 users.
 * Each figure is the median of RUNS runs unless said otherwise.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { PendingList, type Requester } from "../src/pending/pending-list.js";
import { HashRing } from "../src/router/hash-ring.js";
import { hash32 } from "../src/router/hash.js";
import { RelayClient } from "../src/relay/client.js";

const RUNS = Number(process.env.RUNS ?? 5);
const MAIN = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.js");
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  console.error("run with node --expose-gc (npm run bench:core does)");
  process.exit(2);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const fmt = (x: number, d = 0) => x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
const results: [string, string, string][] = [];
function report(name: string, value: string, target: string): void {
  results.push([name, value, target]);
  console.log(`${name.padEnd(52)} ${value.padStart(22)}   ${target}`);
}

// ---- PendingList ----------------------------------------------------------

/** Insert + complete with WINDOW requests in flight, as a busy worker does. */
function pendingInsertComplete(ops: number): number {
  const WINDOW = 1000;
  const list = new PendingList();
  const senders: Requester[] = Array.from({ length: 100 }, () => ({ outstanding: 0, firstPending: null }));
  const ids = Array.from({ length: WINDOW }, (_, i) => `req-${i}`);
  const ring = new Array(WINDOW);
  for (let i = 0; i < WINDOW; i++) ring[i] = list.add(senders[i % 100], ids[i], "bob@localhost/x", 5000, 0);
  const t0 = performance.now();
  for (let i = 0; i < ops; i++) {
    const slot = i % WINDOW;
    list.remove(ring[slot]);
    ring[slot] = list.add(senders[i % 100], ids[slot], "bob@localhost/x", 5000 + (i & 3) * 1000, i >>> 10);
  }
  const ns = ((performance.now() - t0) * 1e6) / ops;
  if (list.size !== WINDOW) throw new Error("PendingList lost entries");
  return ns;
}

/**
 * heapUsed growth per entry with 10^6 pending, after gc. The ids and the
 * recipient strings are made before the baseline: they belong to the request,
 * which exists whether or not the list tracks it. Counted: the entry, its Map
 * slot, its links, the buckets and the heap.
 */
function pendingBytesPerEntry(n: number): number {
  const ids = Array.from({ length: n }, (_, i) => `c${i}`);
  const recipients = Array.from({ length: 1000 }, (_, i) => `user${i}@localhost/r`);
  const senders: Requester[] = Array.from({ length: 1000 }, () => ({ outstanding: 0, firstPending: null }));
  gc!();
  gc!();
  const before = process.memoryUsage().heapUsed;
  const list = new PendingList();
  // Five timeouts, deadlines spread over time as under load.
  for (let i = 0; i < n; i++) list.add(senders[i % 1000], ids[i], recipients[i % 1000], 1000 * (1 + (i % 5)), i >>> 8);
  gc!();
  gc!();
  const after = process.memoryUsage().heapUsed;
  if (list.size !== n) throw new Error("PendingList lost entries");
  return (after - before) / n;
}

// ---- HashRing -------------------------------------------------------------

function ringLookupNs(ring: HashRing, keys: string[], ops: number): number {
  let sink = 0;
  const t0 = performance.now();
  for (let i = 0; i < ops; i++) sink += ring.ownerOf(keys[i % keys.length])!.length;
  const ns = ((performance.now() - t0) * 1e6) / ops;
  if (sink === 0) throw new Error("unreachable");
  return ns;
}

/** Std-dev of the members' ring shares (exact arc lengths), in % of the mean share. */
function ringStdDevPercent(members: string[], vnodes: number): number {
  const ring = new HashRing(members, vnodes);
  const points = new Set<number>();
  for (const m of members) for (let v = 0; v < vnodes; v++) points.add(hash32(`${m}#${v}`));
  const sorted = Float64Array.from(points).sort();
  const share = new Map<string, number>(members.map((m) => [m, 0]));
  for (let i = 0; i < sorted.length; i++) {
    const prev = i === 0 ? sorted[sorted.length - 1] - 2 ** 32 : sorted[i - 1];
    const o = ring.ownerOfHash(sorted[i])!;
    share.set(o, share.get(o)! + (sorted[i] - prev));
  }
  const xs = [...share.values()];
  const mean = 2 ** 32 / members.length;
  return (100 * Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / xs.length)) / mean;
}

// ---- Relay through the real server ----------------------------------------

function cpuSeconds(pid: number): number {
  // /proc/<pid>/stat: fields 14 and 15 (utime, stime) in clock ticks; the name (field 2) may hold spaces.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[11]) + Number(f[12]);
  return ticks / CLK_TCK;
}
const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

function startServer(config: string): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, "start", "--config", config], { stdio: ["ignore", "ignore", "pipe"] });
    let buf = "";
    const onData = (d: Buffer) => {
      buf += d.toString();
      for (const line of buf.split("\n").slice(0, -1)) {
        try {
          const j = JSON.parse(line);
          if (j.message === "listening" && typeof j.port === "number") {
            child.stderr!.off("data", onData);
            child.stderr!.resume();
            resolve({ child, port: j.port });
            return;
          }
        } catch {
          // not a JSON log line
        }
      }
    };
    child.stderr!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`server exited with ${code}: ${buf}`)));
  });
}

async function relayRoundTrips(dir: string): Promise<{ rtps: number[]; cpu: number[]; secs: number; errors: number }> {
  const config = join(dir, "config.json");
  writeFileSync(
    config,
    JSON.stringify({
      log: { level: "info", format: "json" },
      listeners: [{ protocol: "relay", transport: "tcp", host: "127.0.0.1", port: 0 }],
      storage: { type: "sqlite", path: join(dir, "bench.sqlite") },
      limits: { maxPendingPerSession: 1000 },
    }),
  );
  for (const [u, p] of [
    ["asker", "asker-pw"],
    ["answerer", "answerer-pw"],
  ]) {
    execFileSync(process.execPath, [MAIN, "users", "add", u, p, "--config", config], { stdio: "ignore" });
  }
  const { child, port } = await startServer(config);
  try {
    const asker = await RelayClient.connect({ port });
    const answerer = await RelayClient.connect({ port });
    await asker.login({ user: "asker", password: "asker-pw", resource: "bench" });
    const to = await answerer.login({ user: "answerer", password: "answerer-pw", resource: "bench" });
    answerer.on("request", (r) => r.respond(r.body));

    const IN_FLIGHT = 1000;
    const body = Buffer.alloc(64, 0x61);
    let done = 0;
    let errors = 0;
    let running = true;
    let inFlight = 0;
    let drained: (() => void) | null = null;
    const fire = (): void => {
      inFlight++;
      asker.request(to, body).then(
        () => {
          done++;
          inFlight--;
          if (running) fire();
          else if (inFlight === 0) drained?.();
        },
        () => {
          errors++;
          inFlight--;
          if (running) fire();
          else if (inFlight === 0) drained?.();
        },
      );
    };
    for (let i = 0; i < IN_FLIGHT; i++) fire();

    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    await sleep(1500); // warm-up: JIT, socket buffers
    const SECS = 3;
    const rtps: number[] = [];
    const cpu: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const d0 = done;
      const c0 = cpuSeconds(child.pid!);
      const t0 = performance.now();
      await sleep(SECS * 1000);
      const dt = (performance.now() - t0) / 1000;
      rtps.push((done - d0) / dt);
      cpu.push(cpuSeconds(child.pid!) - c0);
    }
    running = false;
    await new Promise<void>((r) => (inFlight === 0 ? r() : (drained = r)));
    await asker.close();
    await answerer.close();
    return { rtps, cpu, secs: SECS, errors };
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  }
}

function usersImport(dir: string, n: number): number {
  const config = join(dir, "import.json");
  writeFileSync(config, JSON.stringify({ storage: { type: "sqlite", path: join(dir, "import.sqlite") } }));
  const file = join(dir, "users.csv");
  writeFileSync(file, Array.from({ length: n }, (_, i) => `user${i},password-${i}`).join("\n") + "\n");
  const t0 = performance.now();
  execFileSync(process.execPath, [MAIN, "users", "import", file, "--config", config], { stdio: "ignore" });
  return (performance.now() - t0) / 1000;
}

// ---- main -----------------------------------------------------------------

async function main(): Promise<void> {
  console.log(`core benchmark: node ${process.version}, ${RUNS} runs each, ${new Date().toISOString()}\n`);

  pendingInsertComplete(500_000); // warm-up
  report("PendingList insert + complete (1,000 in flight)", `${fmt(median(Array.from({ length: RUNS }, () => pendingInsertComplete(2_000_000))))} ns/op`, "target ≤ 300 ns");
  report("PendingList memory at 10^6 pending", `${fmt(median(Array.from({ length: RUNS }, () => pendingBytesPerEntry(1_000_000))))} B/entry`, "target ≤ 150 B");

  const members = Array.from({ length: 10 }, (_, i) => `w${i}`);
  const ring = new HashRing(members);
  const keys = Array.from({ length: 100_000 }, (_, i) => `user${i}@localhost`);
  ringLookupNs(ring, keys, 500_000);
  report(`HashRing lookup (10 members × ${ring.vnodes} vnodes)`, `${fmt(median(Array.from({ length: RUNS }, () => ringLookupNs(ring, keys, 2_000_000))))} ns`, "target ≤ 1 µs");
  report(`HashRing load std-dev, members w0..w9, ${ring.vnodes} vnodes`, `${fmt(ringStdDevPercent(members, ring.vnodes), 2)} % of mean`, "target ≤ 3 %");
  const sets = Array.from({ length: 21 }, (_, s) => members.map((m) => `host${s}-${m}`));
  report(`  median over 21 other sets of 10 names`, `${fmt(median(sets.map((m) => ringStdDevPercent(m, ring.vnodes))), 2)} % of mean`, "target ≤ 3 %");
  report(`  same, with 512 vnodes (the former default)`, `${fmt(median(sets.map((m) => ringStdDevPercent(m, 512))), 2)} % of mean`, "");

  const dir = mkdtempSync(join(tmpdir(), "switchboard-bench-core-"));
  try {
    const relay = await relayRoundTrips(dir);
    const r = median(relay.rtps);
    const c = median(relay.cpu);
    report("Relay round trips/s, 1,000 in flight, TCP", `${fmt(r)} /s`, `${RUNS} × ${relay.secs} s, errors: ${relay.errors}`);
    report("  server CPU-seconds per run", `${fmt(c, 2)} s / ${relay.secs} s`, `${fmt((c * 1e6) / (r * relay.secs), 1)} µs CPU per round trip`);
    const secs = usersImport(dir, 10_000);
    report("users import of 10,000 users (one run)", `${fmt(secs, 1)} s`, "target < 60 s");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  if (process.argv.includes("--markdown")) {
    console.log("\n| measure | median | target / note |\n| --- | --: | --- |");
    for (const [n, v, t] of results) console.log(`| ${n.trim()} | ${v} | ${t} |`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
