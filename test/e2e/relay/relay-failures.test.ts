import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, waitUntil, type TestServer } from "../../helpers.js";
import { RelayError, type IncomingRequest } from "../../../src/relay/client.js";
import { loginAs } from "./relay-helpers.js";

const USERS = { alice: "alice-pw", bob: "bob-pw" };

describe("relay requests that get no answer", () => {
  let ts: TestServer;
  before(async () => {
    ts = await startServer({ timeouts: { sweepIntervalMs: 10, relay: { defaultMs: 400, minMs: 100, maxMs: 800 } } }, USERS);
  }, { timeout: 15_000 });
  after(() => ts.stop());

  test("no online recipient: unavailable at once, not after the timeout", { timeout: 15_000 }, async () => {
    const alice = await loginAs(ts, "tcp", "alice", "alice-pw", "u1");
    const started = Date.now();
    await assert.rejects(alice.request("bob@localhost", "x", 800), (e: RelayError) => {
      assert.deepEqual(e.header, { t: "err", re: "1", code: "unavailable", from: "bob@localhost" });
      return true;
    });
    assert.ok(Date.now() - started < 300, "well before the 800 ms ttl");
    await assert.rejects(alice.request("bob@localhost/nowhere", "x"), (e: RelayError) => e.code === "unavailable");
    await alice.close();
  });

  test("no answer within the ttl: timeout with the requester's id; a late answer is dropped", { timeout: 15_000 }, async () => {
    const alice = await loginAs(ts, "tcp", "alice", "alice-pw", "t1");
    const bob = await loginAs(ts, "websocket", "bob", "bob-pw", "t1");
    const held: IncomingRequest[] = [];
    bob.on("request", (r: IncomingRequest) => held.push(r));
    const frames: Record<string, unknown>[] = [];
    alice.on("frame", (h: Record<string, unknown>) => frames.push(h));
    const lateBefore = ts.server.proxy.stats.late;
    const started = Date.now();
    await assert.rejects(alice.request("bob@localhost/t1", "x", 200), (e: RelayError) => {
      assert.deepEqual(e.header, { t: "err", re: "1", code: "timeout", from: "bob@localhost/t1" });
      return true;
    });
    const waited = Date.now() - started;
    assert.ok(waited >= 190, `timed out after ${waited} ms, not before the ttl`);
    assert.equal(held.length, 1);
    held[0].respond("too late");
    await bob.ping();
    await alice.ping();
    assert.equal(ts.server.proxy.stats.late, lateBefore + 1);
    assert.deepEqual(frames.filter((h) => h.t === "res"), [], "the late answer never reaches alice");
    assert.equal(ts.server.proxy.pending.size, 0);
    await Promise.all([alice.close(), bob.close()]);
  });

  test("ttl is clamped to [minMs, maxMs]; absent means defaultMs", { timeout: 15_000 }, async () => {
    const alice = await loginAs(ts, "tcp", "alice", "alice-pw", "c1");
    const bob = await loginAs(ts, "tcp", "bob", "bob-pw", "c1");
    bob.on("request", () => {});
    const timeOf = async (ttl: number | undefined) => {
      const t0 = Date.now();
      await assert.rejects(alice.request("bob@localhost/c1", "x", ttl), (e: RelayError) => e.code === "timeout");
      return Date.now() - t0;
    };
    const [short, long, dflt] = await Promise.all([timeOf(1), timeOf(60_000), timeOf(undefined)]);
    assert.ok(short >= 95 && short < 400, `ttl 1 → min 100 ms, took ${short}`);
    assert.ok(long >= 790 && long < 1500, `ttl 60 s → max 800 ms, took ${long}`);
    assert.ok(dflt >= 390 && dflt < 800, `no ttl → default 400 ms, took ${dflt}`);
    await Promise.all([alice.close(), bob.close()]);
  });

  test("a recipient that disconnects fails its pending requests with unavailable at once", { timeout: 15_000 }, async () => {
    const alice = await loginAs(ts, "tcp", "alice", "alice-pw", "d1");
    const bob = await loginAs(ts, "tls", "bob", "bob-pw", "d1");
    let got = 0;
    bob.on("request", () => {
      if (++got === 3) bob.destroy();
    });
    const started = Date.now();
    const results = await Promise.allSettled([1, 2, 3].map(() => alice.request("bob@localhost/d1", "x", 800)));
    assert.ok(Date.now() - started < 600, "failed before the ttl");
    for (const r of results) {
      assert.equal(r.status, "rejected");
      assert.equal(((r as PromiseRejectedResult).reason as RelayError).code, "unavailable");
    }
    assert.equal(ts.server.proxy.pending.size, 0);
    await alice.close();
  });

  test("a requester that disconnects leaves nothing pending", { timeout: 15_000 }, async () => {
    const alice = await loginAs(ts, "tcp", "alice", "alice-pw", "r1");
    const bob = await loginAs(ts, "tcp", "bob", "bob-pw", "r1");
    const held: IncomingRequest[] = [];
    bob.on("request", (r: IncomingRequest) => held.push(r));
    for (let i = 0; i < 5; i++) alice.request("bob@localhost/r1", "x").catch(() => {});
    await waitUntil(() => held.length === 5, 3000, "bob holding alice's 5 requests");
    assert.equal(ts.server.proxy.pending.size, 5);
    alice.destroy();
    await waitUntil(() => ts.server.proxy.pending.size === 0, 3000, "the departed requester's entries gone from the PendingList");
    for (const r of held) r.respond("nobody listens");
    await bob.ping();
    await bob.close();
  });
});
