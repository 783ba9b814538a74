/**
 * `npm run bench:relay`: request/response round trips through Switchboard's
 * relay protocol and, in the same run, through nats-server's request/reply.
 * Each server is pinned to core 0 and the load (one Node.js process) to core 1.
 *
 *   --requesters K   requester connections (default 8)
 *   --responders R   responder connections (default 4)
 *   --inflight F     requests outstanding per requester (default 100)
 *   --payload B      body bytes (default 64)
 *   --seconds S      measured window per target and run (default 5)
 *   --runs N         runs; the published figure is the median (default 3)
 *   --targets LIST   switchboard,nats
 *   --to full|bare|pool  Switchboard's requests go to each responder's full address (default), its bare
 *                    address (through the owner), or all to one account the responders share (a pool)
 *   --nats-mux       nats.js's shared reply inbox instead of noMux (same speed, less server CPU)
 *   --loads L        loads per server, each after waitQuiet's pause; the last is the run's figure (default 1;
 *                    2: a server's next load after a pause, where a table that churns shows: benchmarks.md, session 25)
 *   --server-node-args="A B"  more node flags for Switchboard (e.g. --server-node-args=--trace-gc-nvp)
 *   --json FILE      write every run
 *   --docs           rewrite the Relay section of docs/benchmarks.md
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { benchAccounts } from "../lib/accounts.js";
import { Histogram, median } from "../lib/stats.js";
import { ensureCommand, freePort, machineBusySeconds, waitQuiet, ProcWatch, sleep, spawnPinned, stopChild, versionOf, waitPort } from "../lib/proc.js";
import { startSwitchboard, REPO, type RunningServer } from "../lib/switchboard.js";
import { writeRelaySection } from "./report.js";
import type { LoadResult, LoadSpec } from "./load.js";
import { benchArgs } from "../lib/args.js";

export interface RelayRun {
  target: string;
  run: number;
  roundTripsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  serverCpuSeconds: number;
  serverCpuPer100k: number;
  clientCpuSeconds: number;
  serverPeakRssMiB: number;
  otherCpuSeconds: number;
}

async function startNats(port: number): Promise<RunningServer> {
  const child = spawnPinned("0", "nats-server", ["-a", "127.0.0.1", "-p", String(port)], { stdio: ["ignore", "ignore", "inherit"] });
  await waitPort(port);
  const watch = new ProcWatch(child.pid!);
  return { name: "nats", child, watch, dir: "", stop: async () => (watch.stop(), stopChild(child)) };
}

async function runLoad(spec: LoadSpec, server: RunningServer): Promise<RelayRun & { result: LoadResult }> {
  const child = spawnPinned("1", process.execPath, [join(REPO, "dist/bench/relay/load.js"), JSON.stringify(spec)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  let cpu0 = 0;
  let busy0 = 0;
  const result = await new Promise<LoadResult>((resolve, reject) => {
    child.on("message", (m: { phase: string; result?: LoadResult }) => {
      if (m.phase === "measuring") {
        cpu0 = server.watch.cpuSeconds();
        busy0 = machineBusySeconds();
      }
      else if (m.phase === "done") resolve(m.result!);
    });
    child.on("exit", (code) => reject(new Error(`load process exited with ${code}`)));
  });
  const cpu = server.watch.cpuSeconds() - cpu0;
  // What neither the server nor the load used: other people's work on this shared machine.
  const otherCpu = Math.max(0, machineBusySeconds() - busy0 - cpu - result.clientCpuSeconds);
  await new Promise((r) => (child.exitCode !== null ? r(null) : child.once("exit", r)));
  const h = Histogram.from(result.latency);
  return {
    target: spec.target,
    run: 0,
    roundTripsPerSec: result.roundTrips / result.seconds,
    p50Ms: h.quantile(0.5),
    p99Ms: h.quantile(0.99),
    errors: result.errors,
    serverCpuSeconds: cpu,
    serverCpuPer100k: result.roundTrips ? (cpu / result.roundTrips) * 1e5 : NaN,
    clientCpuSeconds: result.clientCpuSeconds,
    serverPeakRssMiB: server.watch.peakRssMiB,
    otherCpuSeconds: otherCpu,
    result,
  };
}

async function main(): Promise<void> {
  const a = benchArgs();
  const K = Number(a.requesters ?? 8);
  const R = Number(a.responders ?? 4);
  const base = { requesters: K, responders: R, inflight: Number(a.inflight ?? 100), payload: Number(a.payload ?? 64), warmupMs: 1500, measureMs: Number(a.seconds ?? 5) * 1000, natsMux: a["nats-mux"] === "true", to: (a.to ?? "full") as LoadSpec["to"] };
  const runs = Number(a.runs ?? 3);
  const loads = Number(a.loads ?? 1);
  if (!Number.isInteger(loads) || loads < 1) throw new Error(`--loads ${a.loads}: a whole number from 1`);
  const targets = (a.targets ?? "switchboard,nats").split(",");
  if (!["full", "bare", "pool"].includes(base.to)) throw new Error(`--to ${base.to}: full, bare or pool`);
  if (targets.includes("nats")) ensureCommand("nats-server", "nats-server");

  const names = [...Array.from({ length: K }, (_, i) => `req${i}`), ...Array.from({ length: R }, (_, j) => `resp${j}`)];
  const accounts = await benchAccounts(names, (u) => `pwd-${u}`);
  const all: RelayRun[] = [];
  for (let run = 1; run <= runs; run++) {
    for (const target of targets) {
      const port = await freePort();
      await waitQuiet();
      const server =
        target === "nats"
          ? await startNats(port)
          : await startSwitchboard({ cpu: "0", accounts, waitOn: [port], nodeArgs: a["server-node-args"] ? a["server-node-args"].split(" ") : [], config: { listeners: [{ protocol: "relay", transport: "tcp", host: "127.0.0.1", port }] } });
      try {
        // Others' builds share this machine: a window in which they used over a
        // quarter of a core is measured again (at most twice).
        let r = await runLoad({ ...base, target: target as LoadSpec["target"], port }, server);
        for (let l = 2; l <= loads; l++) {
          console.log(`run ${run} ${target}: load ${l - 1} of ${loads} ${Math.round(r.roundTripsPerSec)} rt/s, ${r.serverCpuPer100k.toFixed(2)} CPU-s/100k; the next after a pause`);
          await waitQuiet();
          r = await runLoad({ ...base, target: target as LoadSpec["target"], port }, server);
        }
        for (let retry = 0; retry < 2 && r.otherCpuSeconds / r.result.seconds > 0.25; retry++) {
          console.log(`run ${run} ${target}: others used ${r.otherCpuSeconds.toFixed(1)} CPU-s, measuring again`);
          await waitQuiet();
          r = await runLoad({ ...base, target: target as LoadSpec["target"], port }, server);
        }
        const { result, ...row } = r;
        row.run = run;
        all.push(row);
        console.log(
          `run ${run} ${target.padEnd(11)} ${Math.round(row.roundTripsPerSec)} rt/s  p50 ${row.p50Ms.toFixed(2)} ms  p99 ${row.p99Ms.toFixed(2)} ms  ` +
            `server ${row.serverCpuPer100k.toFixed(2)} CPU-s/100k  client CPU ${row.clientCpuSeconds.toFixed(1)} s / ${result.seconds.toFixed(1)} s  others ${row.otherCpuSeconds.toFixed(1)} s  errors ${row.errors}${result.firstError ? ` (${result.firstError})` : ""}`,
        );
      } finally {
        await server.stop();
      }
      await sleep(500);
    }
  }
  const summary = targets.map((t) => {
    const rs = all.filter((r) => r.target === t);
    const m = (f: (r: RelayRun) => number) => median(rs.map(f));
    return { target: t, roundTripsPerSec: m((r) => r.roundTripsPerSec), p50Ms: m((r) => r.p50Ms), p99Ms: m((r) => r.p99Ms), serverCpuPer100k: m((r) => r.serverCpuPer100k), serverPeakRssMiB: m((r) => r.serverPeakRssMiB), errors: m((r) => r.errors) };
  });
  console.log("\nmedians:");
  for (const s of summary) console.log(`  ${s.target.padEnd(11)} ${Math.round(s.roundTripsPerSec)} rt/s  p50 ${s.p50Ms.toFixed(2)} ms  p99 ${s.p99Ms.toFixed(2)} ms  ${s.serverCpuPer100k.toFixed(2)} CPU-s/100k`);
  const sb = summary.find((s) => s.target === "switchboard");
  const nats = summary.find((s) => s.target === "nats");
  if (sb && nats) console.log(`  switchboard / nats: ${(sb.roundTripsPerSec / nats.roundTripsPerSec).toFixed(2)}×`);
  const versions = { node: process.version, natsServer: targets.includes("nats") ? versionOf("nats-server", ["--version"]) : "", natsClient: JSON.parse(readFileSync(join(REPO, "node_modules/nats/package.json"), "utf8")).version };
  const report = { date: new Date().toISOString(), command: `npm run bench:relay -- ${process.argv.slice(2).join(" ")}`.trim(), params: { ...base, runs }, versions, summary, runs: all };
  if (a.json) writeFileSync(a.json, JSON.stringify(report, null, 2));
  if (a.docs === "true") writeRelaySection(report);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
