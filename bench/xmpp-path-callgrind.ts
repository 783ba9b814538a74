/**
 * `node dist/bench/xmpp-path-callgrind.js`: bench:xmpp-path's main thread counted in instructions, under
 * valgrind's callgrind: deterministic enough to compare two builds, or archives off and on, to a fraction of
 * a microsecond per message, where the CPU clock of this shared 2-core VM moves by ±2 µs between processes
 * (docs/benchmarks.md, "Archives", session 17). The bench runs with CALLGRIND=1, which calls os.loadavg()
 * before each measured run and after the last; callgrind dumps its counters at each (--dump-before=uv_loadavg)
 * and keeps one set per thread (--separate-threads=yes): the main thread's dumps between two markers are
 * the runs. What it counts: user-space instructions (Ir) of the event loop's thread, V8's generated code
 * included; not the kernel's part (system calls), not other threads (the archive's, V8's helpers), and
 * not time (a cache miss costs one instruction's count). Under valgrind the threads run one at a time,
 * ~50 times slower: keep MESSAGES small (2,000: a few minutes).
 *
 * Environment: what bench:xmpp-path takes (MESSAGES default 2000 here, RUNS 3, USERS 2000, MAM, TURN, SM, …; passed
 * through; with SM=1 fix the policy's time triggers, SM_ACK_EVERY_MS=3600000 SM_ANSWER_DELAY_MS=5000
 * SM_ACK_EVERY_STANZAS=5 with USERS=500 WARMUP=8, or valgrind's pace decides how often they fire),
 * and XMPP_PATH_JS: the bench to run (default: this build's dist/bench/xmpp-path.js; another build's to
 * compare it; dist/bench/xmpp-path-bus.js: two workers' cores in one process over the bus code, WORKERS=1|2, the same
 * markers, so that WORKERS=2 minus WORKERS=1 is what crossing costs in instructions), KEEP=1: keep callgrind's files (callgrind_annotate them) and print where, NODE_ARGS: node's
 * options (below), VALGRIND_ARGS: callgrind's.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const script = resolve(process.env.XMPP_PATH_JS ?? join(dirname(fileURLToPath(import.meta.url)), "xmpp-path.js"));
const messages = Number(process.env.MESSAGES ?? 2000);
const runs = Number(process.env.RUNS ?? 3);
const dir = mkdtempSync(join(tmpdir(), "xmpp-path-callgrind-"));
// Under valgrind V8's optimizing compiler (a thread of its own) delivers late: two warm-up runs, not one.
const env = { ...process.env, CALLGRIND: "1", WARMUP: process.env.WARMUP ?? "2", MESSAGES: String(messages), RUNS: String(runs), USERS: process.env.USERS ?? "2000" };
/**
 * V8's collector and optimizing compiler work on helper threads beside the main thread, and when it collects
 * follows time-based heuristics (allocation rate per ms, the memory reducer's timers): counts moved by
 * ±10,000 instructions per message between processes of one build. --predictable makes V8 deterministic
 * (single-threaded: collections and compilations on the main thread, counted whole; no time-based decisions).
 * NODE_ARGS replaces it. It also sizes the young generation its own way: the collector's figure is what
 * V8 collects under it, not what the server's collector does (in session 17 a change cut it by 13,000
 * instructions per message and the server's CPU not at all); compare the "work" figure.
 */
const nodeArgs = (process.env.NODE_ARGS ?? "--predictable").split(" ").filter((a) => a !== "");
const args = [
  "--tool=callgrind",
  "--separate-threads=yes",
  "--dump-before=uv_loadavg",
  "--dump-instr=no",
  "--collect-jumps=no",
  `--callgrind-out-file=${join(dir, "cg.%p")}`,
  // VALGRIND_ARGS: more of callgrind's options, e.g. --cache-sim=yes (then KEEP=1 and read the files' totals).
  ...(process.env.VALGRIND_ARGS ?? "").split(" ").filter((a) => a !== ""),
  process.execPath,
  ...nodeArgs,
  script,
];
const started = Date.now();
const r = spawnSync("valgrind", args, { env, cwd: dirname(dirname(dirname(script))), encoding: "utf8", maxBuffer: 64 << 20 });
if (r.error !== undefined) throw r.error;
process.stdout.write(r.stdout);
if (r.status !== 0) {
  process.stderr.write(r.stderr.split("\n").slice(-30).join("\n"));
  throw new Error(`valgrind exited with ${r.status}`);
}
// The main thread's dump k (k ≥ 1) holds what it ran since the marker before: cg.<pid>.<k>-01. Dump 1 is the
// start and the warm-ups; dumps 2 … runs+1 are the measured runs.
const files = readdirSync(dir);
const pid = /^cg\.(\d+)/.exec(files.find((f) => /^cg\.\d+\.\d+-01$/.test(f)) ?? "")?.[1];
if (pid === undefined) throw new Error(`no dumps of the main thread in ${dir}: ${files.join(" ")}`);
/**
 * Inclusive counts of V8's own work, from callgrind_annotate: optimizing and baseline compilation (the JIT
 * still tiering up or deoptimizing: a warm-up artifact, and it moves between processes) and the collector
 * (scavenges, mark-compacts, incremental marking). "Work" is the rest: what the code itself ran.
 */
const COMPILE = [/Compiler::CompileOptimized\(/, /BaselineBatchCompiler::CompileBatch\(/, /Compiler::Compile\(v8::internal::Isolate\*, v8::internal::Handle<v8::internal::JSFunction>/];
const GC = [/Heap::CollectGarbage\(/, /IncrementalMarking::AdvanceOnAllocation\(/, /IncrementalMarking::Start\(/];
function inclusive(file: string): { total: number; compile: number; gc: number } {
  const a = spawnSync("callgrind_annotate", ["--inclusive=yes", "--threshold=100", file], { encoding: "utf8", maxBuffer: 256 << 20 });
  if (a.status !== 0) throw new Error(`callgrind_annotate ${file}: ${a.stderr}`);
  const sum = (res: RegExp[]) => {
    let n = 0;
    for (const re of res) {
      const line = a.stdout.split("\n").find((l) => re.test(l));
      if (line !== undefined) n += Number(line.trim().split(" ")[0].replace(/,/g, ""));
    }
    return n;
  };
  const total = Number(/^\s*([\d,]+) \S* ?\(100\.0%\)\s+PROGRAM TOTALS/m.exec(a.stdout)?.[1].replace(/,/g, "") ?? NaN);
  return { total, compile: sum(COMPILE), gc: sum(GC) };
}
const perRun: { total: number; compile: number; gc: number }[] = [];
for (let k = 2; k <= runs + 1; k++) perRun.push(inclusive(join(dir, `cg.${pid}.${k}-01`)));
const per = (f: (r: { total: number; compile: number; gc: number }) => number) => perRun.map((r) => f(r) / messages);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const show = (xs: number[]) => `${mean(xs).toFixed(0)} (runs ${xs.map((x) => x.toFixed(0)).join(", ")})`;
const smEnv = ["SM", "SM_EVERY", "SM_ANSWER_DELAY_MS", "SM_ACK_EVERY_MS", "SM_ACK_EVERY_STANZAS"].filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]}`);
const what = [process.env.MAM === undefined || process.env.MAM === "0" ? "archives off" : `MAM=${process.env.MAM}`, ...smEnv].join(", ");
const work = per((r) => r.total - r.compile - r.gc);
const gcs = per((r) => r.gc);
console.log(`callgrind, main thread (${what}; ${script}; ${runs} runs of ${messages}, means), instructions/message: work ${show(work)}; collector ${show(gcs)}; work + collector ${mean(work.map((w, i) => w + gcs[i])).toFixed(0)}; compiler ${show(per((r) => r.compile))}; all ${show(per((r) => r.total))}; ${((Date.now() - started) / 1000).toFixed(0)} s under valgrind`);
if (process.env.KEEP === "1") console.log(`callgrind's files: ${dir} (main thread, run k: cg.${pid}.${"{k+1}"}-01)`);
else rmSync(dir, { recursive: true, force: true });
