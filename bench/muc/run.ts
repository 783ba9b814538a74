import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { benchAccounts } from "../lib/accounts.js";
import { Histogram } from "../lib/stats.js";
import { machineBusySeconds, sleep, spawnPinned, stealSeconds, stopChild } from "../lib/proc.js";
import { REPO } from "../lib/switchboard.js";
import { startTarget } from "../xmpp/targets.js";
import type { GenCommand, GenEvent, GenSpec } from "../xmpp/gen.js";

/*
 * One run of `npm run bench:muc`: a room of N occupants on Switchboard. The users log in through
 * bench/xmpp's generator processes (gen.ts, each on its own 127.0.0.x address); user0 makes the room
 * (XEP-0045 §10.1.1) and accepts the default configuration at once (an instant room, §10.1.2); everyone
 * else joins. Then the first S users post groupchat messages to the room at `rate` each (through pump.c or
 * the Node.js generator), their send time and a sequence number in the body; every occupant takes each
 * room message once, by its sequence number, and its latency from the first arrival.
 */

export interface RoomParams {
  occupants: number;
  /** Users 0..senders-1 post to the room. */
  senders: number;
  /** Room messages per second, all senders together. */
  rate: number;
  /** Length of the sending phase. */
  seconds: number;
  deadlineMs: number;
  procs: number;
  /** Login and join spread. */
  rampMs: number;
  serverCpu: string;
  genCpu: string;
  workers: number;
  nodeArgs: string[];
  /** The compiled pump.c, or null for the Node.js generator's own loop. */
  pump: string | null;
  spin: boolean;
}

export interface RoomResult {
  occupants: number;
  workers: number;
  senders: number;
  /** Room messages per second and the deliveries per second they make (× occupants). */
  rate: number;
  load: number;
  generator: string;
  serverCpu: string;
  version: string;
  loggedIn: number;
  loginSeconds: number;
  /** Until every occupant saw every occupant's presence (N² presence stanzas); the server's CPU for it. */
  joinSeconds: number;
  joinCpuSeconds: number;
  sent: number;
  /** sent × occupants: each room message to each occupant, the sender too (XEP-0045 §7.4). */
  expected: number;
  /** First arrivals of a room message at an occupant; a second arrival is a duplicate. */
  received: number;
  duplicates: number;
  inDeadline: number;
  deliveryRate: number;
  /** Deliveries received per second of the sending phase. */
  deliveriesPerSecond: number;
  avgMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  serverCpuSeconds: number;
  serverSysShare: number;
  serverUsPerDelivery: number;
  serverMainUsPerDelivery: number;
  serverPeakRssMiB: number;
  generatorCpuCores: number;
  generatorBusyCores: number;
  otherCpuCores: number;
  serverCoreStealShare: number;
  phaseSeconds: number;
  firstError: string;
  settings: string[];
  /** Each pump's exit (0 when clean; a sanitized pump's report makes it another). */
  pumpStatus: (number | string | null)[];
}

export const ROOM = "bench@conference.localhost";

/** A toy-sized run for the smoke tests; `over` sets the rest. */
export function toyRoom(over: Partial<RoomParams>): RoomParams {
  return { occupants: 20, senders: 2, rate: 20, seconds: 1, deadlineMs: 10_000, procs: 2, rampMs: 200, serverCpu: "0", genCpu: "1", workers: 1, nodeArgs: [], pump: null, spin: false, ...over };
}

export async function runRoom(p: RoomParams): Promise<RoomResult> {
  if (p.senders < 1 || p.senders > p.occupants) throw new Error("--senders must be between 1 and the occupants");
  const perSender = p.rate / p.senders;
  const messages = Math.round(perSender * p.seconds);
  const names = Array.from({ length: p.occupants }, (_, i) => `user${i}`);
  const accounts = await benchAccounts(names, (u) => `pwd${u.slice(4)}`);
  const target = await startTarget("switchboard", p.serverCpu, accounts, {
    nodeArgs: p.nodeArgs,
    workers: p.workers,
    more: {
      config: { muc: { enabled: true, maxOccupants: Math.max(p.occupants, 200) } },
      settings: [`\`muc.enabled: true\` (the service at conference.localhost), \`muc.maxOccupants: ${Math.max(p.occupants, 200)}\` (default 200); one room, made by its first occupant and configured at once as an instant room (XEP-0045 §10.1.2: the default configuration, semi-anonymous, 20 messages of history kept)`],
    },
  });
  const server = target.server!;
  const work = mkdtempSync(join(tmpdir(), "bench-muc-gen-"));
  const gens: ChildProcess[] = [];
  try {
    const events: GenEvent[][] = [];
    const latest = <E extends GenEvent["ev"]>(ev: E) => events.map((l) => [...l].reverse().find((e) => e.ev === ev) as Extract<GenEvent, { ev: E }> | undefined);
    const until = async (what: string, ok: () => boolean, ms: number) => {
      const t = Date.now();
      while (!ok()) {
        if (Date.now() - t > ms) throw new Error(`${what}: not within ${ms} ms`);
        await sleep(100);
      }
    };
    for (let w = 0; w < p.procs; w++) {
      const slice = accounts.map((a, i) => [i, a.user, a.password, a.creds.salt.toString("base64"), a.salted1.toString("base64")]).filter((_, i) => i % p.procs === w);
      const file = join(work, `accounts-${w}.json`);
      writeFileSync(file, JSON.stringify(slice));
      const spec: GenSpec = { host: "127.0.0.1", port: target.port, domain: "localhost", accountsFile: file, totalUsers: p.occupants, localAddress: `127.0.0.${2 + w}`, rampMs: p.rampMs, loginTimeoutMs: 60_000, messages, rate: perSender, deadlineMs: p.deadlineMs, pump: p.pump, spin: p.spin, sm: false, smEvery: 1, room: { jid: ROOM, senders: p.senders } };
      const child = spawnPinned(p.genCpu, process.execPath, [join(REPO, "dist/bench/xmpp/gen.js"), JSON.stringify(spec)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
      events.push([]);
      child.on("message", (e: GenEvent) => events[w].push(e));
      gens.push(child);
    }
    const cmd = (c: GenCommand, only?: number) => gens.forEach((g, i) => (only === undefined || i === only) && g.send(c));

    const login0 = Date.now();
    await until("login", () => latest("login").every((e) => e?.done), p.rampMs + 75_000);
    const logins = latest("login");
    const loggedIn = logins.reduce((n, e) => n + (e?.online ?? 0), 0);
    const firstError = logins.find((e) => e?.firstError)?.firstError ?? "";
    const loginSeconds = (Date.now() - login0) / 1000;
    if (loggedIn !== p.occupants) throw new Error(`${loggedIn} of ${p.occupants} logged in: ${firstError}`);

    // The room: user0 (generator 0) makes it, then everyone else joins; done when each saw everyone's presence.
    const join0 = Date.now();
    const cpuJoin0 = server.watch.cpu().total;
    cmd({ cmd: "create" }, 0);
    await until("the room's creation", () => latest("created")[0] !== undefined, 30_000);
    const made = latest("created")[0]!;
    if (made.error !== "") throw new Error(`the room was not made: ${made.error}`);
    cmd({ cmd: "join", occupants: p.occupants, rampMs: p.rampMs });
    const joined = () => latest("joined");
    await until(
      "joining",
      () => {
        const j = joined();
        const err = j.find((e) => e !== undefined && e.errors > 0);
        if (err !== undefined) throw new Error(`a join failed: ${err.firstError}`);
        return j.every((e) => e !== undefined) && j.reduce((n, e) => n + e!.joined, 0) === p.occupants;
      },
      p.rampMs + Math.max(60_000, p.occupants * 100),
    );
    const joinSeconds = (Date.now() - join0) / 1000;
    const joinCpuSeconds = server.watch.cpu().total - cpuJoin0;
    await sleep(500);

    cmd({ cmd: "prepare", offline: [] });
    await until("the generators' hand-over", () => latest("ready").every((e) => e !== undefined), 60_000);
    const t0 = performance.timeOrigin + performance.now() + 200;
    const cpu0 = server.watch.cpu();
    const busy0 = machineBusySeconds();
    const steal0 = stealSeconds(p.serverCpu);
    const allSteal0 = stealSeconds();
    const phase0 = Date.now();
    cmd({ cmd: "go", t0 });
    const progress = () => latest("progress");
    await until("sending", () => progress().every((e) => e?.doneSending), p.seconds * 3000 + 60_000);
    const sendSeconds = (Date.now() - phase0) / 1000;
    // Then until every room message reached every occupant, at most the deadline.
    const doneAt = Date.now();
    for (;;) {
      const pr = progress();
      const sent = pr.reduce((n, e) => n + (e?.sent ?? 0), 0);
      const recv = pr.reduce((n, e) => n + (e?.received ?? 0), 0);
      if (recv >= sent * p.occupants || Date.now() - doneAt > p.deadlineMs + 1000) break;
      await sleep(100);
    }
    const phaseSeconds = (Date.now() - phase0) / 1000;
    const cpu1 = server.watch.cpu();
    const busy = machineBusySeconds() - busy0;
    const steal = stealSeconds(p.serverCpu) - steal0;
    const allSteal = stealSeconds() - allSteal0;

    cmd({ cmd: "stop" });
    await until("the generators' results", () => latest("result").every((e) => e !== undefined), 60_000);
    const res = latest("result") as Extract<GenEvent, { ev: "result" }>[];
    const h = new Histogram();
    for (const r of res) h.merge(r.hist);
    const sum = (f: (r: Extract<GenEvent, { ev: "result" }>) => number) => res.reduce((n, r) => n + f(r), 0);
    const sent = sum((r) => r.sent);
    const received = sum((r) => r.received);
    const expected = sent * p.occupants;
    const serverCpu = cpu1.total - cpu0.total;
    const genCpu = sum((r) => r.cpuSeconds);
    return {
      occupants: p.occupants,
      workers: p.workers,
      senders: p.senders,
      rate: p.rate,
      load: p.rate * p.occupants,
      generator: p.pump === null ? "node" : p.spin ? "c-spin" : "c",
      serverCpu: p.serverCpu,
      version: target.version,
      loggedIn,
      loginSeconds,
      joinSeconds,
      joinCpuSeconds,
      sent,
      expected,
      received,
      duplicates: sum((r) => r.duplicates),
      inDeadline: sum((r) => r.inDeadline),
      deliveryRate: expected > 0 ? sum((r) => r.inDeadline) / expected : 0,
      deliveriesPerSecond: received / Math.max(sendSeconds, p.seconds),
      avgMs: h.avgMs,
      p50Ms: h.quantile(0.5),
      p99Ms: h.quantile(0.99),
      maxMs: h.maxMs,
      errors: sum((r) => r.errors),
      serverCpuSeconds: serverCpu,
      serverSysShare: serverCpu > 0 ? (cpu1.sys - cpu0.sys) / serverCpu : NaN,
      serverUsPerDelivery: received > 0 ? (serverCpu / received) * 1e6 : NaN,
      serverMainUsPerDelivery: received > 0 ? ((cpu1.main - cpu0.main) / received) * 1e6 : NaN,
      serverPeakRssMiB: server.watch.peakRssMiB,
      generatorCpuCores: genCpu / phaseSeconds,
      generatorBusyCores: sum((r) => r.busySeconds) / phaseSeconds,
      otherCpuCores: Math.max(0, busy - serverCpu - genCpu - allSteal) / phaseSeconds,
      serverCoreStealShare: steal / phaseSeconds / p.serverCpu.split(",").length,
      phaseSeconds,
      firstError,
      settings: target.settings,
      pumpStatus: res.map((r) => r.pumpStatus),
    };
  } finally {
    await Promise.all(gens.map((g) => stopChild(g, 2000)));
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
