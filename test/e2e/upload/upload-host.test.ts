import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { waitUntil } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { hostDir, startHost, type Host } from "../cluster/host-proc.js";
import { online, type Online } from "../xmpp/util.js";
import { putFile, requestSlot } from "./upload-util.js";

// XEP-0363 on a real host of two worker processes (`switchboard start`, node:cluster, nats-server): the HTTP
// listener is the primary's; each worker signs slots for the sessions it holds, and the primary's listener,
// which shares no memory with them, accepts those slots and serves the files.

/** switchboard_connections per worker, from the primary's /metrics. */
async function perWorker(admin: number): Promise<number[]> {
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("switchboard_connections{")) continue;
    const w = /worker="([^"]+)"/.exec(line)?.[1];
    if (w !== undefined) out.set(w, (out.get(w) ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1)));
  }
  return [...out.values()].sort();
}

describe("upload on a host of two workers", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  let host: Host;
  let dir: string;
  let remove: () => void;
  let port: number, admin: number, http: number;
  const clients: Online[] = [];

  before(async () => {
    nats = await startNats();
    [port, admin, http] = [await freePort(), await freePort(), await freePort()];
    const d = hostDir({
      log: { level: "info", format: "json" },
      listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port }],
      storage: { type: "sqlite", path: "db.sqlite" },
      cluster: { bus: "nats", workers: 2, nats: { servers: [nats.url], subject: "sbupload", heartbeatMs: 500 } },
      admin: { port: admin },
      upload: { enabled: true, http: { port: http }, maxFileBytes: 5_000_000, quotaBytes: 6_000_000 },
    }, 2);
    dir = d.dir;
    remove = d.remove;
    host = startHost(d.cfg);
    await waitUntil(() => host.log.logged("all workers started").length === 1, 30_000, () => `the host to start; stderr:\n${host.log.text}`, 20);
  }, { timeout: 40_000 });
  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    host.kill();
    remove();
    await nats.stop();
  }, { timeout: 15_000 });

  test("a slot given by either worker is accepted by the primary's listener; the files are served byte for byte", { timeout: 60_000 }, async () => {
    const listening = host.log.logged("upload listening");
    assert.equal(listening.length, 1, "one listener on the host");
    assert.equal(listening[0].worker, "primary");
    // Two connections: the primary hands each to the worker with the fewest, so one session on each worker.
    for (const u of ["h0", "h1"]) clients.push(await online(port, u, "pw", { resource: "r" }));
    await waitUntil(async () => (await perWorker(admin)).join() === "1,1", 5000, "one connection on each worker", 50);

    const bodies = [randomBytes(3_000_000), randomBytes(2_000_000)];
    const slots = [];
    for (const [i, c] of clients.entries()) {
      const s = await requestSlot(c, `from-${i}.bin`, bodies[i].length);
      assert.ok(s.put.startsWith(`http://127.0.0.1:${http}/`), s.put);
      slots.push(s);
    }
    for (const [i, s] of slots.entries()) assert.equal((await putFile(s, bodies[i])).status, 201, `the slot of worker ${i}`);
    for (const [i, s] of slots.entries()) assert.deepEqual(Buffer.from(await (await fetch(s.get)).arrayBuffer()), bodies[i]);
    // Both workers and the primary read one key, made once into the data dir.
    assert.ok(readdirSync(join(dir, "uploads")).includes("upload.key"));
    assert.equal((await putFile(slots[0], bodies[0])).status, 409, "a second PUT, whichever worker gave the slot");
    // Each worker reads its user's usage from the host's disk: h0 holds 3 MB of 6 and h1 2 MB; more than fits is refused.
    await assert.rejects(requestSlot(clients[0], "more.bin", 3_500_000), { condition: "resource-constraint" });
    await assert.rejects(requestSlot(clients[1], "more.bin", 4_500_000), { condition: "resource-constraint" });
    await requestSlot(clients[1], "fits.bin", 4_000_000);
  });
});
