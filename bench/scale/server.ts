/**
 * Switchboard for bench:scale, as a user runs it (`switchboard start`), one
 * worker or a host of several over a nats-server, each process under the V8
 * inspector (inspector.ts) and with its open-files limit raised to the hard
 * limit (a process here may hold 20,000 descriptors).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { SqliteStore } from "../../src/store/sqlite-store.js";
import { deriveCredentials, type Credentials } from "../../src/store/scram.js";
import { ensureCommand, freePort, processTree, spawnPinned, stopChild, waitPort } from "../lib/proc.js";
import { REPO } from "../lib/switchboard.js";
import { Inspector } from "./inspector.js";

export interface ScaleServer {
  port: number;
  adminPort: number;
  /** The worker processes' inspectors (one worker: the process itself). */
  workers: Inspector[];
  /** Every process that counts as the server: the host's tree and the nats-server. */
  pids(): number[];
  stop(): Promise<void>;
}

/** Runs `cmd args` with the soft open-files limit raised to the hard one. */
export function spawnUnlimited(cpu: string | null, cmd: string, args: string[], stdio: ("ignore" | "inherit" | "pipe" | "ipc")[]): ChildProcess {
  const sh = ["-c", 'ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"', cmd, ...args];
  return cpu === null ? spawn("sh", sh, { stdio }) : spawnPinned(cpu, "sh", sh, { stdio });
}

/** Accounts user0 … user<n-1>, password pw<i>, with `iterations` of PBKDF2 (SASL PLAIN checks cost one derivation each). */
async function writeAccounts(path: string, n: number, iterations: number): Promise<void> {
  const store = new SqliteStore(path);
  const rows: [string, Credentials][] = [];
  for (let i = 0; i < n; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, n - i) }, (_, k) => i + k);
    rows.push(...(await Promise.all(batch.map(async (j) => [`user${j}`, await deriveCredentials(`pw${j}`, iterations)] as [string, Credentials]))));
  }
  await store.putUsers(rows);
  await store.close();
}

/** A base port P with P … P + count all free (the inspector ports of a host: node:cluster gives worker k P + k). */
async function freeRange(count: number): Promise<number> {
  const free = (p: number) =>
    new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once("error", () => resolve(false));
      s.listen(p, "127.0.0.1", () => s.close(() => resolve(true)));
    });
  for (let tries = 0; tries < 50; tries++) {
    const base = 20000 + Math.floor(Math.random() * 10000);
    let ok = true;
    for (let k = 0; k <= count && ok; k++) ok = await free(base + k);
    if (ok) return base;
  }
  throw new Error("no free range of inspector ports");
}

export async function startScaleServer(o: { sessions: number; workers: number; iterations: number; xmpp: Record<string, unknown>; writerThread: boolean; cpu: string | null }): Promise<ScaleServer> {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-scale-"));
  const db = join(dir, "db.sqlite");
  await writeAccounts(db, o.sessions, o.iterations);
  const port = await freePort();
  const adminPort = await freePort();
  let nats: ChildProcess | null = null;
  let cluster: Record<string, unknown> = {};
  if (o.workers > 1) {
    ensureCommand("nats-server", "nats-server");
    const natsPort = await freePort();
    nats = spawnUnlimited(o.cpu, "nats-server", ["-a", "127.0.0.1", "-p", String(natsPort)], ["ignore", "ignore", "inherit"]);
    await waitPort(natsPort);
    cluster = { cluster: { bus: "nats", workers: o.workers, nats: { servers: [`nats://127.0.0.1:${natsPort}`] } } };
  }
  const config = {
    log: { level: "warn", format: "text" },
    storage: { type: "sqlite", path: db },
    admin: { port: adminPort },
    listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port }],
    // PLAIN on loopback: the cheapest login for the clients (SCRAM's client side would cost more than the server's).
    xmpp: { allowPlainWithoutTls: true, ...o.xmpp },
    io: { writerThread: o.writerThread },
    // A login storm on a shared 2-core machine can keep a client waiting past the default 10 s: it must not be cut for that.
    limits: { authTimeoutMs: 120_000 },
    ...cluster,
  };
  const file = join(dir, "config.json");
  writeFileSync(file, JSON.stringify(config, null, 2));
  const inspectBase = await freeRange(o.workers);
  const host = spawnUnlimited(o.cpu, process.execPath, [`--inspect=127.0.0.1:${inspectBase}`, join(REPO, "dist/src/cli/main.js"), "start", "--config", file], ["ignore", "inherit", "pipe"]);
  // The inspector's own lines on stderr ("Debugger listening…") are not worth showing.
  host.stderr!.on("data", (d: Buffer) => {
    const text = String(d)
      .split("\n")
      .filter((l) => l !== "" && !/^(Debugger (listening|attached|ending)|For help|Waiting for the debugger)/.test(l))
      .join("\n");
    if (text !== "") process.stderr.write(`${text}\n`);
  });
  const stop = async () => {
    for (const w of workers) w.close();
    await stopChild(host, 15_000);
    if (nats !== null) await stopChild(nats);
    rmSync(dir, { recursive: true, force: true });
  };
  const workers: Inspector[] = [];
  try {
    await Promise.all([port, adminPort].map((p) => waitPort(p)));
    const ports = o.workers > 1 ? Array.from({ length: o.workers }, (_, k) => inspectBase + 1 + k) : [inspectBase];
    for (const p of ports) workers.push(await Inspector.attach(p));
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    port,
    adminPort,
    workers,
    pids: () => [...processTree(host.pid!), ...(nats === null ? [] : [nats.pid!])],
    stop,
  };
}
