import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { freePort } from "../../../bench/lib/proc.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { childrenOf, hostDir, startedHost, type Host } from "./host-proc.js";

/**
 * Each worker's host-link listener (src/cluster/host-links.ts) is its own socket, not one the cluster
 * primary holds for it (Node's cluster module shares a worker's listen() through the primary by default).
 * A primary-held listener outlives a SIGKILLed worker: a peer that connected in that moment was accepted
 * by the primary and handed to no one, and all it then sent the restarted worker vanished (kill-worker.test.ts
 * lost every message to the users that worker owned, in about one run of eight). Linux: /proc.
 */
const IS_LINUX = process.platform === "linux";

/** Inodes of the listening Unix sockets whose path is in a host's link directory. */
function linkListeners(): Map<number, string> {
  const out = new Map<number, string>();
  for (const line of readFileSync("/proc/net/unix", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    // Num RefCount Protocol Flags Type St Inode Path; St 01: listening.
    if (f.length >= 8 && f[5] === "01" && /switchboard-links-[^/]+\/w\d+\.sock$/.test(f[7])) out.set(Number(f[6]), f[7]);
  }
  return out;
}

/** The socket inodes among `pid`'s open descriptors. */
function socketsOf(pid: number): Set<number> {
  const out = new Set<number>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m !== null) out.add(Number(m[1]));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

describe("host links: each worker listens itself", { timeout: 60_000, skip: !HAVE_NATS ? "nats-server is not installed (apt-get install nats-server)" : !IS_LINUX ? "reads /proc" : false }, () => {
  let nats: NatsServer;
  let home: ReturnType<typeof hostDir>;
  let host: Host;

  before(async () => {
    nats = await startNats();
    const port = await freePort();
    home = hostDir({
      log: { level: "info", format: "json" },
      listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port }],
      storage: { type: "sqlite", path: "db.sqlite" },
      cluster: { bus: "nats", workers: 2, nats: { servers: [nats.url], subject: "sblisten", heartbeatMs: 300 } },
      admin: { enabled: false },
    });
    host = await startedHost(home.cfg, 2);
  }, { timeout: 30_000 });

  after(async () => {
    host.kill();
    await nats.stop();
    home.remove();
  });

  test("the listening sockets of the link directory belong to the workers, none to the primary", { timeout: 10_000 }, () => {
    const primary = host.child.pid!;
    const workers = childrenOf(primary);
    assert.equal(workers.length, 2, "two worker processes");
    const mine = (pid: number) => [...socketsOf(pid)].filter((i) => listeners.has(i));
    const listeners = new Map([...linkListeners()].filter(([i]) => [primary, ...workers].some((p) => socketsOf(p).has(i))));
    assert.equal(listeners.size, 2, `one listener per worker: ${[...listeners.values()].join(", ")}`);
    assert.deepEqual(mine(primary), [], "the primary holds none of them");
    for (const w of workers) assert.equal(mine(w).length, 1, `worker ${w} holds its own`);
  });
});
