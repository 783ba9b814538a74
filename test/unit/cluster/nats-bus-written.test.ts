import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { NatsBus, workerIdOf } from "../../../src/cluster/nats-bus.js";
import { HAVE_NATS, startNatsCluster, type NatsCluster } from "../../nats.js";

// A batch the bus has published is on the wire when the publish returns (NatsBus.flush → nats.js's socket), not
// in the microtask nats.js queues for it. A worker stopped (SIGSTOP) after the publish and before that microtask
// kept the batch, unmarked (it had been judged fresh), and wrote it on SIGCONT: its messages came 5 s late, next
// to the second copies their senders' clients had sent from where they resumed — by keepers' counts that rode in
// the same unwritten batch (the three-host stop-worker duplicate with cluster.coalesceMs 1, session 21). Here the
// event loop is held right after the publish, as a stop would hold it, and nats-server is asked meanwhile (its
// monitoring port, from another process) whether the message reached it.

/** nats-server's count of messages it received from clients, read synchronously (this event loop stays held). */
function inMsgs(monitorPort: number): number {
  const r = spawnSync("curl", ["-s", "--max-time", "2", `http://127.0.0.1:${monitorPort}/varz`], { encoding: "utf8" });
  return Number((JSON.parse(r.stdout) as { in_msgs: number }).in_msgs);
}

const HAVE_CURL = spawnSync("sh", ["-c", "command -v curl"]).status === 0;

describe("NatsBus: a published batch is written before the publish returns", { skip: !HAVE_NATS ? "nats-server is not installed (apt-get install nats-server)" : !HAVE_CURL ? "curl is not installed" : false }, () => {
  let nats: NatsCluster;
  const buses: NatsBus[] = [];

  before(async () => {
    nats = await startNatsCluster(1);
  }, { timeout: 20_000 });
  after(async () => {
    for (const b of buses) await b.close();
    await nats.stop();
  }, { timeout: 15_000 });

  for (const coalesceMs of [0, 1]) {
    test(`a message to a worker of another host, published (coalesceMs ${coalesceMs}), has reached nats-server while the event loop is still held`, { timeout: 15_000 }, async () => {
      const o = (i: number) => ({ servers: nats.urls, subject: `written${coalesceMs}`, heartbeatMs: 100, vnodes: 64, workerId: workerIdOf(`10.0.0.${i + 1}`, 0), hostAddress: `10.0.0.${i + 1}`, coalesceMs });
      const a = await NatsBus.connect(o(0), {});
      const b = await NatsBus.connect(o(1), {});
      buses.push(a, b);
      a.attach({ receive: () => {} });
      const got: string[] = [];
      b.attach({ receive: (m) => void (m.op === "unbind" && got.push(m.address)) });
      await b.ready(2);
      await a.ready(2);
      // Nothing of a's own in flight (its hello and first beats are out).
      await new Promise((r) => setTimeout(r, 50));
      const mon = nats.nodes[0].monitorPort;
      // Held from here to the last check: no timer, no I/O, no microtask runs in between.
      const before = inMsgs(mon);
      a.send(b.workerId, { op: "unbind", address: "alice@x/phone", serial: 1 });
      a.flushNow();
      const start = Date.now();
      let after = inMsgs(mon);
      // nats-server reads its socket on its own: give it a moment, still without letting this loop run.
      while (after === before && Date.now() - start < 1000) after = inMsgs(mon);
      // A heartbeat that fell due meanwhile goes with the batch (nats-bus.ts, flush): one or two messages.
      assert.ok(after === before + 1 || after === before + 2, `the batch reached nats-server before the publishing worker's loop ran again (${after - before} messages)`);
      // And it is read as ever.
      for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(got, ["alice@x/phone"]);
    });
  }
});
