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
 *   --sm [both]     every client enables XEP-0198 stream management after bind and acknowledges as a
 *                   client does (answers each <r/> with <a h/>, asks <r/> itself, checks the server's <a/>);
 *                   Switchboard with its default xmpp.sm policy. `both`: each run once without, once with,
 *                   the order turned round run by run (run 0 off then on, run 1 on then off…: --runs 2 is an
 *                   ABBA pair, so a drift within the hold falls on both sides alike), then a table of CPU per
 *                   message side by side with each run's on ÷ off and each ABBA pair's (docs/benchmarks.md);
 *                   --first on: run 0 on then off (BAAB), to alternate the first side hold by hold
 *   --prime         one run of the first configuration before the measured ones, printed and not counted: on
 *                   this machine the first run after a minute or so of quiet falls behind where the runs right
 *                   after it keep up (docs/benchmarks.md, session 33), which weighs on whichever side runs first
 *   --warmup MS[,SHARE]  with --generator c: before the measured phase, MS ms of messages at SHARE of the
 *                   rate (default 0.25), not measured: latencies, delivery, the server's CPU and syscalls count
 *                   from its end (pump.c warm=). Default with --sm: 2000,0.25 (issue 13's target is the steady
 *                   state; docs/benchmarks.md, session 20); otherwise 0. --warmup 0: none, the phase measured cold
 *   --sm-every N    with --sm: the client's <r/> goes with every N-th message it sends (1, as Conversations
 *                   does, the default; 0: only the server asks)
 *   --sm-answer-delay MS  with --sm: Switchboard's xmpp.sm.answerDelayMs (how long an <a/> may wait for other
 *                   output to its client; default: the config's)
 *   --sm-ack-every-ms MS  with --sm: Switchboard's xmpp.sm.ackEveryMs (the time trigger of its <r/>; default: the config's)
 *   --sm-ack-every-stanzas N  with --sm: Switchboard's xmpp.sm.ackEveryStanzas (the count trigger of its <r/>; default: the config's)
 *   --max-turn-ms N  Switchboard's limits.maxTurnMs (intake's turn budget; 0: none; default: the config's)
 *   --host H --port P --domain D               for --target custom
 *   --sweep LIST    loads in msg/s, e.g. 1000,2000,5000,10000,20000; with --targets A,B,C.
 *                   Up to --max-users (10000) a load is that many users at 1/s; beyond,
 *                   10000 users at load/10000 msg/s each (20,000 open files per process).
 *   --json FILE     write the results      --docs    rewrite docs/benchmarks.md's XMPP section and docs/img/
 *                   (with --sm: its "Stream management" section and docs/img/xmpp-sm.json instead)
 *   --report FILE   rewrite them from a sweep's saved JSON (docs/img/xmpp-sweep.json), running nothing
 *   --note "TEXT"   a sentence about the run's conditions, printed under the command in the docs
 *   --writer W      Switchboard's io.writerThread: on (default: the thread where each worker has two cores,
 *                   --server-cpu 0,1 with one worker), off, or always (also on one core, or a core per worker)
 *   --server-quota C  the server's processes (workers, primary, nats-server) share C cores' worth of CPU time from the
 *                   logins' end (a cgroup's CFS quota, root only: bench/lib/cpu-quota.ts); with a rate above what C cores
 *                   carry, "delivered/s" is the server's throughput on C cores (issue 14: n workers on n × C against one on C);
 *                   the writer thread then defaults to always, for one worker and for n alike (give --writer off to compare without)
 *   --quota-per-worker  with --server-quota and --workers n: each worker gets C ÷ n of its own (a child group), as on a
 *                   machine with a core per worker; primary and nats-server share what is left of C
 *   --hosts H       Switchboard as H hosts on this machine (127.0.0.1..H), each of --workers workers, one nats-server,
 *                   one PostgreSQL; user i connects to host i % H (bench/xmpp/hosts.ts)
 *   --handoff on|off  with --workers > 1: cluster.handoff (connections moved to their user's owner worker after SASL)
 *   --recipients local|cross  with --workers > 1 (one host): each sender writes to users owned by its own worker
 *                   (local) or by another (cross); with cluster.handoff (the default) sessions are on their owners,
 *                   so no message, or every one, crosses workers: a crossing's cost in the same deployment
 *   --coalesce-ms N  with --workers > 1: cluster.coalesceMs (a turn's bus batches go at most once per N ms)
 *   --custody off   with --workers > 1: custody of messages crossing workers off (cluster.custody.maxHeld 0), the yardstick for its cost
 *   --mam on|both   Switchboard with XEP-0313 archives on (xmpp.mam.enabled; default off); both: off and on in each run,
 *                   the order turned round run by run as with --sm both
 *   --store S       Switchboard (one worker): sqlite (default, a file in a temp dir) or postgres (a PostgreSQL started
 *                   for the run by test/postgres.ts; its CPU is printed apart, not counted as the server's)
 *   --cpu-prof      run Switchboard under node --cpu-prof (profiles land in its temp dir's parent: ./)
 *   --server-node-args="A B"  more node flags for Switchboard (e.g. --server-node-args=--trace-gc)
 */
import { readFileSync, writeFileSync } from "node:fs";
import { median, medianRun } from "../lib/stats.js";
import { waitQuiet } from "../lib/proc.js";
import { buildPump, runXmpp, type XmppParams, type XmppResult } from "./run.js";
import { writeXmppReport, type XmppReport } from "./report.js";
import { runOrder, smComparison, smText, writeSmReport } from "./sm-report.js";
import type { TargetName } from "./targets.js";
import { defaults } from "../../src/config/config.js";
import { benchArgs } from "../lib/args.js";

function line(r: XmppResult): string {
  return (
    `${r.target.padEnd(11)} load ${String(r.load).padStart(6)}/s (${r.users}×${r.rate})  in ${r.loggedIn}/${r.users}  sent ${r.sent} recv ${r.received}  ` +
    (r.quota === undefined ? "" : `delivered ${(r.deliveredPerSecond ?? NaN).toFixed(0)}/s on a quota of ${r.quota.cores} cores (throttled in ${(r.quota.throttledShare * 100).toFixed(0)} % of its periods)  `) +
    (r.custodyCounts === undefined ? "" : `custody ${JSON.stringify(r.custodyCounts)}  `) +
    (r.intakeCounts === undefined ? "" : `intake ${JSON.stringify(r.intakeCounts)}  `) +
    `delivered ${(r.deliveryRate * 100).toFixed(2)} %  avg ${r.avgMs.toFixed(2)} p50 ${r.p50Ms.toFixed(2)} p99 ${r.p99Ms.toFixed(2)} max ${r.maxMs.toFixed(0)} ms  ` +
    `server ${r.serverCpuSeconds.toFixed(1)} CPU-s (${r.serverUsPerMessage.toFixed(0)} µs/msg, ${((r.serverSysShare ?? NaN) * 100).toFixed(0)} % kernel; main threads ${(r.serverMainUsPerMessage ?? NaN).toFixed(0)} µs/msg, ${((r.serverMainSysShare ?? NaN) * 100).toFixed(0)} % kernel; syscalls per msg ${(r.serverReadsPerMessage ?? NaN).toFixed(2)} read ${(r.serverWritesPerMessage ?? NaN).toFixed(2)} write${r.serverSwitchesPerMessage === undefined ? "" : `; context switches per msg ${r.serverSwitchesPerMessage.voluntary.toFixed(3)} voluntary ${r.serverSwitchesPerMessage.involuntary.toFixed(3)} involuntary (main threads ${r.serverSwitchesPerMessage.mainVoluntary.toFixed(3)} / ${r.serverSwitchesPerMessage.mainInvoluntary.toFixed(3)})`}${r.natsUsPerMessage === undefined ? "" : `; nats-server ${r.natsUsPerMessage.toFixed(1)} µs/msg`}) ${r.serverPeakRssMiB.toFixed(0)} MiB  gen ${r.generatorCpuCores.toFixed(2)} cores${r.generator === "c-spin" ? ` (busy ${r.generatorBusyCores!.toFixed(2)})` : ""}  others ${r.otherCpuCores.toFixed(2)} cores  steal ${((r.serverCoreStealShare ?? NaN) * 100).toFixed(1)} % of the server's core, others ${((r.serverCoreOthersShare ?? NaN) * 100).toFixed(1)} % of it  ${smText(r)}${r.warmup === undefined ? "" : `  warm-up ${(r.warmup.ms / 1000).toFixed(1)} s at ${(r.warmup.share * 100).toFixed(0)} % of the rate (sent ${r.warmup.sent}, received ${r.warmup.received}; not measured)`}  logins ${r.loginSeconds.toFixed(1)} s${r.firstByteMs === undefined ? "" : ` (connect → first byte p50 ${r.firstByteMs.p50.toFixed(1)} p99 ${r.firstByteMs.p99.toFixed(1)} max ${r.firstByteMs.max.toFixed(0)} ms; ${r.users - r.loggedIn} failed)`}${r.onOwner === undefined ? "" : `  on owner ${(r.onOwner.share * 100).toFixed(1)} % (moved ${r.onOwner.out}${r.onOwner.direct === undefined || Number.isNaN(r.onOwner.direct) ? "" : `, ${r.onOwner.direct} of them directly`}, stayed ${r.onOwner.stayed}${r.onOwner.busPerMessage === undefined || Number.isNaN(r.onOwner.busPerMessage) ? "" : `; ${r.onOwner.busPerMessage.toFixed(2)} bus messages per message`})`}${r.firstError ? `  [${r.firstError.slice(0, 120)}]` : ""}`
  );
}

function failedRun(p: XmppParams, why: string): XmppResult {
  return { target: p.target, version: "", load: p.users * p.rate, users: p.users, rate: p.rate, messages: p.messages, loggedIn: 0, loginSeconds: NaN, sent: 0, received: 0, inDeadline: 0, deliveryRate: 0, avgMs: NaN, p50Ms: NaN, p99Ms: NaN, maxMs: NaN, errors: 0, serverCpuSeconds: NaN, serverUsPerMessage: NaN, serverPeakRssMiB: NaN, generatorCpuCores: NaN, otherCpuCores: NaN, phaseSeconds: 0, firstError: why, settings: [], sm: p.sm ? { enabled: 0, serverRequests: 0, clientRequests: 0, badAcks: 0, failed: 0, clientEvery: p.smEvery, policy: defaults().xmpp.sm, unackedMax: NaN, unackedEnd: NaN, unackedSettled: NaN, settleSeconds: NaN } : undefined };
}

/**
 * Medians over runs; the reported run for the latency columns is the one with
 * the median p99. What must be zero (slow consumers, wrong acks, failed, unacked
 * left) is the worst run's, so that no run's fault hides behind a median.
 */
function combine(runs: XmppResult[]): XmppResult {
  const m = medianRun(runs, (r) => r.p99Ms);
  const worst = (f: (r: XmppResult) => number | undefined) => {
    const xs = runs.map((r) => f(r) ?? NaN).filter((x) => !Number.isNaN(x));
    return xs.length > 0 ? Math.max(...xs) : NaN;
  };
  const sm = m.sm && { ...m.sm, badAcks: worst((r) => r.sm?.badAcks), failed: worst((r) => r.sm?.failed), unackedMax: worst((r) => r.sm?.unackedMax), unackedSettled: worst((r) => r.sm?.unackedSettled) };
  return { ...m, sm, slowConsumers: worst((r) => r.slowConsumers), deliveryRate: median(runs.map((r) => r.deliveryRate)), avgMs: median(runs.map((r) => r.avgMs)), p50Ms: median(runs.map((r) => r.p50Ms)), p99Ms: median(runs.map((r) => r.p99Ms)), maxMs: median(runs.map((r) => r.maxMs)), serverUsPerMessage: median(runs.map((r) => r.serverUsPerMessage)), serverReadsPerMessage: median(runs.map((r) => r.serverReadsPerMessage ?? NaN)), serverWritesPerMessage: median(runs.map((r) => r.serverWritesPerMessage ?? NaN)), serverPeakRssMiB: median(runs.map((r) => r.serverPeakRssMiB)), generatorCpuCores: median(runs.map((r) => r.generatorCpuCores)), generatorBusyCores: median(runs.map((r) => r.generatorBusyCores ?? r.generatorCpuCores)) };
}

async function main(): Promise<void> {
  const a = benchArgs();
  const maxUsers = Number(a["max-users"] ?? 10000);
  if (a.recipients !== undefined && a.recipients !== "local" && a.recipients !== "cross") throw new Error(`--recipients ${a.recipients}: local or cross`);
  const pump = a.generator === "c" ? buildPump() : null;
  const warmArg = a.warmup ?? (pump !== null && a.sm !== undefined && a.sm !== "off" ? "2000,0.25" : "0");
  const [warmMs, warmShare] = [Number(warmArg.split(",")[0]), Number(warmArg.split(",")[1] ?? 0.25)];
  if (!(warmMs >= 0) || !(warmShare > 0 && warmShare <= 1)) throw new Error(`--warmup ${warmArg}: MS[,SHARE], SHARE in (0, 1]`);
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
    ...(a["server-quota"] === undefined ? {} : { serverQuota: Number(a["server-quota"]) }),
    ...(a["quota-per-worker"] === "true" ? { quotaPerWorker: true } : {}),
    hosts: Number(a.hosts ?? 1),
    // Under a quota every worker count gets the same (session 32): the default would give one worker on the two cores its
    // thread and two workers none, and compare unlike servers on like budgets.
    writerThread: a.writer === "off" ? false : a.writer === "always" || (a.writer === undefined && a["server-quota"] !== undefined) ? "always" : true,
    custody: a.custody !== "off",
    handoff: a.handoff === undefined ? undefined : a.handoff === "on",
    coalesceMs: a["coalesce-ms"] === undefined ? undefined : Number(a["coalesce-ms"]),
    ...(a.recipients === "local" || a.recipients === "cross" ? { recipients: a.recipients } : {}),
    mam: false,
    store: a.store === "postgres" ? "postgres" : "sqlite",
    pump,
    spin: pump !== null && a.spin === "true",
    sm: false,
    smEvery: Number(a["sm-every"] ?? 1),
    smAnswerDelayMs: a["sm-answer-delay"] === undefined ? undefined : Number(a["sm-answer-delay"]),
    smAckEveryMs: a["sm-ack-every-ms"] === undefined ? undefined : Number(a["sm-ack-every-ms"]),
    smAckEveryStanzas: a["sm-ack-every-stanzas"] === undefined ? undefined : Number(a["sm-ack-every-stanzas"]),
    maxTurnMs: a["max-turn-ms"] === undefined ? undefined : Number(a["max-turn-ms"]),
    ...(warmMs > 0 ? { warmup: { ms: warmMs, share: warmShare } } : {}),
  });
  const runs = Number(a.runs ?? 1);
  // --sm both: without and with in every run, so that both see the same hour of a shared machine; the order
  // turns round run by run (runOrder), so that a drift within a hold does not favour one side every time.
  const modes = a.sm === undefined || a.sm === "off" ? [false] : a.sm === "both" ? [false, true] : [true];
  // --mam both: archives off and on in every run, the order turned round run by run, as --sm both does.
  const mams = a.mam === undefined || a.mam === "off" ? [false] : a.mam === "both" ? [false, true] : [true];
  // --first on: run 0 begins with SM (or archives) on, so holds can alternate ABBA and BAAB (an effect of a run's
  // place in its hold then falls on each side in turn: docs/benchmarks.md, session 26).
  if (a.first !== undefined && a.first !== "on" && a.first !== "off") throw new Error(`--first ${a.first}: on or off`);
  const first = a.first === "on" ? 1 : 0;
  /** Every run, for the side-by-side table. */
  const every: XmppResult[] = [];
  let prime = a.prime === "true";
  const measure = async (p: XmppParams): Promise<XmppResult[]> => {
    const combos = modes.flatMap((sm) => mams.map((mam) => ({ sm, mam })));
    const all: XmppResult[][] = combos.map(() => []);
    if (prime) {
      // Once per invocation, before the first measured run: the machine's state after a quiet spell is not measured.
      prime = false;
      const { sm, mam } = combos[runOrder(combos.length, first)[0]];
      await waitQuiet();
      try {
        console.log(`prime (not counted): ${line(await runXmpp({ ...p, sm, mam }))}`);
      } catch (e) {
        console.log(`prime (not counted): failed: ${String((e as Error).message ?? e)}`);
      }
    }
    for (let k = 0; k < runs; k++) {
      for (const [slot, i] of runOrder(combos.length, k + first).entries()) {
        const { sm, mam } = combos[i];
        await waitQuiet();
        let r: XmppResult;
        try {
          r = await runXmpp({ ...p, sm, mam });
        } catch (e) {
          // A server nobody could log in to is a result too (0 % delivered), not the end of the sweep.
          r = failedRun({ ...p, sm, mam }, String((e as Error).message ?? e));
        }
        r = { ...r, run: k, slot };
        if (mams.length > 1 || mam) console.log(`archives ${mam ? "on" : "off"}:`);
        console.log(line(r));
        all[i].push(r);
        every.push(r);
      }
    }
    return all.map((l) => (runs > 1 ? combine(l) : l[0]));
  };
  const command = `npm run bench:xmpp -- ${process.argv.slice(2).map((x) => (/\s/.test(x) ? JSON.stringify(x) : x)).join(" ")}`;
  const withSm = () => every.some((r) => r.sm !== undefined);
  const sideBySide = () => {
    if (withSm()) console.log(`\n${smComparison(every, command)}`);
  };

  if (a.report !== undefined) {
    const saved = JSON.parse(readFileSync(a.report, "utf8")) as XmppReport;
    // A report with runs of --sm rewrites the stream-management section; any other, seed 000's sweep.
    if (saved.every?.some((r) => r.sm !== undefined)) writeSmReport(saved);
    else writeXmppReport(saved);
    return;
  }
  if (a.sweep === undefined) {
    const rs = await measure(base((a.target ?? "switchboard") as TargetName, Number(a.users ?? 1000), Number(a.rate ?? 1)));
    if (runs > 1) for (const r of rs) console.log(`median: ${line(r)}`);
    sideBySide();
    const report: XmppReport = { date: new Date().toISOString(), command, runs, results: rs, note: a.note, ...(withSm() ? { every } : {}) };
    if (a.json) writeFileSync(a.json, JSON.stringify(withSm() ? report : rs[0], null, 2));
    if (a.docs === "true" && withSm()) writeSmReport(report);
    return;
  }
  const loads = a.sweep.split(",").map(Number);
  const targets = (a.targets ?? "switchboard,prosody,ejabberd").split(",") as TargetName[];
  const results: XmppResult[] = [];
  for (const t of targets) {
    for (const load of loads) {
      const users = Math.min(load, maxUsers);
      const rs = await measure(base(t, users, load / users));
      results.push(...rs);
      for (const r of rs) console.log(`=> ${line(r)}`);
      // A server that has collapsed will not recover at a higher load: spare the time.
      if (rs.some((r) => r.deliveryRate < 0.5)) {
        console.log(`${t} delivered under 50 % at ${load}/s: higher loads skipped`);
        break;
      }
    }
  }
  sideBySide();
  const report: XmppReport = { date: new Date().toISOString(), command, runs, results, loads, note: a.note, ...(withSm() || runs > 1 ? { every } : {}) };
  if (a.json) writeFileSync(a.json, JSON.stringify(report, null, 2));
  // With --sm the runs go to their own section: seed 000's sweep (with the peers) stays as it is.
  if (a.docs === "true") (withSm() ? writeSmReport : writeXmppReport)(report);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
