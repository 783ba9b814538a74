import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, waitUntil, type TestServer } from "../../helpers.js";
import { RelayError, type RelayClient } from "../../../src/relay/client.js";
import type { Header } from "../../../src/relay/codec.js";
import { loginAs } from "./relay-helpers.js";
import { ask, gateway } from "./pool-helpers.js";

// docs/relay-protocol.md, "Pools": three gateway sessions of one account, one worker.

describe("a pool of relay gateways under one account", () => {
  let ts: TestServer;
  let asker: RelayClient;
  const open: RelayClient[] = [];
  const login = async (user: string, resource: string): Promise<RelayClient> => {
    const c = await loginAs(ts, "tcp", user, `${user}-pw`, resource);
    open.push(c);
    return c;
  };
  const owner = () => ts.server.proxy.owner;

  before(async () => {
    ts = await startServer({}, { gw: "gw-pw", gw2: "gw2-pw", gw3: "gw3-pw", asker: "asker-pw" });
    asker = await login("asker", "a");
  }, { timeout: 15_000 });
  after(async () => {
    for (const c of open) c.destroy();
    await ts.stop();
  });

  test("a gateway that answers slowly gets fewer requests; the two quick ones share the rest", { timeout: 30_000 }, async (t) => {
    const slow = gateway(await login("gw", "slow"), 150);
    const quick = [gateway(await login("gw", "q1"), 0), gateway(await login("gw", "q2"), 0)];
    const got = await ask(asker, "gw@localhost", 150, 6);
    const counts = [slow, ...quick].map((g) => g.served);
    t.diagnostic(`served: slow ${counts[0]}, quick ${counts[1]} and ${counts[2]}`);
    assert.equal(counts[0] + counts[1] + counts[2], 150);
    assert.deepEqual([...got.keys()].sort(), ["gw@localhost/q1", "gw@localhost/q2", "gw@localhost/slow"]);
    // In turn alone it would get 50; by load it holds about two at a time, for 150 ms each.
    assert.ok(counts[0] * 4 <= Math.min(counts[1], counts[2]), `slow ${counts[0]}, quick ${counts[1]} and ${counts[2]}`);
    assert.equal(owner().load.size, 0, "every request answered, nothing counted");
    for (const g of [slow, ...quick]) g.client.destroy();
  });

  test("equal gateways get an even share, in turn; each sees an ordinary req", { timeout: 30_000 }, async () => {
    const gws = await Promise.all(["e1", "e2", "e3"].map(async (r) => gateway(await login("gw2", r), 0)));
    const headers: Header[] = [];
    gws[0].client.on("frame", (h: Header) => headers.push(h));
    await ask(asker, "gw2@localhost", 30, 1);
    assert.deepEqual(gws.map((g) => g.served), [10, 10, 10]);
    // Three at a time: still within one of each other.
    await ask(asker, "gw2@localhost", 31, 3);
    const counts = gws.map((g) => g.served);
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `${counts}`);
    // What a gateway sees is the contract's req, nothing more: the pool is the server's business.
    assert.ok(headers.length >= 10);
    for (const h of headers) assert.deepEqual(Object.keys(h).sort(), ["from", "id", "t"]);
    assert.equal(owner().load.size, 0);
    for (const g of gws) g.client.destroy();
  });

  test("a gateway that leaves: what it held fails at once with unavailable, the others take everything after", { timeout: 30_000 }, async () => {
    const stuck = gateway(await login("gw3", "stuck"), null);
    const quick = [gateway(await login("gw3", "q1"), 0), gateway(await login("gw3", "q2"), 0)];
    // Its one request stays in flight, so it is passed over while the others have none.
    const held = asker.request("gw3@localhost", "first");
    await waitUntil(() => stuck.holding.length === 1, 5000, "the stuck gateway to get the first request");
    assert.deepEqual((await ask(asker, "gw3@localhost", 20, 1)).get("gw3@localhost/stuck"), undefined);
    assert.deepEqual(quick.map((g) => g.served), [10, 10]);
    assert.equal(owner().load.size, 1);
    stuck.client.destroy();
    await assert.rejects(held, (e: RelayError) => e.code === "unavailable");
    await waitUntil(() => owner().load.size === 0, 5000, "its count to go with it");
    assert.deepEqual([...(await ask(asker, "gw3@localhost", 10, 2)).keys()].sort(), ["gw3@localhost/q1", "gw3@localhost/q2"]);
    assert.equal(owner().load.size, 0);
    for (const g of quick) g.client.destroy();
  });
});
