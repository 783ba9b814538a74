import { spawnSync, type ChildProcess } from "node:child_process";
import type { BenchAccount } from "../lib/accounts.js";
import { ensureCommand, freePort, ProcWatch, sleep, spawnPinned, stopChild, versionOf, waitPort } from "../lib/proc.js";
import { Scrape } from "../lib/scrape.js";
import { startSwitchboard, type RunningServer } from "../lib/switchboard.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../test/postgres.js";
import { PgStore } from "../../src/store/postgres-store.js";
import { createLogger } from "../../src/log/logger.js";
import { defaults } from "../../src/config/config.js";
import type { Target } from "./targets.js";

/**
 * `bench:xmpp --hosts H`: seed 000's experiment against a cluster of H
 * Switchboard hosts on this machine, as the paper ran it on two (section 5.2):
 * H `switchboard start` processes, each its own `cluster.hostAddress` and
 * listener on 127.0.0.(h+1), one nats-server for their bus, one PostgreSQL for
 * their accounts (test/postgres.ts starts it: initdb in a temp dir). The
 * generator sends user i to host i % H (gen.ts), so a message between two
 * random users has its sender and recipient on different hosts (H-1)/H of the
 * time, as in the paper.
 *
 * Why PostgreSQL and not one SQLite file: SQLite is one file for one host
 * (docs/architecture.md, "Store"); several hosts on one file would work here
 * only by the accident of sharing a machine, and offline writes (on any loss)
 * would contend for its lock from H processes.
 */

/** Where the generator connects user i: endpoints[i % endpoints.length]. */
export interface Endpoint {
  host: string;
  port: number;
}

export interface HostsTarget extends Target {
  endpoints: Endpoint[];
}

/** Why --hosts cannot run here (no nats-server, no PostgreSQL), or null. */
export function hostsUnavailable(): string | null {
  if (spawnSync("sh", ["-c", "command -v nats-server"]).status !== 0) return "nats-server is not installed";
  return HAVE_POSTGRES;
}

/**
 * The server's CPU is every host's and the nats-server's (their trees), and
 * PostgreSQL's too: all of it is what a message costs the cluster. Its memory
 * is the hosts' and the nats-server's only: each PostgreSQL backend's VmHWM
 * counts the shared buffers again, so a sum over them would mean little (and
 * the accounts are all it holds here).
 */
class ClusterWatch extends ProcWatch {
  constructor(
    roots: number[],
    private readonly db: ProcWatch,
  ) {
    super(roots);
  }

  override cpu(): { total: number; sys: number; main: number; perRoot: number[] } {
    const a = super.cpu();
    const b = this.db.cpu();
    // No nats-server figure apart here: these roots are several hosts, not [host, nats-server].
    return { total: a.total + b.total, sys: a.sys + b.sys, main: a.main + b.main, perRoot: [] };
  }

  override stop(): void {
    super.stop();
    this.db.stop();
  }
}

/** Until every host sees hosts × workers workers on its ring (its /metrics), or the deadline. */
async function untilJoined(adminPorts: number[], want: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const seen = await Promise.all(adminPorts.map((p) => Scrape.of(p).then((s) => s.get("switchboard_cluster_workers")).catch(() => NaN)));
    // A host of several workers sums its workers' gauges: each sees `want`.
    if (seen.every((n) => n >= want)) return;
    if (Date.now() > until) throw new Error(`the hosts did not all see ${want} workers within ${timeoutMs} ms (they see ${seen.join(", ")})`);
    await sleep(200);
  }
}

export async function startHosts(cpu: string, accounts: BenchAccount[], opts: { hosts: number; workers: number; nodeArgs: string[]; writerThread: boolean | "always"; custody: boolean }): Promise<HostsTarget> {
  const why = hostsUnavailable();
  if (why !== null) throw new Error(`--hosts ${opts.hosts}: ${why}`);
  ensureCommand("nats-server", "nats-server");
  const hosts: RunningServer[] = [];
  let pgs: PostgresServer | null = null;
  let nats: ChildProcess | null = null;
  const stopAll = async () => {
    for (const h of hosts) await h.stop();
    if (nats !== null) await stopChild(nats);
    await pgs?.stop();
  };
  try {
    pgs = await startPostgres();
    const postgres = await pgs.createDatabase("bench");
    // The accounts, with the same SCRAM keys as every target's, written once for all hosts.
    const store = await PgStore.open(postgres, createLogger({ ...defaults().log, level: "warn" }));
    await store.putUsers(accounts.map((a) => [a.user, a.creds]));
    await store.close();

    const natsPort = await freePort();
    nats = spawnPinned(cpu, "nats-server", ["-a", "127.0.0.1", "-p", String(natsPort)], { stdio: ["ignore", "ignore", "inherit"] });
    await waitPort(natsPort);

    const endpoints: Endpoint[] = [];
    const io = opts.writerThread === true ? {} : { io: { writerThread: opts.writerThread } };
    for (let h = 0; h < opts.hosts; h++) {
      const address = `127.0.0.${h + 1}`;
      const port = await freePort();
      endpoints.push({ host: address, port });
      const config = {
        listeners: [{ protocol: "xmpp", transport: "tcp", host: address, port }],
        storage: { type: "postgres", postgres },
        cluster: { hostAddress: address, bus: "nats", workers: opts.workers, nats: { servers: [`nats://127.0.0.1:${natsPort}`] }, ...(opts.custody ? {} : { custody: { maxHeld: 0 } }) },
        ...io,
      };
      // No accounts for its SQLite file (unused): they are in PostgreSQL. Its listener is not on 127.0.0.1, so it is waited on here.
      const host = await startSwitchboard({ cpu, accounts: [], waitOn: [], nodeArgs: opts.nodeArgs, config });
      hosts.push(host);
      await waitPort(port, address);
    }
    await untilJoined(hosts.map((h) => h.adminPort!), opts.hosts * opts.workers, 30_000);
    for (const h of hosts) h.watch.stop();
    const dbWatch = new ProcWatch(pgs.pid);
    const watch = new ClusterWatch([...hosts.map((h) => h.child.pid!), nats.pid!], dbWatch);
    const server: RunningServer = {
      name: "switchboard",
      child: hosts[0].child,
      watch,
      dir: hosts[0].dir,
      // /metrics of host 0 (the --sm sampler reads one host's gauges; --hosts does not claim --sm's figures).
      adminPort: hosts[0].adminPort,
      stop: async () => {
        // How many bus messages the hosts exchanged: with H hosts about (H-1)/H of the chat messages cross (one or more each).
        const bus = await Promise.all(hosts.map((h) => Scrape.of(h.adminPort!).then((s) => s.get("switchboard_cluster_bus_messages_total", { direction: "sent" })).catch(() => NaN)));
        console.error(`bench: --hosts ${opts.hosts}: bus messages sent per host ${bus.join(", ")}; PostgreSQL used ${dbWatch.cpu().total.toFixed(1)} CPU-s over the whole run`);
        watch.stop();
        await stopAll();
      },
    };
    const settings = [
      `${opts.hosts} hosts on this machine, each \`switchboard start\` with its own \`cluster.hostAddress\` and \`xmpp\` listener on 127.0.0.(h+1), \`cluster.workers: ${opts.workers}\`, \`cluster.bus: nats\` through one nats-server (${versionOf("nats-server", ["--version"])}, default settings) on the same CPUs; user i connects to host i % ${opts.hosts}`,
      "one PostgreSQL (initdb in a temp dir by test/postgres.ts: fsync off, trust on loopback) for every host, accounts written into it with the same SCRAM keys; the hosts' and the nats-server's CPU and memory count as the server's, PostgreSQL's CPU too (not its memory: its backends share their buffers)",
      ...(opts.custody ? [] : ["custody off (`cluster.custody.maxHeld: 0`)"]),
      "`log.level: warn`; every other setting is the default",
    ];
    const version = `Switchboard ${process.env.npm_package_version ?? "0.1.0"} (Node.js ${process.version}), ${opts.hosts} hosts × ${opts.workers} worker${opts.workers === 1 ? "" : "s"}`;
    return { server, port: endpoints[0].port, endpoints, version, settings };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
