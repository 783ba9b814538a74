import { get } from "node:http";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import Database from "better-sqlite3";
import { FaultProxy } from "../lib/fault-proxy.js";
import { benchAccounts } from "../lib/accounts.js";
import { ensureCommand, freePort, sleep, spawnPinned, stopChild, waitPort } from "../lib/proc.js";
import { startSwitchboard, type RunningServer } from "../lib/switchboard.js";
import { SoakClient, type ClientTiming } from "./client.js";
import { Ledger, type Counts } from "./ledger.js";

/**
 * The soak (issue 13): the real server, `clients` raw-socket clients with
 * XEP-0198 (client.ts), each through its own fault proxy (bench/lib/fault-proxy.ts),
 * chat messages between random pairs at `rate`/s in total, and for
 * `durationMs` random faults at `faultsPerSec`: a cut (RST both ways), a black
 * hole (a NAT that forgot the mapping), a network switch (the client's side
 * reset, the server's left silent: the client knows at once, the server only by
 * its ping) and an outage (cut, and new connections refused for longer than the
 * resumption window). Then the faults and the load stop, and the run waits for
 * every client to be back and every message to be accounted for (ledger.ts).
 */
export interface SoakParams {
  clients: number;
  durationMs: number;
  /** Messages per second, all clients together. */
  rate: number;
  faultsPerSec: number;
  workers: number;
  /** Server: xmpp.sm.resumeTimeoutMs and the XEP-0199 ping. */
  resumeTimeoutMs: number;
  pingAfterMs: number;
  pingTimeoutMs: number;
  client: ClientTiming;
  rampMs: number;
  /** The longest wait for everything to settle after the faults stop. */
  settleMs: number;
  serverCpu: string;
  /** Progress lines on stderr every so often (0: none). */
  progressMs: number;
}

export function soakDefaults(over: Partial<SoakParams> = {}): SoakParams {
  return {
    clients: 1000,
    durationMs: 60_000,
    rate: 500,
    faultsPerSec: 10,
    workers: 1,
    resumeTimeoutMs: 10_000,
    pingAfterMs: 1000,
    pingTimeoutMs: 1000,
    // The server notices a black hole first (after 2 s), the client after 5 s: it comes back to a suspended session.
    client: { idleMs: 2000, deadMs: 3000, loginTimeoutMs: 15_000, reconnectMinMs: 100, reconnectMaxMs: 400 },
    rampMs: 3000,
    settleMs: 60_000,
    serverCpu: "0",
    progressMs: 10_000,
    ...over,
  };
}

const KINDS = ["cut", "blackhole", "switch", "outage"] as const;
type Kind = (typeof KINDS)[number];
/** Shares of each kind of fault, in KINDS order. */
const WEIGHTS = [0.3, 0.3, 0.2, 0.2];

export interface SoakResult {
  params: SoakParams;
  counts: Counts;
  faults: Record<Kind, number>;
  logins: number;
  resumed: number;
  refused: Record<string, number>;
  /** Stream errors the clients read, by condition. */
  streamErrors: Record<string, number>;
  /** All clients online and every message accounted for before settleMs ran out. */
  settled: boolean;
  clientsBack: number;
  offlineLeft: number;
  server: Record<string, number>;
  duplicateSamples: string[];
  settleSeconds: number;
  /** This process's event-loop delay during the faults (ms): a late client answers the server's ping late. */
  harnessLag: { p99: number; max: number };
  /** The server's CPU during the faults, in cores (1 = one core busy all the time). */
  serverCores: number;
}

export async function runSoak(p: SoakParams, log: (line: string) => void = () => {}): Promise<SoakResult> {
  const names = Array.from({ length: p.clients }, (_, i) => `user${i}`);
  const accounts = await benchAccounts(names, (u) => `pwd${u.slice(4)}`);
  const port = await freePort();
  const adminPort = await freePort();
  const { server, stop: stopServer } = await startServer(p, accounts, port, adminPort);
  const ledger = new Ledger();
  const proxies: FaultProxy[] = [];
  const clients: SoakClient[] = [];
  const timers: NodeJS.Timeout[] = [];
  try {
    for (let i = 0; i < p.clients; i++) proxies.push(await FaultProxy.start(port));
    accounts.forEach((a, i) => clients.push(new SoakClient(i, a.user, a.password, { salt: a.creds.salt, iterations: a.creds.iterations, salted: a.salted1 }, proxies[i].port, ledger, p.client)));
    clients.forEach((c, i) => timers.push(setTimeout(() => c.connect(), (i * p.rampMs) / p.clients)));
    const watch = setInterval(() => {
      const now = Date.now();
      for (const c of clients) c.watch(now);
    }, 250);
    timers.push(watch);
    await until(() => clients.every((c) => c.online), p.rampMs + 60_000, () => `${clients.filter((c) => c.online).length} of ${p.clients} online`);
    log(`soak: ${p.clients} clients online; ${p.durationMs / 1000} s of faults at ${p.faultsPerSec}/s under ${p.rate} msg/s`);

    // The load: `rate` per second from random online senders to random others.
    let due = 0;
    let last = Date.now();
    const load = setInterval(() => {
      const now = Date.now();
      due += ((now - last) * p.rate) / 1000;
      last = now;
      for (; due >= 1; due--) {
        for (let tries = 0; tries < 10; tries++) {
          const from = (Math.random() * p.clients) | 0;
          let to = (Math.random() * (p.clients - 1)) | 0;
          if (to >= from) to++;
          if (clients[from].send(to)) break;
        }
      }
    }, 20);
    const faults: Record<Kind, number> = { cut: 0, blackhole: 0, switch: 0, outage: 0 };
    const outages = new Set<NodeJS.Timeout>();
    const inject = setInterval(() => {
      for (let tries = 0; tries < 10; tries++) {
        const i = (Math.random() * p.clients) | 0;
        const proxy = proxies[i];
        const live = proxy.connections().filter((c) => !c.blackholed);
        if (proxy.refusingNew || live.length === 0) continue;
        const kind = pick();
        faults[kind]++;
        const conn = live[live.length - 1];
        if (kind === "cut") conn.cut();
        else if (kind === "blackhole") conn.blackhole();
        else if (kind === "switch") conn.cutClient();
        else {
          proxy.cut();
          proxy.refuse();
          const t = setTimeout(() => (outages.delete(t), proxy.heal()), p.resumeTimeoutMs + 1000 + Math.random() * 2000);
          outages.add(t);
        }
        return;
      }
    }, 1000 / p.faultsPerSec);
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    const cpu0 = server.watch.cpuSeconds();
    const faultsFrom = Date.now();
    const progress = p.progressMs > 0 ? setInterval(() => log(`soak: ${progressLine(ledger, clients, faults)}`), p.progressMs) : null;
    await sleep(p.durationMs);
    lag.disable();
    const serverCores = (server.watch.cpuSeconds() - cpu0) / ((Date.now() - faultsFrom) / 1000);

    // The network comes back (mappings lost in black holes stay lost), the load stops; then wait for everything to settle.
    clearInterval(inject);
    clearInterval(load);
    for (const t of outages) clearTimeout(t);
    for (const proxy of proxies) if (proxy.refusingNew) proxy.heal();
    log(`soak: faults and load stopped; settling (${progressLine(ledger, clients, faults)})`);
    const t0 = Date.now();
    const db = new Database(join(server.dir, "db.sqlite"), { readonly: true, fileMustExist: true });
    const offlineRows = () => (db.prepare("SELECT COUNT(*) AS n FROM offline").get() as { n: number }).n;
    let settled = true;
    try {
      await until(() => clients.every((c) => c.online) && ledger.settled() && offlineRows() === 0, p.settleMs, () => progressLine(ledger, clients, faults), 250);
      // A quiet moment for stragglers (a late second copy would still be counted).
      await sleep(2000);
    } catch (e) {
      settled = false;
      log(`soak: not settled: ${(e as Error).message}`);
    }
    const settleSeconds = (Date.now() - t0) / 1000;
    if (progress !== null) clearInterval(progress);
    const offlineLeft = offlineRows();
    const inStore = new Set<string>();
    for (const { stanza } of db.prepare("SELECT stanza FROM offline").all() as { stanza: string }[]) {
      const m = / id=['"](s\d+-\d+-\d+)['"]/.exec(stanza);
      if (m !== null) inStore.add(m[1]);
    }
    db.close();
    const sum = (f: (c: SoakClient) => Record<string, number>) => {
      const out: Record<string, number> = {};
      for (const c of clients) for (const [k, n] of Object.entries(f(c))) out[k] = (out[k] ?? 0) + n;
      return out;
    };
    return {
      params: p,
      counts: ledger.counts(inStore),
      faults,
      logins: clients.reduce((n, c) => n + c.logins, 0),
      resumed: clients.reduce((n, c) => n + c.resumed, 0),
      refused: sum((c) => c.refused),
      streamErrors: sum((c) => c.streamErrors),
      settled,
      clientsBack: clients.filter((c) => c.online).length,
      offlineLeft,
      server: await serverMetrics(adminPort),
      duplicateSamples: ledger.duplicateSamples,
      settleSeconds,
      harnessLag: { p99: lag.percentile(99) / 1e6, max: lag.max / 1e6 },
      serverCores,
    };
  } finally {
    for (const t of timers) clearTimeout(t);
    for (const c of clients) c.stop();
    await Promise.all(proxies.map((x) => x.close()));
    await stopServer();
  }
}

function pick(): Kind {
  let r = Math.random();
  for (let i = 0; i < KINDS.length; i++) if ((r -= WEIGHTS[i]) < 0) return KINDS[i];
  return KINDS[KINDS.length - 1];
}

function progressLine(ledger: Ledger, clients: SoakClient[], faults: Record<Kind, number>): string {
  const c = ledger.counts();
  return `online ${clients.filter((x) => x.online).length}/${clients.length}, sent ${c.sent}, accepted ${c.accepted}, delivered ${c.delivered}, accepted and not yet arrived ${c.lost}, duplicated ${c.duplicated}, faults ${Object.values(faults).reduce((a, b) => a + b, 0)}`;
}

async function until(pred: () => boolean, ms: number, what: () => string, everyMs = 100): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`after ${ms} ms: ${what()}`);
    await sleep(everyMs);
  }
}

/** Switchboard as a user runs it, one worker, or `workers` under node:cluster with a nats-server. */
async function startServer(p: SoakParams, accounts: Awaited<ReturnType<typeof benchAccounts>>, port: number, adminPort: number): Promise<{ server: RunningServer; stop: () => Promise<void> }> {
  const config: Record<string, unknown> = {
    listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port }],
    admin: { enabled: true, host: "127.0.0.1", port: adminPort },
    xmpp: {
      pingAfterMs: p.pingAfterMs,
      pingTimeoutMs: p.pingTimeoutMs,
      // Nothing bounced for a full queue: what is measured is loss and duplication.
      offlineQueueMax: 100_000,
      sm: { ackEveryStanzas: 10, ackEveryMs: 1000, maxUnacked: 10_000, resumeTimeoutMs: p.resumeTimeoutMs },
    },
  };
  if (p.workers <= 1) {
    const server = await startSwitchboard({ cpu: p.serverCpu, config, accounts, waitOn: [port, adminPort] });
    return { server, stop: () => server.stop() };
  }
  ensureCommand("nats-server", "nats-server");
  const natsPort = await freePort();
  const nats = spawnPinned(p.serverCpu, "nats-server", ["-a", "127.0.0.1", "-p", String(natsPort)], { stdio: ["ignore", "ignore", "inherit"] });
  await waitPort(natsPort);
  config.cluster = { bus: "nats", workers: p.workers, nats: { servers: [`nats://127.0.0.1:${natsPort}`] } };
  try {
    const server = await startSwitchboard({ cpu: p.serverCpu, config, accounts, waitOn: [port, adminPort] });
    // The primary listens as soon as one worker does: give the others their turn to join.
    await sleep(2000);
    return {
      server,
      stop: async () => {
        await server.stop();
        await stopChild(nats);
      },
    };
  } catch (e) {
    await stopChild(nats);
    throw e;
  }
}

/** The server's own counters (admin /metrics), summed over labels. */
async function serverMetrics(adminPort: number): Promise<Record<string, number>> {
  const text = await new Promise<string>((resolve, reject) => {
    get({ host: "127.0.0.1", port: adminPort, path: "/metrics", timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve(body));
    }).on("error", reject);
  });
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const m = /^(switchboard_[a-z_]+)(?:\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (m) out[m[1]] = (out[m[1]] ?? 0) + Number(m[2]);
  }
  return out;
}

/** The printed counts. */
export function formatSoak(r: SoakResult): string {
  const c = r.counts;
  const p = r.params;
  const s = r.server;
  const n = (x: number) => x.toLocaleString("en-US");
  const row = (label: string, x: number, note = "") => `  ${label.padEnd(34)}${n(x).padStart(9)}${note ? `   ${note}` : ""}`;
  const list = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${k} ${n(v)}`).join(", ") || "none";
  return [
    `soak: ${n(p.clients)} clients, ${p.durationMs / 1000} s of faults (${p.faultsPerSec}/s), ${n(p.rate)} msg/s, ${p.workers} worker${p.workers > 1 ? "s" : ""}, resumption window ${p.resumeTimeoutMs / 1000} s`,
    `faults: ${n(r.faults.cut)} cuts, ${n(r.faults.blackhole)} black holes, ${n(r.faults.switch)} network switches, ${n(r.faults.outage)} outages longer than the window`,
    `sessions: ${n(r.logins)} logins (${n(p.clients)} at the start), ${n(r.resumed)} resumed, resumptions refused: ${list(r.refused)}; stream errors read: ${list(r.streamErrors)}`,
    `server: ${r.serverCores.toFixed(2)} cores busy during the faults, ${n(s.switchboard_dead_peers_total ?? 0)} dead peers noticed by ping, ${n(s.switchboard_slow_consumers_total ?? 0)} slow consumers, ${n(s.switchboard_offline_messages_stored_total ?? 0)} messages stored offline, ${n(s.switchboard_messages_bounced_total ?? 0)} bounced`,
    "messages:",
    row("sent", c.sent),
    row("accepted by the server", c.accepted, "its <a/> or <resumed/> reached the sender"),
    row("unconfirmed", c.unconfirmed, `the sender's session was not resumed before the server acknowledged them; not resent (${n(c.unconfirmedArrived)} arrived anyway)`),
    row("delivered", c.delivered, "received, and acknowledged, by the recipient's client"),
    row("  of which from offline storage", c.deliveredFromOffline, "first copy with <delay/>"),
    row("stored offline (server)", s.switchboard_offline_messages_stored_total ?? 0),
    row("bounced", c.bounced, "an error back to the sender"),
    row("lost", c.lost, "accepted, never delivered nor bounced, not in the offline store: must be 0"),
    row("stuck in the offline store", c.stuckOffline, "stored while its recipient was online again: it gets it only at its next login; must be 0"),
    row("duplicated", c.duplicated, "a second copy XEP-0198 does not allow: must be 0"),
    row("redelivered", c.redelivered, "an offline copy of a message received on a session that was not resumed, its <a/> unconfirmed"),
    row("out of order", c.outOfOrder, "first copies behind a later one of the same sender"),
    row("still unacknowledged at the end", c.pending),
    row("left in the offline store", r.offlineLeft, "rows at the end, for anyone"),
    `settled: ${r.settled ? "yes" : "NO"} in ${r.settleSeconds.toFixed(1)} s, ${n(r.clientsBack)}/${n(p.clients)} clients back online; the clients' event loop was late by up to ${r.harnessLag.max.toFixed(0)} ms (p99 ${r.harnessLag.p99.toFixed(0)} ms) during the faults`,
    ...(r.duplicateSamples.length > 0 ? [`duplicates, first few: ${r.duplicateSamples.join("; ")}`] : []),
  ].join("\n");
}
