/**
 * `npm run bench:scale -- …`: N idle XMPP sessions; per-session memory and CPU at rest.
 *
 *   --sessions N     sessions (default 19000)        --workers W   server worker processes (1)
 *   --clients C      client processes (default: one per 16,000 sessions; a process may hold 20,000 files)
 *   --addresses A    127.0.0.x source addresses for the clients (default: one per client process, at most 8)
 *   --window K       logins in flight per client process (100)
 *   --sm on|off      XEP-0198 enabled with resume='true' after bind, as mobile clients do (on)
 *   --keepalive-ms   a whitespace keepalive from every session this often (0: none; the server pings)
 *   --settle-s S     wait after the last login before measuring (8: the first XEP-0198 <r/> is 5 s after login)
 *   --idle-s S       window of CPU at rest (30)
 *   --ping-after-ms  the server's xmpp.pingAfterMs (default: the server's, 60000)
 *   --ping-timeout-ms  the server's xmpp.pingTimeoutMs (30000): a session is pinged again at most this often
 *   --writer on|off  the server's io.writerThread (off: its second descriptor per connection would
 *                    halve what a worker of 20,000 descriptors can hold; docs/benchmarks.md)
 *   --iterations I   PBKDF2 iterations of the accounts (16): what each PLAIN check costs, not measured here
 *   --server-cpu L   taskset list for the server (default unpinned)
 *   --snapshot FILE  heap snapshot of worker 0 after the idle window, and its summary per session
 *   --json FILE      write the result
 */
import { writeFileSync } from "node:fs";
import { benchArgs } from "../lib/args.js";
import { formatRows, summarise } from "./heap-summary.js";
import { runScale, type ScaleParams, type ScaleResult } from "./run.js";

export function paramsFrom(a: Record<string, string>): ScaleParams {
  const sessions = Number(a.sessions ?? 19000);
  const clients = Number(a.clients ?? Math.max(1, Math.ceil(sessions / 16000)));
  const xmpp: Record<string, unknown> = {};
  if (a["ping-after-ms"] !== undefined) xmpp.pingAfterMs = Number(a["ping-after-ms"]);
  if (a["ping-timeout-ms"] !== undefined) xmpp.pingTimeoutMs = Number(a["ping-timeout-ms"]);
  return {
    sessions,
    workers: Number(a.workers ?? 1),
    clients,
    addresses: Number(a.addresses ?? Math.min(8, clients)),
    window: Number(a.window ?? 100),
    sm: a.sm !== "off",
    keepaliveMs: Number(a["keepalive-ms"] ?? 0),
    writerThread: a.writer === "on",
    settleS: Number(a["settle-s"] ?? 8),
    idleS: Number(a["idle-s"] ?? 30),
    xmpp,
    iterations: Number(a.iterations ?? 16),
    loginTimeoutMs: Number(a["login-timeout-ms"] ?? 30_000),
    serverCpu: a["server-cpu"] ?? null,
    snapshot: a.snapshot ?? null,
  };
}

const kb = (b: number) => `${(b / 1024).toFixed(2)} KiB`;
const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;

export function report(r: ScaleResult): string {
  const p = r.params;
  const lines = [
    `${r.online}/${p.sessions} sessions online (${r.failed} failed${r.firstError ? `: ${r.firstError}` : ""}) on ${p.workers} worker(s), ${p.clients} client process(es), SM ${p.sm ? "on" : "off"}, writer thread ${p.writerThread ? "on" : "off"}`,
    `login: ${r.loginSeconds.toFixed(1)} s, ${r.loginServerCpuSeconds.toFixed(1)} server CPU-s (${((r.loginServerCpuSeconds / Math.max(1, r.online)) * 1e6).toFixed(0)} µs per login)`,
    `per session: RSS ${kb(r.perSession.rss)}, V8 heap ${kb(r.perSession.heapUsed)}, external ${kb(r.perSession.external)} (array buffers ${kb(r.perSession.arrayBuffers)})`,
  ];
  r.workers.forEach((w, i) => lines.push(`  worker ${i}: RSS ${mib(w.baseline.rss)} → ${mib(w.loaded.rss)}, heap ${mib(w.baseline.heapUsed)} → ${mib(w.loaded.heapUsed)}, external ${mib(w.baseline.external)} → ${mib(w.loaded.external)}`));
  lines.push(`host RSS (all server processes) ${r.hostRssMiB.toFixed(0)} MiB`);
  lines.push(`at rest over ${p.idleS} s: server ${r.idleCpuPercent.toFixed(2)} % of a core (${r.idleServerCpuSeconds.toFixed(2)} CPU-s), clients ${r.idleClientCpuSeconds.toFixed(2)} CPU-s; stanzas in ${r.idleStanzas.in}, out ${r.idleStanzas.out}; clients answered ${r.clientStats.pings} pings and ${r.clientStats.acks} <r/>, sent ${r.clientStats.keepalives} keepalives`);
  const c = r.cluster;
  if (p.workers > 1) lines.push(`cluster, whole run: bus messages sent ${c.busSent}, membership changes ${c.membershipChanges}, renewals ${c.renewals}, resyncs ${c.resyncs}, sessions bound again ${c.bindsSent} in ${c.bindBatches} bus messages`);
  lines.push(`alive at the end: ${r.alive}, dead ${r.dead}, dropped by the server ${r.clientStats.dropped}`);
  return lines.join("\n");
}

async function main(): Promise<void> {
  const a = benchArgs();
  const p = paramsFrom(a);
  const r = await runScale(p, (s) => console.error(`scale: ${s}`));
  console.log(report(r));
  if (p.snapshot !== null) console.log(formatRows(summarise(p.snapshot), Math.round(r.online / p.workers), Number(a.top ?? 40)));
  if (a.json !== undefined) writeFileSync(a.json, JSON.stringify(r, null, 2));
  if (r.online !== p.sessions || r.alive !== p.sessions) process.exitCode = 1;
}

if (process.argv[1]?.endsWith("scale/main.js")) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
