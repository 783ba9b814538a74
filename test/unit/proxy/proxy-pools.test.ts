import { defaults } from "../../../src/config/config.js";
import { test } from "node:test";
import assert from "node:assert/strict";
import { setImmediate as tick } from "node:timers/promises";
import { LocalHub, type LocalBus } from "../../../src/cluster/local-bus.js";
import type { BusMessage } from "../../../src/cluster/bus.js";
import { ProxyDaemon, type ProxyOptions } from "../../../src/proxy/proxy-daemon.js";
import { Session } from "../../../src/session/session.js";
import { Envelope, ErrorCode, Flag, Kind } from "../../../src/envelope/envelope.js";
import { Router } from "../../../src/router/router.js";
import { monotonicMs } from "../../../src/timer/clock.js";

// Pools of gateways (docs/relay-protocol.md, "Pools") through the core of five
// workers on the local bus: who gets each request, and how its end reaches the
// owner that counted it.

/** A relay-like session: pooled, answering by the ref it was shown. */
class Gateway extends Session {
  readonly protocol = "relay";
  readonly idPassThrough = false;
  override readonly pooled: boolean;
  readonly got: Envelope[] = [];
  /** Requests delivered and not yet answered by this test. */
  open: Envelope[] = [];

  constructor(
    readonly proxy: ProxyDaemon,
    address: string,
    pooled = true,
  ) {
    super();
    this.pooled = pooled;
    this.address = address;
    this.bare = address.slice(0, address.indexOf("/"));
    this.resource = address.slice(address.indexOf("/") + 1);
    this.available = true;
  }

  deliver(env: Envelope): boolean {
    this.got.push(env);
    if (env.kind === Kind.Request) this.open.push(env);
    return true;
  }

  replaced(): void {}

  request(id: string, to: string, ttl = 0): void {
    this.proxy.submit(this, Envelope.request({ from: this.address, to, protocol: "relay", id, payload: Buffer.from(id), ttl }));
  }

  /** Answers every request still open, in one turn (or fails them with `err`). */
  answerAll(fail = false): void {
    const open = this.open;
    this.open = [];
    for (const req of open) {
      const a = { from: this.address, to: "", protocol: "relay", responseFor: req.ref, payload: Buffer.from("ok") };
      this.proxy.submit(this, fail ? Envelope.error({ ...a, code: "busy" }) : Envelope.response(a));
    }
  }

  get requests(): number {
    return this.got.filter((e) => e.kind === Kind.Request).length;
  }
}

const OPTS: ProxyOptions = {
  timeouts: { relay: { defaultMs: 5000, minMs: 100, maxMs: 120000 } },
  sweepIntervalMs: 50,
  maxPendingPerSession: 1000,
  maxInboundPerSession: 1000,
  custody: defaults().cluster.custody,
};

function cluster() {
  const hub = new LocalHub(64);
  const buses = (
    [
      ["w0", "10.0.0.1"],
      ["w1", "10.0.0.1"],
      ["w2", "10.0.0.1"],
      ["w3", "10.0.0.2"],
      ["w4", "10.0.0.2"],
    ] as const
  ).map(([id, host]) => hub.join(id, host));
  const proxies = new Map(buses.map((b) => [b.workerId, new ProxyDaemon(b, OPTS)]));
  const router = new Router(hub.membership());
  /** Every bus message sent between workers, as `from→to op`. */
  const sent: { from: string; to: string; msg: BusMessage }[] = [];
  for (const b of buses) {
    const send = b.send.bind(b) as LocalBus["send"];
    b.send = (to, msg) => {
      sent.push({ from: b.workerId, to, msg });
      send(to, msg);
    };
  }
  let n = 0;
  return {
    proxies,
    sent,
    userOwnedBy(owner: string): string {
      for (;; n++) if (router.ownerOf(`user${n}@localhost`) === owner) return `user${n++}@localhost`;
    },
    connect(worker: string, address: string, pooled = true): Gateway {
      const p = proxies.get(worker)!;
      const s = new Gateway(p, address, pooled);
      p.attach(s);
      return s;
    },
  };
}

const PLACEMENTS = [
  { name: "owner on the gateways' worker: settled directly", gateways: "w1", owner: "w1" },
  { name: "owner on another worker: settled by a bus notice", gateways: "w1", owner: "w3" },
];

function setup(pl: (typeof PLACEMENTS)[number], gateways = 3) {
  const c = cluster();
  const asker = c.connect("w0", `${c.userOwnedBy("w2")}/a`, false);
  const bare = c.userOwnedBy(pl.owner);
  const gws = Array.from({ length: gateways }, (_, i) => c.connect(pl.gateways, `${bare}/g${i + 1}`));
  return { c, asker, bare, gws, owner: c.proxies.get(pl.owner)!.owner, pg: c.proxies.get(pl.gateways)! };
}

const settleNotices = (c: ReturnType<typeof cluster>) => c.sent.filter((s) => s.msg.op === "settled");

for (const pl of PLACEMENTS) {
  test(`equal gateways get an even share, and every answer is settled at the owner (${pl.name})`, { timeout: 5000 }, async () => {
    const { c, asker, bare, gws, owner } = setup(pl);
    for (let i = 0; i < 9; i++) asker.request(`q${i}`, bare);
    assert.deepEqual(gws.map((g) => g.requests), [3, 3, 3]);
    assert.ok(gws.every((g) => g.got.every((e) => e.flags & Flag.Pool)));
    assert.equal(owner.load.size, 9);
    for (const g of gws) g.answerAll();
    assert.equal(asker.got.filter((e) => e.kind === Kind.Response).length, 9, "the answers themselves are not held up");
    if (pl.owner === pl.gateways) {
      assert.equal(owner.load.size, 0);
      assert.equal(settleNotices(c).length, 0);
    } else {
      assert.equal(owner.load.size, 9, "notices leave at the end of the turn");
      await tick();
      assert.equal(owner.load.size, 0);
      const notices = settleNotices(c);
      assert.equal(notices.length, 1, "one notice for the turn's nine");
      assert.deepEqual([notices[0].from, notices[0].to, (notices[0].msg as { refs: string[] }).refs.length], [pl.gateways, pl.owner, 9]);
    }
    assert.ok(gws.every((g) => g.inbound.size === 0));
  });

  test(`a gateway that does not answer gets fewer: its requests stay in flight (${pl.name})`, { timeout: 5000 }, async () => {
    const { asker, bare, gws, owner } = setup(pl);
    const [slow, ...fast] = gws;
    for (let i = 0; i < 30; i++) {
      asker.request(`q${i}`, bare);
      for (const g of fast) g.answerAll();
      await tick();
    }
    assert.equal(slow.requests, 1, "its one request is still in flight: the others always had none");
    assert.equal(fast[0].requests + fast[1].requests, 29);
    assert.ok(Math.abs(fast[0].requests - fast[1].requests) <= 1, `${fast[0].requests} vs ${fast[1].requests}`);
    assert.equal(owner.load.size, 1);
    // It fails its request (an `err` settles as a `res` does): its turn comes again.
    slow.answerAll(true);
    await tick();
    assert.equal(owner.load.size, 0);
    assert.equal(asker.got.filter((e) => e.kind === Kind.Error && e.code === "busy").length, 1);
    asker.request("again", bare);
    asker.request("again2", bare);
    assert.equal(slow.requests, 2);
  });

  test(`a request that times out stops counting at its deadline, at the owner's own sweep (${pl.name})`, { timeout: 5000 }, async () => {
    const { c, asker, bare, gws, owner } = setup(pl, 2);
    asker.request("t1", bare, 200);
    asker.request("t2", bare, 200);
    assert.deepEqual(gws.map((g) => g.requests), [1, 1]);
    c.proxies.get("w0")!.timer.sweep(monotonicMs() + 201);
    assert.deepEqual(asker.got.map((e) => e.code), [ErrorCode.Timeout, ErrorCode.Timeout]);
    assert.equal(owner.load.size, 2, "nobody told the owner");
    c.proxies.get(pl.owner)!.timer.sweep(monotonicMs() + 300);
    assert.equal(owner.load.size, 0);
    // The gateways answer after all: late at the asker, and nothing at the owner goes below zero.
    for (const g of gws) g.answerAll();
    await tick();
    assert.equal(c.proxies.get("w0")!.stats.late, 2);
    assert.deepEqual(owner.channels.get(bare)!.pool!.members.map((m) => m.outstanding), [0, 0]);
  });

  test(`a gateway that leaves: its requests fail at once, its counts go, the rest take over (${pl.name})`, { timeout: 5000 }, async () => {
    const { asker, bare, gws, owner, pg } = setup(pl);
    for (let i = 0; i < 6; i++) asker.request(`q${i}`, bare);
    pg.detach(gws[0]);
    assert.deepEqual(asker.got.map((e) => e.code), [ErrorCode.Unavailable, ErrorCode.Unavailable]);
    assert.equal(owner.load.size, 4);
    assert.equal(owner.channels.get(bare)!.pool!.members.length, 2);
    for (let i = 0; i < 4; i++) asker.request(`r${i}`, bare);
    assert.deepEqual(gws.map((g) => g.requests), [2, 4, 4]);
    for (const g of gws.slice(1)) g.answerAll();
    await tick();
    assert.equal(owner.load.size, 0);
  });

  test(`a gateway that cannot take a request fails it at once and it is settled (${pl.name})`, { timeout: 5000 }, async () => {
    const { asker, bare, gws, owner } = setup(pl, 2);
    gws[0].deliver = () => false;
    asker.request("x", bare);
    await tick();
    assert.deepEqual(asker.got.map((e) => [e.code, e.responseFor]), [[ErrorCode.Unavailable, "x"]]);
    assert.equal(owner.load.size, 0);
  });
}

test("a lone gateway and requests to full addresses cost no settle notice and no mark", { timeout: 5000 }, async () => {
  const c = cluster();
  const asker = c.connect("w0", `${c.userOwnedBy("w2")}/a`, false);
  const bare = c.userOwnedBy("w3");
  const lone = c.connect("w1", `${bare}/g1`);
  for (let i = 0; i < 5; i++) asker.request(`q${i}`, bare);
  lone.answerAll();
  // A pool, asked at its members' full addresses.
  const pbare = c.userOwnedBy("w4");
  const [p1, p2] = [c.connect("w1", `${pbare}/p1`), c.connect("w2", `${pbare}/p2`)];
  for (let i = 0; i < 5; i++) asker.request(`f${i}`, `${pbare}/p${(i % 2) + 1}`);
  p1.answerAll();
  p2.answerAll();
  await tick();
  assert.equal(asker.got.filter((e) => e.kind === Kind.Response).length, 10);
  assert.ok([lone, p1, p2].every((g) => g.got.every((e) => e.flags === 0)));
  assert.equal(settleNotices(c).length, 0);
  assert.equal(c.proxies.get("w3")!.owner.load.size + c.proxies.get("w4")!.owner.load.size, 0);
});

test("settle notices from one worker to one owner are gathered per turn; to two owners, one each", { timeout: 5000 }, async () => {
  const c = cluster();
  const asker = c.connect("w0", `${c.userOwnedBy("w2")}/a`, false);
  const [b3, b4] = [c.userOwnedBy("w3"), c.userOwnedBy("w4")];
  const gws = [b3, b4].flatMap((bare) => [c.connect("w1", `${bare}/g1`), c.connect("w1", `${bare}/g2`)]);
  for (let i = 0; i < 8; i++) asker.request(`q${i}`, i % 2 ? b3 : b4);
  for (const g of gws) g.answerAll();
  await tick();
  const notices = settleNotices(c);
  assert.deepEqual(notices.map((n) => `${n.from}→${n.to} ${(n.msg as { refs: string[] }).refs.length}`).sort(), ["w1→w3 4", "w1→w4 4"]);
  assert.equal(c.proxies.get("w3")!.owner.load.size + c.proxies.get("w4")!.owner.load.size, 0);
});
