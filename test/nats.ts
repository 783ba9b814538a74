import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { freePort, waitPort } from "../bench/lib/proc.js";
import { workerIdOf, type NatsBusOptions } from "../src/cluster/nats-bus.js";

/** nats-server is a system package (Debian `nats-server`); .ci/run installs it. */
export const HAVE_NATS = spawnSync("sh", ["-c", "command -v nats-server"]).status === 0;

/**
 * The options of worker `i` (0 or 1) of a pair on the nats-server at `url`: on two hosts (10.0.0.1 and .2,
 * talking over NATS), or with `links` both on 10.0.0.1 (talking over host links in that folder).
 */
export function pairOptions(url: string, subject: string, heartbeatMs: number, links?: string): (i: number) => NatsBusOptions {
  return (i) => {
    const host = links !== undefined ? "10.0.0.1" : `10.0.0.${i + 1}`;
    return {
      servers: [url],
      subject,
      heartbeatMs,
      vnodes: 64,
      workerId: workerIdOf(host, links !== undefined ? i : 0),
      hostAddress: host,
      ...(links !== undefined ? { links: { dir: links, index: i, maxQueuedBytes: 1 << 20 } } : {}),
    };
  };
}

export interface NatsServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** A real nats-server on an ephemeral loopback port (or on `port`: a restart of one that was stopped). */
export async function startNats(port?: number): Promise<NatsServer> {
  port ??= await freePort();
  const child: ChildProcess = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  await waitPort(port);
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

export interface NatsNode extends NatsServer {
  /** Its monitoring port (nats-server -m): /varz, /routez. */
  monitorPort: number;
  /** Client connections it holds now (/varz), or -1 when it does not answer. */
  connections(): Promise<number>;
}

export interface NatsCluster {
  nodes: NatsNode[];
  /** Every node's client URL: what each Switchboard host lists in cluster.nats.servers. */
  urls: string[];
  stop(): Promise<void>;
}

async function freePorts(n: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < n) out.add(await freePort());
  return [...out];
}

async function monitor(port: number, path: string): Promise<Record<string, unknown> | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(1000) });
    return (await r.json()) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/**
 * `n` real nats-server processes on loopback, clustered (each lists the others' cluster
 * ports as --routes); resolves once every node has a route to every other, so a message
 * published on one reaches a subscriber on another.
 */
export async function startNatsCluster(n: number, timeoutMs = 15_000): Promise<NatsCluster> {
  const ports = await freePorts(3 * n);
  const client = ports.slice(0, n);
  const route = ports.slice(n, 2 * n);
  const mon = ports.slice(2 * n);
  const nodes: NatsNode[] = [];
  for (let i = 0; i < n; i++) {
    const routes = route.filter((_, j) => j !== i).map((p) => `nats://127.0.0.1:${p}`).join(",");
    const args = ["-a", "127.0.0.1", "-p", String(client[i]), "-m", String(mon[i]), "--cluster_name", "sbtest", "--cluster", `nats://127.0.0.1:${route[i]}`, "--routes", routes];
    const child: ChildProcess = spawn("nats-server", args, { stdio: "ignore" });
    process.once("exit", () => child.exitCode === null && child.kill("SIGKILL"));
    nodes.push({
      url: `nats://127.0.0.1:${client[i]}`,
      port: client[i],
      monitorPort: mon[i],
      connections: async () => Number((await monitor(mon[i], "/varz"))?.connections ?? -1),
      stop: () =>
        new Promise((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once("exit", () => resolve());
          child.kill("SIGTERM");
        }),
    });
  }
  const deadline = Date.now() + timeoutMs;
  for (const [i, node] of nodes.entries()) {
    await waitPort(node.port, "127.0.0.1", Math.max(0, deadline - Date.now()));
    for (;;) {
      const routez = await monitor(mon[i], "/routez");
      if (Number(routez?.num_routes ?? 0) >= n - 1) break;
      if (Date.now() > deadline) {
        await Promise.all(nodes.map((x) => x.stop()));
        throw new Error(`nats node ${i} has ${String(routez?.num_routes)} of ${n - 1} routes after ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { nodes, urls: nodes.map((x) => x.url), stop: async () => void (await Promise.all(nodes.map((x) => x.stop()))) };
}
