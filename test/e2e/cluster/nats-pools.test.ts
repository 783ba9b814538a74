import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validate, type Config } from "../../../src/config/config.js";
import { Server } from "../../../src/server/server.js";
import { silentLogger } from "../../../src/log/logger.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { Router } from "../../../src/router/router.js";
import { RelayClient, RelayError } from "../../../src/relay/client.js";
import { waitUntil } from "../../helpers.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { ask, gateway } from "../relay/pool-helpers.js";

const HB = 200;
const USERS = Array.from({ length: 16 }, (_, i) => `p${i}`);

/**
 * Pools of relay gateways (docs/relay-protocol.md, "Pools") with the owner of
 * the account on one worker and its gateways' sessions on the other, joined by
 * a real nats-server: the choice is made where the counts are, and each
 * request's end reaches them as a settle notice over the bus.
 */
describe("relay pools across workers over a NATS bus", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  let dir: string;
  let config: Config;
  const workers = new Map<string, Server>();
  const open: RelayClient[] = [];

  const relay = async (w: string, user: string, resource: string): Promise<RelayClient> => {
    const c = await RelayClient.connect({ port: workers.get(w)!.port("relay", "tcp") });
    await c.login({ user, password: `${user}-pw`, resource });
    open.push(c);
    return c;
  };
  const ownedBy = (owner: string): string[] => {
    const router = new Router(workers.get("a")!.bus.membership());
    return USERS.filter((u) => router.ownerOf(`${u}@localhost`) === owner);
  };
  const ownerOf = (w: string) => workers.get(w)!.proxy.owner;
  /** The pool of `user` at its owner `w` has `n` members: their binds crossed the bus. */
  const pooled = (w: string, user: string, n: number): Promise<void> =>
    waitUntil(
      () => ownerOf(w).channels.get(`${user}@localhost`)?.pool?.members.length === n,
      5000,
      () => `${n} pooled sessions of ${user} at ${w}; bound: ${[...(ownerOf(w).channels.get(`${user}@localhost`)?.resources.values() ?? [])].map((r) => `${r.resource}@${r.workerId}`)}`,
    );

  before(async () => {
    nats = await startNats();
    dir = mkdtempSync(join(tmpdir(), "switchboard-pools-"));
    config = validate({
      storage: { type: "sqlite", path: join(dir, "db.sqlite") },
      listeners: [{ protocol: "relay", transport: "tcp", host: "127.0.0.1", port: 0 }],
      cluster: { bus: "nats", vnodes: 256, nats: { servers: [nats.url], subject: "sbpools", heartbeatMs: HB } },
    });
    for (const id of ["a", "b"]) workers.set(id, await Server.start(config, { log: silentLogger(), workerId: id, expectWorkers: 2 }));
    for (const u of USERS) workers.get("a")!.store.putUser(u, await deriveCredentials(`${u}-pw`, config.auth.scramIterations));
    await waitUntil(() => [...workers.values()].every((s) => Object.values(s.bus.membership().hosts).flat().length === 2), 5000, "both workers to see both", 20);
    assert.ok(ownedBy("a").length >= 3 && ownedBy("b").length >= 3, "each worker owns a few of the users");
  }, { timeout: 30_000 });
  after(async () => {
    for (const c of open) c.destroy();
    for (const s of workers.values()) await s.stop();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("gateways on b, owner on a: the slow one gets fewer, and a's counts come back to zero", { timeout: 30_000 }, async (t) => {
    const [user] = ownedBy("a");
    const [askerUser] = ownedBy("b");
    const slow = gateway(await relay("b", user, "slow"), 150);
    const quick = [gateway(await relay("b", user, "q1"), 0), gateway(await relay("b", user, "q2"), 0)];
    await pooled("a", user, 3);
    assert.equal(ownerOf("b").channels.has(`${user}@localhost`), false, "b only holds the sessions");
    // The asker on b too: the answers stay on b, only the settle notices go to a.
    const asker = await relay("b", askerUser, "asker");
    await ask(asker, `${user}@localhost`, 150, 6);
    const counts = [slow, ...quick].map((g) => g.served);
    t.diagnostic(`served: slow ${counts[0]}, quick ${counts[1]} and ${counts[2]}`);
    assert.equal(counts[0] + counts[1] + counts[2], 150);
    assert.ok(counts[0] * 4 <= Math.min(counts[1], counts[2]), `slow ${counts[0]}, quick ${counts[1]} and ${counts[2]}`);
    await waitUntil(() => ownerOf("a").load.size === 0, 3000, () => `a's counts to settle (${ownerOf("a").load.size} left)`);
  });

  test("equal gateways on both workers, owner on b: an even share, in turn", { timeout: 30_000 }, async (t) => {
    // Each test its own users: the sessions of the others are still there.
    const user = ownedBy("b")[1];
    const askerUser = ownedBy("a")[1];
    const gws = [gateway(await relay("a", user, "e1"), 0), gateway(await relay("b", user, "e2"), 0), gateway(await relay("b", user, "e3"), 0)];
    await pooled("b", user, 3);
    const asker = await relay("a", askerUser, "asker");
    await ask(asker, `${user}@localhost`, 30, 1);
    assert.deepEqual(gws.map((g) => g.served), [10, 10, 10]);
    await ask(asker, `${user}@localhost`, 60, 3);
    const counts = gws.map((g) => g.served);
    t.diagnostic(`served, 30 one by one then 60 three at a time: ${counts.join(" ")}`);
    assert.equal(counts[0] + counts[1] + counts[2], 90);
    // Three at a time, the counts cross the bus while requests keep coming: close to even, not exact.
    assert.ok(Math.min(...counts) >= 25, `${counts}`);
    await waitUntil(() => ownerOf("b").load.size === 0, 3000, () => `b's counts to settle (${ownerOf("b").load.size} left)`);
  });

  test("a gateway on b leaves with a request in flight: it fails at once, and a forgets its count", { timeout: 30_000 }, async () => {
    const user = ownedBy("a")[2];
    const askerUser = ownedBy("b")[2];
    const stuck = gateway(await relay("b", user, "stuck"), null);
    const quick = gateway(await relay("b", user, "q"), 0);
    await pooled("a", user, 2);
    const asker = await relay("a", askerUser, "asker");
    const held = asker.request(`${user}@localhost`, "first");
    await waitUntil(() => stuck.holding.length === 1, 5000, "the stuck gateway to get the first request");
    assert.deepEqual([...(await ask(asker, `${user}@localhost`, 5, 1)).keys()], [`${user}@localhost/q`]);
    assert.equal(ownerOf("a").load.size, 1);
    stuck.client.destroy();
    await assert.rejects(held, (e: RelayError) => e.code === "unavailable");
    await pooled("a", user, 1);
    assert.equal(ownerOf("a").load.size, 0);
    assert.equal(quick.served, 5);
  });
});
