import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync, type ChildProcess } from "node:child_process";
import { benchAccounts } from "../lib/accounts.js";
import { Histogram } from "../lib/stats.js";
import { cpuBusySeconds, machineBusySeconds, pinSelf, sleep, spawnPinned, stealSeconds, stopChild, treesCpuSeconds } from "../lib/proc.js";
import { REPO } from "../lib/switchboard.js";
import { CpuQuota } from "../lib/cpu-quota.js";
import { Scrape } from "../lib/scrape.js";
import { defaults, type StreamManagementConfig } from "../../src/config/config.js";
import { startTarget, type MoreConfig, type TargetName } from "./targets.js";
import { startHosts } from "./hosts.js";
import { Router } from "../../src/router/router.js";
import { workerIdOf } from "../../src/cluster/nats-bus.js";
import type { GenCommand, GenEvent, GenSpec, SmStats } from "./gen.js";

export interface XmppParams {
  target: TargetName;
  users: number;
  messages: number;
  rate: number;
  rampMs: number;
  deadlineMs: number;
  procs: number;
  host: string;
  port?: number;
  domain: string;
  nodeArgs: string[];
  /** CPUs for the server and for the generator (taskset lists: "0", "0,1"). */
  serverCpu: string;
  genCpu: string;
  /** Switchboard: worker processes (more than one: a host under node:cluster with a nats-server). */
  workers: number;
  /**
   * The server's processes (workers, primary, nats-server) share this many cores' worth of CPU time from the
   * logins' end (a cgroup's CFS quota: bench/lib/cpu-quota.ts), so that one worker and n workers can be given
   * budgets of 1 and n equal "cores" on a machine with too few real ones. Absent: no quota.
   */
  serverQuota?: number;
  /** With serverQuota: each worker gets serverQuota ÷ workers of it, in a group of its own (CpuQuota.addTreesPerWorker). */
  quotaPerWorker?: boolean;
  /** Switchboard: hosts in a cluster on this machine, each of `workers` workers (more than one: bench/xmpp/hosts.ts). */
  hosts?: number;
  /** Switchboard: `io.writerThread` (default true; the server uses it only where it has two cores). */
  writerThread?: boolean | "always";
  /** Switchboard with several workers: custody of messages crossing workers (default on; off: `cluster.custody.maxHeld: 0`). */
  custody?: boolean;
  /** Switchboard with several workers: connections move to their user's owner after SASL (`cluster.handoff`; default: the config's default). */
  handoff?: boolean;
  /** Switchboard with several workers: `cluster.coalesceMs` (default: the config's default). */
  coalesceMs?: number;
  /** Switchboard (one worker): XEP-0313 archives on (xmpp.mam.enabled). */
  mam?: boolean;
  /** Switchboard (one worker): its store (default SQLite in a temp dir; postgres: a PostgreSQL started for the run). */
  store?: "sqlite" | "postgres";
  /** The compiled messaging pump (pump.c), or null for the Node.js generator's own loop. */
  pump: string | null;
  /** The pump polls without sleeping: its whole core, for no wake-up delay in what it measures. */
  spin: boolean;
  /** Every client enables XEP-0198 stream management and acknowledges (gen.ts, pump.c). */
  sm: boolean;
  /**
   * Switchboard with several workers on one host: each sender's recipients are users owned by its own worker
   * (local) or by another (cross); with cluster.handoff every session is on its owner, so no message, or
   * every message, crosses workers. Default: any user.
   */
  recipients?: "local" | "cross";
  /** With sm: a client <r/> with every smEvery-th message sent (1, as Conversations does); 0: never. */
  smEvery: number;
  /** Switchboard with sm: `xmpp.sm.answerDelayMs` (default: the config's default). */
  smAnswerDelayMs?: number;
  /** Switchboard with sm: `xmpp.sm.ackEveryMs` (default: the config's default). */
  smAckEveryMs?: number;
  /** Switchboard with sm: `xmpp.sm.ackEveryStanzas` (default: the config's default). */
  smAckEveryStanzas?: number;
  /** Switchboard: `limits.maxTurnMs`, intake's turn budget (default: the config's default; 0: none). */
  maxTurnMs?: number;
  /**
   * With the pump (not in a room): a warm-up of `ms` before the measured phase at `share` of the rate, not
   * measured (pump.c warm=): the server's CPU, syscalls and scrapes count from its end, t0. Absent or 0 ms: none.
   */
  warmup?: { ms: number; share: number };
}

/** Each bench user's owner worker (user i is `user<i>`), by the ring a host of `p.workers` builds with the defaults. */
function ownerGroups(p: XmppParams): number[] {
  if (p.target !== "switchboard" || p.workers < 2 || (p.hosts ?? 1) > 1) throw new Error("--recipients needs Switchboard with --workers > 1 on one host");
  const c = defaults().cluster;
  const ids = Array.from({ length: p.workers }, (_, i) => workerIdOf(c.hostAddress, i));
  const ring = new Router({ hosts: { [c.hostAddress]: ids }, vnodes: c.vnodes });
  return Array.from({ length: p.users }, (_, i) => ids.indexOf(ring.ownerOf(`user${i}@${p.domain}`)!));
}

/** A toy-sized run against Switchboard on loopback, for the smoke tests; `over` sets the rest. */
export function toyRun(over: Partial<XmppParams>): XmppParams {
  return {
    target: "switchboard",
    users: 10,
    messages: 2,
    rate: 10,
    rampMs: 100,
    deadlineMs: 10_000,
    procs: 1,
    host: "127.0.0.1",
    domain: "localhost",
    nodeArgs: [],
    serverCpu: "0",
    genCpu: "1",
    workers: 1,
    pump: null,
    spin: false,
    sm: false,
    smEvery: 1,
    ...over,
  };
}

/**
 * Compiles bench/xmpp/pump.c next to the compiled bench once per source
 * change; null (with the reason on stderr) where there is no C compiler.
 */
export function buildPump(opts: { sanitize?: boolean } = {}): string | null {
  const src = join(REPO, "bench/xmpp/pump.c");
  const out = join(REPO, opts.sanitize ? "dist/bench/xmpp/pump-asan" : "dist/bench/xmpp/pump");
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) return out;
  // sanitize: AddressSanitizer and UBSan (the project's rule for its C code), for the smoke tests; a report ends the pump with a non-zero status.
  const flags = opts.sanitize ? ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"] : ["-O2"];
  const cc = spawnSync("cc", [...flags, "-o", out, src], { stdio: ["ignore", "inherit", "inherit"] });
  if (cc.status === 0) return out;
  console.error(`bench: no C compiler for ${src} (${cc.error?.message ?? `exit ${cc.status}`}): the messaging phase runs in Node.js`);
  return null;
}

/** A run with --sm: what the clients saw, and the server's unacked queues (Switchboard's /metrics). */
export interface SmResult extends SmStats {
  /** The client's own <r/>: with every this many messages (0: never). */
  clientEvery: number;
  /** The server's XEP-0198 settings: Switchboard's defaults, which the bench does not change. */
  policy: StreamManagementConfig;
  /** switchboard_xmpp_sm_unacked_stanzas: the highest of the samples taken during the phase (every 2 s and at its end), and at its end. */
  unackedMax: number;
  unackedEnd: number;
  /** … once the clients answered the server's last <r/> (it comes ackEveryMs after the traffic): 0 when every h was right. */
  unackedSettled: number;
  settleSeconds: number;
}

export interface XmppResult {
  target: string;
  /** Which generator ran the messaging phase: "c" (pump.c), "c-spin" (pump.c polling without sleep) or "node". */
  generator?: string;
  /** The server's CPUs (taskset list). */
  serverCpu?: string;
  version: string;
  load: number;
  users: number;
  rate: number;
  messages: number;
  loggedIn: number;
  loginSeconds: number;
  /** TCP connect → the server's first byte at login (the wait for a worker to take the connection), ms. */
  firstByteMs?: { p50: number; p99: number; max: number };
  sent: number;
  received: number;
  inDeadline: number;
  deliveryRate: number;
  avgMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  serverCpuSeconds: number;
  /** The kernel's share of the server's CPU (system time over user + system). */
  serverSysShare?: number;
  /** The server processes' main threads alone (the event loops), per message sent. */
  serverMainUsPerMessage?: number;
  /** The server's read and write system calls (read, readv, write, writev…: /proc/N/io) per message sent, in the phase. */
  serverReadsPerMessage?: number;
  serverWritesPerMessage?: number;
  /** The main threads' kernel share (their system time over their user + system). */
  serverMainSysShare?: number;
  /**
   * Context switches per message sent, in the phase (/proc/N/task/T/status): voluntary (a thread blocked;
   * for the main thread, mostly an epoll_wait that found nothing ready and slept) and involuntary (preempted),
   * all threads and the main threads alone.
   */
  serverSwitchesPerMessage?: { voluntary: number; involuntary: number; mainVoluntary: number; mainInvoluntary: number };
  /** With --workers > 1: the nats-server's CPU alone per message sent (included in serverUsPerMessage). */
  natsUsPerMessage?: number;
  serverUsPerMessage: number;
  serverPeakRssMiB: number;
  /** The generator's processes' CPU over the phase (/proc, the interval of the server's), in cores. */
  generatorCpuCores: number;
  /** The generator's CPU in turns that did work: below generatorCpuCores only when it spins. */
  generatorBusyCores?: number;
  otherCpuCores: number;
  /** Share of the messaging phase in which the hypervisor ran something else on the server's core. */
  serverCoreStealShare?: number;
  /** The server's CPUs' busy time during the phase that was not the server's (other processes, interrupts), as a share of them. */
  serverCoreOthersShare?: number;
  phaseSeconds: number;
  /** Messages received per second from the schedule's start to the last arrival (with a quota above the offered rate: the server's throughput). */
  deliveredPerSecond?: number;
  /** Several workers: custody's and membership's counters at the phase's end (the whole run), summed over the workers. */
  custodyCounts?: { rerouted: number; slow: number; suppressed: number; resentDropped: number; staleDropped: number; membershipChanges: number; voided: number; givenUp: number };
  /** The turn budget's counters at the end (limits.maxTurnMs, src/transport/intake.ts): reads kept for a later turn, holds for a host link behind. */
  intakeCounts?: { deferred: number; holds: number };
  /** --server-quota: the budget, the share of its periods in which the group used it up, and the time it waited. */
  quota?: { cores: number; throttledShare: number; throttledSeconds: number };
  /** The warm-up before the measured phase (XmppParams.warmup), and its messages (not in sent, received or the latencies). */
  warmup?: { ms: number; share: number; sent: number; received: number };
  firstError: string;
  settings: string[];
  /** XEP-0198 stream management: absent when the clients did not enable it. */
  sm?: SmResult;
  /** With --runs and --sm/--mam both (bench/xmpp/main.ts): the run k it belongs to, and its place in that run's order (0 first). */
  run?: number;
  slot?: number;
  /** Connections the server cut as slow consumers over the whole run (Switchboard's switchboard_slow_consumers_total, xmpp). */
  slowConsumers?: number;
  /** Switchboard of several workers at the end: the share of sessions on their user's owner worker, and connections moved (cluster.handoff) or kept. */
  /** busPerMessage: bus messages the workers sent (the whole run, logins included) per chat message. */
  onOwner?: { share: number; out: number; stayed: number; direct?: number; busPerMessage?: number };
}

/** The server's gauge of unacked stanzas every 2 s from t0, until stop() gives the highest seen. */
function sampleUnacked(adminPort: number | undefined): { stop(): Promise<number> } {
  if (adminPort === undefined) return { stop: async () => NaN };
  let max = NaN;
  let busy: Promise<void> = Promise.resolve();
  const take = () =>
    (busy = Scrape.of(adminPort)
      .then((s) => {
        const v = s.get("switchboard_xmpp_sm_unacked_stanzas");
        if (!(v <= max)) max = v;
      })
      .catch(() => {}));
  const timer = setInterval(take, 2000);
  return {
    stop: async () => {
      clearInterval(timer);
      await busy;
      return max;
    },
  };
}

/** One measurement: start the server, log everyone in, run the schedule, stop everything. */
export async function runXmpp(p: XmppParams): Promise<XmppResult> {
  const names = Array.from({ length: p.users }, (_, i) => `user${i}`);
  // Only Switchboard is set up for XEP-0198 here (its defaults); the byte forwarder has none.
  if (p.sm && p.target !== "switchboard" && p.target !== "custom") throw new Error(`--sm: ${p.target} is not set up for stream management here (switchboard and custom are)`);
  const warmMs = p.warmup?.ms ?? 0;
  if (warmMs > 0 && (p.pump === null || !(p.warmup!.share > 0 && p.warmup!.share <= 1))) throw new Error("--warmup: needs the pump (--generator c) and a share in (0, 1]");
  const accounts = await benchAccounts(names, (u) => `pwd${u.slice(4)}`);
  const hosts = p.hosts ?? 1;
  if (hosts > 1 && p.target !== "switchboard") throw new Error(`--hosts: only switchboard runs as a cluster here, not ${p.target}`);
  const target =
    hosts > 1
      ? await startHosts(p.serverCpu, accounts, { hosts, workers: p.workers, nodeArgs: p.nodeArgs, writerThread: p.writerThread ?? true, custody: p.custody ?? true })
      : { ...(await startTarget(p.target, p.serverCpu, accounts, { port: p.port, nodeArgs: p.nodeArgs, workers: p.workers, writerThread: p.writerThread, custody: p.custody, mam: p.mam, handoff: p.handoff, coalesceMs: p.coalesceMs, store: p.store, more: moreConfig(p) })), endpoints: undefined };
  const work = mkdtempSync(join(tmpdir(), "bench-xmpp-gen-"));
  const gens: ChildProcess[] = [];
  /** This process's CPUs before the phase moved it to the generator's (pinSelf), until they are back. */
  let unpin: string | null = null;
  let quota: CpuQuota | null = null;
  try {
    const events: GenEvent[][] = [];
    const latest = (ev: GenEvent["ev"]) => events.map((l) => [...l].reverse().find((e) => e.ev === ev));
    for (let w = 0; w < p.procs; w++) {
      const slice = accounts.map((a, i) => [i, a.user, a.password, a.creds.salt.toString("base64"), a.salted1.toString("base64")]).filter((_, i) => i % p.procs === w);
      const file = join(work, `accounts-${w}.json`);
      writeFileSync(file, JSON.stringify(slice));
      // Each process has its own source address: ~28k ephemeral ports each.
      const spec: GenSpec = { host: p.host, port: target.port, hosts: target.endpoints, domain: p.domain, accountsFile: file, totalUsers: p.users, localAddress: `127.0.0.${2 + w}`, rampMs: p.rampMs, loginTimeoutMs: Number(process.env.BENCH_LOGIN_TIMEOUT_MS ?? 60_000), messages: p.messages, rate: p.rate, deadlineMs: p.deadlineMs, pump: p.pump, spin: p.spin, sm: p.sm, smEvery: p.smEvery, ...(warmMs > 0 ? { warm: p.warmup } : {}), ...(p.recipients === undefined ? {} : { pick: { mode: p.recipients, groups: ownerGroups(p) } }) };
      const child = spawnPinned(p.genCpu, process.execPath, [join(REPO, "dist/bench/xmpp/gen.js"), JSON.stringify(spec)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
      events.push([]);
      child.on("message", (e: GenEvent) => events[w].push(e));
      gens.push(child);
    }
    const cmd = (c: GenCommand) => gens.forEach((g) => g.send(c));

    // Log in: all slices report done (online or failed), or give up.
    const loginStart = Date.now();
    const loginLimit = p.rampMs + 75_000;
    while (!latest("login").every((e) => e?.ev === "login" && e.done) && Date.now() - loginStart < loginLimit) await sleep(200);
    const logins = latest("login") as Extract<GenEvent, { ev: "login" }>[];
    const loggedIn = logins.reduce((n, e) => n + (e?.online ?? 0), 0);
    const offline = logins.flatMap((e) => e?.offline ?? []);
    const firstError = logins.find((e) => e?.firstError)?.firstError ?? "";
    const loginSeconds = (Date.now() - loginStart) / 1000;
    const fb = new Histogram();
    for (const e of logins) if (e?.firstByte !== undefined) fb.merge(e.firstByte);
    const firstByteMs = fb.n > 0 ? { p50: fb.quantile(0.5), p99: fb.quantile(0.99), max: fb.maxMs } : undefined;
    if (loggedIn === 0) throw new Error(`nobody logged in to ${p.target}: ${firstError}`);
    await sleep(1000); // initial presences settle
    // The budget applies to the measured work, not to the logins (SCRAM, binds) before it.
    if (p.serverQuota !== undefined) {
      if (target.server === undefined || target.server === null) throw new Error(`--server-quota: ${p.target} is not a server started here`);
      quota = CpuQuota.create(p.serverQuota);
      if (p.quotaPerWorker) quota.addTreesPerWorker(target.server.watch.pids(), p.serverQuota);
      else quota.addTrees(target.server.watch.pids());
    }

    // Every slice ready (a pump has its sockets) before one t0 for all: a late
    // starter would send what it missed in one burst, and that burst would be measured.
    cmd({ cmd: "prepare", offline });
    const prepStart = Date.now();
    while (!latest("ready").every((e) => e !== undefined) && Date.now() - prepStart < 60_000) await sleep(50);
    if (!latest("ready").every((e) => e !== undefined)) throw new Error("the generator's processes did not get ready in 60 s");
    // The schedule, measured from t0 to the end of the wait; a warm-up (not measured) runs before t0.
    const t0 = performance.timeOrigin + performance.now() + 200 + warmMs;
    if (warmMs > 0) {
      cmd({ cmd: "go", t0 });
      await sleep(t0 - (performance.timeOrigin + performance.now()));
    }
    const cpu0 = target.server?.watch.cpu() ?? { total: 0, sys: 0, main: 0, perRoot: [] };
    const io0 = target.server?.watch.syscalls() ?? { reads: NaN, writes: NaN };
    const sw0 = target.server?.watch.switches();
    const busy0 = machineBusySeconds();
    const steal0 = stealSeconds(p.serverCpu);
    const allSteal0 = stealSeconds();
    const core0 = cpuBusySeconds(p.serverCpu);
    // The generator's CPU over the same interval as the server's, from /proc: the pumps' own count (getrusage at their
    // exit) also holds their spinning before t0 and through the settling after the phase, which is longer with --sm.
    const genPids = gens.map((g) => g.pid).filter((x): x is number => x !== undefined);
    const genCpu0 = treesCpuSeconds(genPids);
    // This process (scrapes, progress) keeps off the server's core while the phase is measured,
    // where the generator has a core of its own (docs/benchmarks.md, session 19).
    const apart = p.genCpu.split(",").every((c) => !p.serverCpu.split(",").includes(c));
    unpin = apart ? pinSelf(p.genCpu) : null;
    const phase0 = Date.now();
    // Sampled with and without --sm alike (Switchboard), so both pay the same few scrapes.
    const adminPort = target.server?.adminPort;
    const sampler = sampleUnacked(adminPort);
    if (warmMs === 0) cmd({ cmd: "go", t0 });
    const progress = () => latest("progress") as (Extract<GenEvent, { ev: "progress" }> | undefined)[];
    const expectMs = (p.messages / p.rate) * 1000;
    while (!progress().every((e) => e?.doneSending) && Date.now() - phase0 < expectMs * 3 + 60_000) await sleep(200);
    // Then wait until everything sent has arrived, at most the deadline.
    const doneAt = Date.now();
    const throttle0 = quota?.throttling();
    for (;;) {
      const pr = progress();
      const sent = pr.reduce((n, e) => n + (e?.sent ?? 0), 0);
      const recv = pr.reduce((n, e) => n + (e?.received ?? 0), 0);
      if (recv >= sent || Date.now() - doneAt > p.deadlineMs + 1000) break;
      // Finer with a quota: the end of the drain is what its throughput is read from.
      await sleep(quota === null ? 250 : 50);
    }
    const drainedAt = performance.timeOrigin + performance.now();
    const phaseSeconds = (Date.now() - phase0) / 1000;
    const cpu1 = target.server?.watch.cpu() ?? { total: 0, sys: 0, main: 0, perRoot: [] };
    const io1 = target.server?.watch.syscalls() ?? { reads: NaN, writes: NaN };
    const sw1 = target.server?.watch.switches();
    const serverCpu = cpu1.total - cpu0.total;
    const serverSys = cpu1.sys - cpu0.sys;
    const busy = machineBusySeconds() - busy0;
    const steal = stealSeconds(p.serverCpu) - steal0;
    const allSteal = stealSeconds() - allSteal0;
    const coreOthers = cpuBusySeconds(p.serverCpu) - core0 - serverCpu;
    const genCpu = treesCpuSeconds(genPids) - genCpu0;
    if (unpin !== null) pinSelf(unpin);
    unpin = null;
    // A server still working through a backlog (a saturated core) may take long to answer: that is a result, not a failed run.
    // Unanswered, the run stands without it (its SM checks then report the gauge as unread).
    const atEnd = adminPort === undefined ? null : await Scrape.of(adminPort, 30_000).catch(() => null);
    const seen = [await sampler.stop(), atEnd?.get("switchboard_xmpp_sm_unacked_stanzas") ?? NaN].filter((x) => !Number.isNaN(x));
    const unackedMax = seen.length > 0 ? Math.max(...seen) : NaN;
    // After the phase, not measured: the server's last <r/> comes ackEveryMs after its last stanza; once the
    // clients answered it, nothing may stay unacknowledged (an h one short anywhere would show here).
    const policy = { ...defaults().xmpp.sm, ...smPolicy(p) };
    let settled = atEnd;
    const settle0 = Date.now();
    if (p.sm && settled !== null) {
      while (settled.get("switchboard_xmpp_sm_unacked_stanzas") > 0 && Date.now() - settle0 < policy.ackEveryMs + 3000) {
        await sleep(250);
        settled = await Scrape.of(adminPort!, 30_000);
      }
    }
    const settleSeconds = (Date.now() - settle0) / 1000;
    const results = new Promise<Extract<GenEvent, { ev: "result" }>[]>((resolve) => {
      const check = () => {
        const r = latest("result");
        if (r.every((e) => e !== undefined)) resolve(r as Extract<GenEvent, { ev: "result" }>[]);
        else setTimeout(check, 50);
      };
      check();
    });
    cmd({ cmd: "stop" });
    const res = await results;
    const h = new Histogram();
    for (const r of res) h.merge(r.hist);
    const sum = (f: (r: Extract<GenEvent, { ev: "result" }>) => number) => res.reduce((n, r) => n + f(r), 0);
    const sent = sum((r) => r.sent);
    const peak = target.server?.watch.peakRssMiB ?? NaN;
    const throttle1 = quota?.throttling();
    const received = sum((r) => r.received);
    return {
      target: p.target,
      generator: p.pump === null ? "node" : p.spin ? "c-spin" : "c",
      serverCpu: p.serverCpu,
      version: target.version,
      load: p.users * p.rate,
      users: p.users,
      rate: p.rate,
      messages: p.messages,
      loggedIn,
      loginSeconds,
      firstByteMs,
      sent,
      received,
      inDeadline: sum((r) => r.inDeadline),
      deliveryRate: sent ? sum((r) => r.inDeadline) / sent : 0,
      avgMs: h.avgMs,
      p50Ms: h.quantile(0.5),
      p99Ms: h.quantile(0.99),
      maxMs: h.maxMs,
      errors: sum((r) => r.errors),
      serverCpuSeconds: serverCpu,
      serverUsPerMessage: sent ? (serverCpu / sent) * 1e6 : NaN,
      serverSysShare: serverCpu > 0 ? serverSys / serverCpu : NaN,
      serverMainUsPerMessage: sent ? ((cpu1.main - cpu0.main) / sent) * 1e6 : NaN,
      serverMainSysShare: sw0 && sw1 && cpu1.main > cpu0.main ? (sw1.mainSys - sw0.mainSys) / (cpu1.main - cpu0.main) : NaN,
      serverSwitchesPerMessage:
        sw0 && sw1 && sent
          ? { voluntary: (sw1.voluntary - sw0.voluntary) / sent, involuntary: (sw1.involuntary - sw0.involuntary) / sent, mainVoluntary: (sw1.mainVoluntary - sw0.mainVoluntary) / sent, mainInvoluntary: (sw1.mainInvoluntary - sw0.mainInvoluntary) / sent }
          : undefined,
      serverReadsPerMessage: sent ? (io1.reads - io0.reads) / sent : NaN,
      serverWritesPerMessage: sent ? (io1.writes - io0.writes) / sent : NaN,
      // A host of several workers watches [host, nats-server]: the bus's server apart (it is in serverUsPerMessage too).
      natsUsPerMessage: sent && cpu1.perRoot.length > 1 ? ((cpu1.perRoot[1] - cpu0.perRoot[1]) / sent) * 1e6 : undefined,
      serverPeakRssMiB: peak,
      generatorCpuCores: genCpu / phaseSeconds,
      generatorBusyCores: sum((r) => r.busySeconds) / phaseSeconds,
      otherCpuCores: Math.max(0, busy - serverCpu - genCpu - allSteal) / phaseSeconds,
      serverCoreStealShare: steal / phaseSeconds / p.serverCpu.split(",").length,
      serverCoreOthersShare: Math.max(0, coreOthers) / phaseSeconds / p.serverCpu.split(",").length,
      phaseSeconds,
      // From t0 (the schedule's start) to the last arrival seen (polled every 50 ms with a quota): under a quota
      // that the offered rate exceeds, the server works through a backlog all along, so this is its throughput.
      deliveredPerSecond: received / ((drainedAt - t0) / 1000),
      ...(atEnd === null || Number.isNaN(atEnd.get("switchboard_cluster_messages_rerouted_total"))
        ? {}
        : {
            custodyCounts: {
              rerouted: atEnd.get("switchboard_cluster_messages_rerouted_total"),
              slow: atEnd.get("switchboard_cluster_custody_slow_total"),
              suppressed: atEnd.get("switchboard_cluster_duplicates_suppressed_total"),
              resentDropped: atEnd.get("switchboard_resent_duplicates_dropped_total"),
              staleDropped: atEnd.get("switchboard_cluster_stale_messages_dropped_total"),
              membershipChanges: atEnd.get("switchboard_cluster_membership_changes_total"),
              voided: atEnd.get("switchboard_cluster_riding_voided_total"),
              givenUp: atEnd.get("switchboard_cluster_messages_given_up_total"),
            },
          }),
      ...(atEnd === null || Number.isNaN(atEnd.get("switchboard_intake_deferred_reads_total"))
        ? {}
        : { intakeCounts: { deferred: atEnd.get("switchboard_intake_deferred_reads_total"), holds: atEnd.get("switchboard_intake_holds_total") } }),
      ...(quota === null || throttle0 === undefined || throttle1 === undefined
        ? {}
        : { quota: { cores: p.serverQuota!, throttledShare: (throttle1.throttled - throttle0.throttled) / Math.max(1, throttle1.periods - throttle0.periods), throttledSeconds: throttle1.throttledSeconds - throttle0.throttledSeconds } }),
      ...(warmMs > 0 ? { warmup: { ...p.warmup!, sent: res.reduce((n, r) => n + r.warm.sent, 0), received: res.reduce((n, r) => n + r.warm.received, 0) } } : {}),
      firstError,
      settings: target.settings,
      slowConsumers: settled?.get("switchboard_slow_consumers_total", { protocol: "xmpp" }) ?? undefined,
      onOwner:
        atEnd === null || Number.isNaN(atEnd.get("switchboard_cluster_sessions_on_owner"))
          ? undefined
          : { share: atEnd.get("switchboard_cluster_sessions_on_owner") / atEnd.get("switchboard_sessions"), out: atEnd.get("switchboard_cluster_handoffs_total", { direction: "out" }), stayed: atEnd.get("switchboard_cluster_handoffs_total", { direction: "stayed" }), direct: atEnd.get("switchboard_cluster_handoffs_direct_total"), busPerMessage: sent ? atEnd.get("switchboard_cluster_bus_messages_total", { direction: "sent" }) / sent : NaN },
      sm: p.sm
        ? {
            ...res.reduce((a, r) => ({ enabled: a.enabled + r.sm.enabled, serverRequests: a.serverRequests + r.sm.serverRequests, clientRequests: a.clientRequests + r.sm.clientRequests, badAcks: a.badAcks + r.sm.badAcks, failed: a.failed + r.sm.failed }), { enabled: 0, serverRequests: 0, clientRequests: 0, badAcks: 0, failed: 0 } as SmStats),
            clientEvery: p.smEvery,
            policy,
            unackedMax,
            unackedEnd: atEnd?.get("switchboard_xmpp_sm_unacked_stanzas") ?? NaN,
            unackedSettled: settled?.get("switchboard_xmpp_sm_unacked_stanzas") ?? NaN,
            settleSeconds,
          }
        : undefined,
    };
  } finally {
    if (unpin !== null) pinSelf(unpin);
    quota?.remove();
    await Promise.all(gens.map((g) => stopChild(g, 2000)));
    await target.server?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

/** `--sm-answer-delay`, `--sm-ack-every-ms`, `--sm-ack-every-stanzas`: the xmpp.sm keys set for the run. */
function smPolicy(p: XmppParams): { answerDelayMs?: number; ackEveryMs?: number; ackEveryStanzas?: number } {
  return {
    ...(p.smAnswerDelayMs === undefined ? {} : { answerDelayMs: p.smAnswerDelayMs }),
    ...(p.smAckEveryMs === undefined ? {} : { ackEveryMs: p.smAckEveryMs }),
    ...(p.smAckEveryStanzas === undefined ? {} : { ackEveryStanzas: p.smAckEveryStanzas }),
  };
}

/** Switchboard's xmpp.sm keys (smPolicy) and `limits.maxTurnMs` set for the run, and said so. */
function moreConfig(p: XmppParams): MoreConfig | undefined {
  if (p.target !== "switchboard") return undefined;
  const config: Record<string, unknown> = {};
  const settings: string[] = [];
  const sm = smPolicy(p);
  if (Object.keys(sm).length > 0) {
    config.xmpp = { sm };
    for (const [k, v] of Object.entries(sm)) settings.push(`\`xmpp.sm.${k}: ${v}\``);
  }
  if (p.maxTurnMs !== undefined) {
    config.limits = { maxTurnMs: p.maxTurnMs };
    settings.push(`\`limits.maxTurnMs: ${p.maxTurnMs}\``);
  }
  return settings.length === 0 ? undefined : { config, settings };
}
