/**
 * `npm run bench:xmpp -- …`: seed 000's experiment (section 5). N users log in
 * over a ramp; once all are online each sends `messages` chat messages at
 * `rate`/s to random online users; load = users × rate messages/s.
 *
 *   --target T      switchboard | prosody | ejabberd | floor | custom (default switchboard);
 *                   floor is a byte forwarder that does no XMPP work: the yardstick for a Node.js server
 *   --users N       users (default 1000)        --rate R     messages/s per user (1)
 *   --messages M    per user (100)              --ramp S     login spread in s (N/1000, at least 2)
 *   --deadline MS   counted as delivered when received within (5000)
 *   --procs P       generator processes (4)     --runs K     repeat; medians reported (1)
 *   --generator G   node (default): all of it in Node.js; c: logins in Node.js, then the messaging
 *                   phase in bench/xmpp/pump.c on the same sockets (see docs/benchmarks.md)
 *   --spin          with --generator c: the pump polls without sleeping, so no wake-up delay lands in
 *                   the latencies it measures; it takes its whole core and reports the busy part
 *   --host H --port P --domain D               for --target custom
 *   --sweep LIST    loads in msg/s, e.g. 1000,2000,5000,10000,20000; with --targets A,B,C.
 *                   Up to --max-users (10000) a load is that many users at 1/s; beyond,
 *                   10000 users at load/10000 msg/s each (20,000 open files per process).
 *   --json FILE     write the results      --docs    rewrite docs/benchmarks.md's XMPP section and docs/img/
 *   --report FILE   rewrite them from a sweep's saved JSON (docs/img/xmpp-sweep.json), running nothing
 *   --note "TEXT"   a sentence about the run's conditions, printed under the command in the docs
 *   --writer W      Switchboard's io.writerThread: on (default: the thread where the server has two cores,
 *                   --server-cpu 0,1), off, or always (also on one core)
 *   --cpu-prof      run Switchboard under node --cpu-prof (profiles land in its temp dir's parent: ./)
 *   --server-node-args="A B"  more node flags for Switchboard (e.g. --server-node-args=--trace-gc)
 */
import { readFileSync, writeFileSync } from "node:fs";
import { median, medianRun } from "../lib/stats.js";
import { waitQuiet } from "../lib/proc.js";
import { buildPump, runXmpp, type XmppParams, type XmppResult } from "./run.js";
import { writeXmppReport, type XmppReport } from "./report.js";
import type { TargetName } from "./targets.js";

function args(): Record<string, string> {
  const a: Record<string, string> = {};
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    if (!v[i].startsWith("--")) continue;
    const eq = v[i].indexOf("=");
    if (eq > 0) {
      a[v[i].slice(2, eq)] = v[i].slice(eq + 1);
      continue;
    }
    a[v[i].slice(2)] = v[i + 1] !== undefined && !v[i + 1].startsWith("--") ? v[++i] : "true";
  }
  return a;
}

function line(r: XmppResult): string {
  return (
    `${r.target.padEnd(11)} load ${String(r.load).padStart(6)}/s (${r.users}×${r.rate})  in ${r.loggedIn}/${r.users}  sent ${r.sent} recv ${r.received}  ` +
    `delivered ${(r.deliveryRate * 100).toFixed(2)} %  avg ${r.avgMs.toFixed(2)} p50 ${r.p50Ms.toFixed(2)} p99 ${r.p99Ms.toFixed(2)} max ${r.maxMs.toFixed(0)} ms  ` +
    `server ${r.serverCpuSeconds.toFixed(1)} CPU-s (${r.serverUsPerMessage.toFixed(0)} µs/msg, ${((r.serverSysShare ?? NaN) * 100).toFixed(0)} % kernel) ${r.serverPeakRssMiB.toFixed(0)} MiB  gen ${r.generatorCpuCores.toFixed(2)} cores${r.generator === "c-spin" ? ` (busy ${r.generatorBusyCores!.toFixed(2)})` : ""}  others ${r.otherCpuCores.toFixed(2)} cores  steal ${((r.serverCoreStealShare ?? NaN) * 100).toFixed(1)} % of the server's core${r.firstError ? `  [${r.firstError.slice(0, 120)}]` : ""}`
  );
}

function failedRun(p: XmppParams, why: string): XmppResult {
  return { target: p.target, version: "", load: p.users * p.rate, users: p.users, rate: p.rate, messages: p.messages, loggedIn: 0, loginSeconds: NaN, sent: 0, received: 0, inDeadline: 0, deliveryRate: 0, avgMs: NaN, p50Ms: NaN, p99Ms: NaN, maxMs: NaN, errors: 0, serverCpuSeconds: NaN, serverUsPerMessage: NaN, serverPeakRssMiB: NaN, generatorCpuCores: NaN, otherCpuCores: NaN, phaseSeconds: 0, firstError: why, settings: [] };
}

/** Medians over runs; the reported run for the latency columns is the one with the median p99. */
function combine(runs: XmppResult[]): XmppResult {
  const m = medianRun(runs, (r) => r.p99Ms);
  return { ...m, deliveryRate: median(runs.map((r) => r.deliveryRate)), avgMs: median(runs.map((r) => r.avgMs)), p50Ms: median(runs.map((r) => r.p50Ms)), p99Ms: median(runs.map((r) => r.p99Ms)), maxMs: median(runs.map((r) => r.maxMs)), serverUsPerMessage: median(runs.map((r) => r.serverUsPerMessage)), serverPeakRssMiB: median(runs.map((r) => r.serverPeakRssMiB)), generatorCpuCores: median(runs.map((r) => r.generatorCpuCores)), generatorBusyCores: median(runs.map((r) => r.generatorBusyCores ?? r.generatorCpuCores)) };
}

async function main(): Promise<void> {
  const a = args();
  const maxUsers = Number(a["max-users"] ?? 10000);
  const pump = a.generator === "c" ? buildPump() : null;
  const base = (target: TargetName, users: number, rate: number): XmppParams => ({
    target,
    users,
    rate,
    messages: Number(a.messages ?? 100),
    rampMs: Number(a.ramp ?? Math.max(2, users / 1000)) * 1000,
    deadlineMs: Number(a.deadline ?? 5000),
    procs: Number(a.procs ?? 4),
    host: a.host ?? "127.0.0.1",
    port: a.port ? Number(a.port) : undefined,
    domain: a.domain ?? "localhost",
    nodeArgs: [...(a["cpu-prof"] === "true" ? ["--cpu-prof", "--cpu-prof-dir", process.cwd()] : []), ...(a["server-node-args"] ? a["server-node-args"].split(" ") : [])],
    serverCpu: a["server-cpu"] ?? "0",
    genCpu: a["gen-cpu"] ?? "1",
    workers: Number(a.workers ?? 1),
    writerThread: a.writer === "off" ? false : a.writer === "always" ? "always" : true,
    pump,
    spin: pump !== null && a.spin === "true",
  });
  const runs = Number(a.runs ?? 1);
  const measure = async (p: XmppParams): Promise<XmppResult> => {
    const all: XmppResult[] = [];
    for (let k = 0; k < runs; k++) {
      await waitQuiet();
      let r: XmppResult;
      try {
        r = await runXmpp(p);
      } catch (e) {
        // A server nobody could log in to is a result too (0 % delivered), not the end of the sweep.
        r = failedRun(p, String((e as Error).message ?? e));
      }
      console.log(line(r));
      all.push(r);
    }
    return runs > 1 ? combine(all) : all[0];
  };

  if (a.report !== undefined) {
    writeXmppReport(JSON.parse(readFileSync(a.report, "utf8")) as XmppReport);
    return;
  }
  if (a.sweep === undefined) {
    const r = await measure(base((a.target ?? "switchboard") as TargetName, Number(a.users ?? 1000), Number(a.rate ?? 1)));
    if (runs > 1) console.log(`median: ${line(r)}`);
    if (a.json) writeFileSync(a.json, JSON.stringify(r, null, 2));
    return;
  }
  const loads = a.sweep.split(",").map(Number);
  const targets = (a.targets ?? "switchboard,prosody,ejabberd").split(",") as TargetName[];
  const results: XmppResult[] = [];
  for (const t of targets) {
    for (const load of loads) {
      const users = Math.min(load, maxUsers);
      const r = await measure(base(t, users, load / users));
      results.push(r);
      console.log(`=> ${line(r)}`);
      // A server that has collapsed will not recover at a higher load: spare the time.
      if (r.deliveryRate < 0.5) {
        console.log(`${t} delivered under 50 % at ${load}/s: higher loads skipped`);
        break;
      }
    }
  }
  const report = { date: new Date().toISOString(), command: `npm run bench:xmpp -- ${process.argv.slice(2).map((x) => (/\s/.test(x) ? JSON.stringify(x) : x)).join(" ")}`, runs, results, loads, note: a.note };
  if (a.json) writeFileSync(a.json, JSON.stringify(report, null, 2));
  if (a.docs === "true") writeXmppReport(report);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
