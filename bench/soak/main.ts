/**
 * `npm run soak -- …`: issue 13's soak (bench/soak/soak.ts): the real server,
 * raw-socket XMPP clients with stream management, each behind a fault proxy,
 * random cuts, black holes, network switches and outages under a steady load;
 * then it prints what became of every message. Exits 1 when a message was
 * lost, duplicated or left in the offline store of a recipient that is online,
 * or when the run did not settle.
 *
 *   --clients N    clients (1000)               --duration S   seconds of faults (60)
 *   --rate R       messages/s in total (500)    --faults F     faults/s (10)
 *   --workers W    server worker processes (1; 2 needs nats-server, installed if missing)
 *   --window S     xmpp.sm.resumeTimeoutMs in s (10); outages last 1–3 s longer
 *   --json FILE    the result as JSON too
 */
import { readFileSync, writeFileSync } from "node:fs";
import { formatSoak, runSoak, soakDefaults } from "./soak.js";
import { benchArgs } from "../lib/args.js";

/** Each client costs this process about five descriptors: its socket, the proxy's two, the proxy's listener, a leg a black hole keeps. */
function checkOpenFiles(clients: number): void {
  const m = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
  const limit = m ? Number(m[1]) : Infinity;
  if (limit < clients * 5 + 100) throw new Error(`ulimit -n is ${limit}: ${clients} clients need about ${clients * 5 + 100} (raise it, e.g. ulimit -n 20000)`);
}

async function main(): Promise<void> {
  const a = benchArgs();
  const p = soakDefaults({
    clients: Number(a.clients ?? 1000),
    durationMs: Number(a.duration ?? 60) * 1000,
    rate: Number(a.rate ?? 500),
    faultsPerSec: Number(a.faults ?? 10),
    workers: Number(a.workers ?? 1),
    resumeTimeoutMs: Number(a.window ?? 10) * 1000,
    serverCpu: Number(a.workers ?? 1) > 1 ? "0,1" : "0",
  });
  checkOpenFiles(p.clients);
  const r = await runSoak(p, (line) => console.error(line));
  console.log(formatSoak(r));
  if (a.json) writeFileSync(a.json, JSON.stringify(r, null, 2));
  process.exit(r.counts.lost > 0 || r.counts.duplicated > 0 || r.counts.stuckOffline > 0 || !r.settled ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
