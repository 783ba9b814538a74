import { defaults } from "../../../src/config/config.js";
import { test } from "node:test";
import assert from "node:assert/strict";
import { LocalHub } from "../../../src/cluster/local-bus.js";
import { ProxyDaemon, type ProxyOptions } from "../../../src/proxy/proxy-daemon.js";
import { Session } from "../../../src/session/session.js";
import { Envelope, ErrorCode, Kind } from "../../../src/envelope/envelope.js";
import { Router } from "../../../src/router/router.js";
import { monotonicMs } from "../../../src/timer/clock.js";

/**
 * A protocol front end reduced to what the core sees: it records every
 * envelope delivered to it and each time it was replaced. Like the relay, its
 * client answers a request by the ref shown in its place; with `idPassThrough`
 * (like XMPP) by the requester's own id and address.
 */
class RecordingSession extends Session {
  readonly protocol = "relay";
  readonly got: Envelope[] = [];
  replacedCount = 0;

  constructor(
    readonly proxy: ProxyDaemon,
    address: string,
    available = true,
    priority = 0,
    readonly idPassThrough = false,
  ) {
    super();
    this.address = address;
    this.bare = address.slice(0, address.indexOf("/"));
    this.resource = address.slice(address.indexOf("/") + 1);
    this.available = available;
    this.priority = priority;
  }

  deliver(env: Envelope): boolean {
    this.got.push(env);
    return true;
  }

  replaced(): void {
    this.replacedCount++;
  }

  /** What a front end does with a client's frames: stamps `from` and submits. */
  request(id: string, to: string, ttl = 0): void {
    this.proxy.submit(this, Envelope.request({ from: this.address, to, protocol: "relay", id, payload: Buffer.from(`q${id}`), ttl }));
  }
  /** Answers `re` (a ref, or with idPassThrough the requester's id) addressed to `to`. */
  respond(re: string, body = "ok", to = ""): void {
    this.proxy.submit(this, Envelope.response({ from: this.address, to, protocol: "relay", responseFor: re, payload: Buffer.from(body) }));
  }
  /** Answers a request as this session's client would: by what it was shown. */
  answer(req: Envelope, body = "ok"): void {
    if (this.idPassThrough) this.respond(req.id, body, req.from);
    else this.respond(req.ref, body);
  }
  message(to: string, body: string): void {
    this.proxy.submit(this, Envelope.message({ from: this.address, to, protocol: "relay", payload: Buffer.from(body) }));
  }
  last(): Envelope {
    assert.ok(this.got.length > 0, `${this.address} got nothing`);
    return this.got[this.got.length - 1];
  }
}

const OPTS: ProxyOptions = {
  timeouts: { relay: { defaultMs: 5000, minMs: 100, maxMs: 120000 }, xmpp: { defaultMs: 30000, minMs: 1000, maxMs: 300000 } },
  sweepIntervalMs: 50,
  maxPendingPerSession: 3,
  maxInboundPerSession: 100,
  custody: defaults().cluster.custody,
};

interface Cluster {
  hub: LocalHub;
  proxies: Map<string, ProxyDaemon>;
  router: Router;
  /** A bare address whose owner is `owner`. */
  userOwnedBy(owner: string, not?: Set<string>): string;
  connect(worker: string, address: string, available?: boolean, priority?: number, idPassThrough?: boolean): RecordingSession;
}

/** Several workers on two hosts, in one process, over the local bus. */
function cluster(): Cluster {
  const hub = new LocalHub(64);
  const layout: [string, string][] = [
    ["w0", "10.0.0.1"],
    ["w1", "10.0.0.1"],
    ["w2", "10.0.0.1"],
    ["w3", "10.0.0.2"],
    ["w4", "10.0.0.2"],
  ];
  const buses = layout.map(([id, host]) => hub.join(id, host));
  const proxies = new Map(buses.map((b) => [b.workerId, new ProxyDaemon(b, OPTS)]));
  const router = new Router(hub.membership());
  const used = new Set<string>();
  return {
    hub,
    proxies,
    router,
    userOwnedBy(owner) {
      for (let i = 0; ; i++) {
        const bare = `user${i}@localhost`;
        if (!used.has(bare) && router.ownerOf(bare) === owner) {
          used.add(bare);
          return bare;
        }
      }
    },
    connect(worker, address, available = true, priority = 0, idPassThrough = false) {
      const p = proxies.get(worker)!;
      const s = new RecordingSession(p, address, available, priority, idPassThrough);
      p.attach(s);
      return s;
    },
  };
}

/**
 * Each scenario runs in two placements: the recipient's bare address owned by
 * the worker its session is on, and owned by a third worker.
 */
const PLACEMENTS = [
  { name: "owner is the recipient's own worker", requesterWorker: "w0", recipientWorker: "w1", ownerWorker: "w1" },
  { name: "owner is another worker (another host)", requesterWorker: "w0", recipientWorker: "w1", ownerWorker: "w3" },
];

function setup(pl: (typeof PLACEMENTS)[number]) {
  const c = cluster();
  const alice = c.connect(pl.requesterWorker, `${c.userOwnedBy("w2")}/a`);
  const bobBare = c.userOwnedBy(pl.ownerWorker);
  const bob = c.connect(pl.recipientWorker, `${bobBare}/b`);
  return { c, alice, bob, bobBare, pa: c.proxies.get(pl.requesterWorker)!, pb: c.proxies.get(pl.recipientWorker)! };
}

for (const pl of PLACEMENTS) {
  test(`request/response across workers restores the original id (${pl.name})`, () => {
    const { alice, bob, pa } = setup(pl);
    alice.request("a-1", bob.address);
    const req = bob.last();
    assert.equal(req.kind, Kind.Request);
    assert.equal(req.from, alice.address);
    assert.equal(req.to, bob.address);
    assert.match(req.ref, new RegExp(`^${pl.requesterWorker}\\.\\d+$`), "the ref names the requester's worker");
    assert.equal(req.id, "a-1", "the requester's id travels unchanged beside it");
    assert.equal(req.ttl, 5000, "default timeout applied");
    assert.equal(pa.pending.size, 1);
    assert.equal(alice.outstanding, 1);

    bob.answer(req, "answer");
    const res = alice.last();
    assert.equal(res.kind, Kind.Response);
    assert.equal(res.responseFor, "a-1");
    assert.equal(res.from, bob.address);
    assert.equal(res.to, alice.address);
    assert.equal(String(res.payload), "answer");
    assert.equal(pa.pending.size, 0);
    assert.equal(alice.outstanding, 0);
    assert.equal(bob.inbound.size, 0);
  });

  test(`request to a bare address goes to one session and its answer is accepted (${pl.name})`, () => {
    const { c, alice, bob, bobBare } = setup(pl);
    const bob2 = c.connect("w4", `${bobBare}/b2`, true, 5);
    alice.request("a-2", bobBare);
    assert.equal(bob.got.length, 0);
    const req = bob2.last();
    bob2.answer(req);
    assert.equal(alice.last().responseFor, "a-2");
    assert.equal(alice.last().kind, Kind.Response);
  });

  test(`unavailable at once when nobody is online (${pl.name})`, () => {
    const { c, alice, bob, bobBare, pa } = setup(pl);
    alice.request("a-3", `${bobBare}/elsewhere`);
    assert.equal(alice.got.length, 1);
    assert.equal(alice.last().kind, Kind.Error);
    assert.equal(alice.last().code, ErrorCode.Unavailable);
    assert.equal(alice.last().responseFor, "a-3");
    const nobody = c.userOwnedBy(pl.ownerWorker);
    alice.request("a-4", nobody);
    assert.equal(alice.last().code, ErrorCode.Unavailable);
    assert.equal(alice.last().responseFor, "a-4");
    assert.equal(pa.pending.size, 0);
    assert.equal(bob.got.length, 0);
  });

  test(`timeout via sweep(now), then the late answer is dropped and counted (${pl.name})`, () => {
    const { alice, bob, pa } = setup(pl);
    const t0 = monotonicMs();
    alice.request("a-5", bob.address, 250);
    const req = bob.last();
    assert.equal(req.ttl, 250);
    assert.equal(pa.timer.sweep(t0 + 200), 0, "not before its deadline");
    assert.equal(alice.got.length, 0);
    assert.equal(pa.timer.sweep(monotonicMs() + 251), 1);
    const err = alice.last();
    assert.equal(err.kind, Kind.Error);
    assert.equal(err.code, ErrorCode.Timeout);
    assert.equal(err.responseFor, "a-5");
    assert.equal(err.from, bob.address);
    assert.equal(pa.stats.timeouts, 1);
    assert.equal(pa.pending.size, 0);
    assert.equal(alice.outstanding, 0);

    bob.answer(req, "too late");
    assert.equal(alice.got.length, 1, "late answer not delivered");
    assert.equal(pa.stats.late, 1);
  });

  test(`an answer from someone other than the recipient is dropped (${pl.name})`, () => {
    const { c, alice, bob, pa } = setup(pl);
    const mallory = c.connect("w4", `${c.userOwnedBy("w0")}/m`);
    const p4 = c.proxies.get("w4")!;
    alice.request("a-6", bob.address);
    const req = bob.last();
    // A ref that was never shown to mallory: the requester's worker refuses it as forged.
    mallory.respond(req.ref, "forged");
    assert.equal(alice.got.length, 0);
    assert.equal(pa.stats.forged, 1);
    assert.equal(p4.stats.late, 0);
    assert.equal(pa.pending.size, 1, "the real answer is still awaited");
    // Another resource of the recipient's own user is not the recipient either.
    const bobOther = c.connect("w2", `${bob.bare}/other`);
    bobOther.respond(req.ref, "forged too");
    assert.equal(pa.stats.forged, 2);
    assert.equal(alice.got.length, 0);
    // With ids passed through, a session can only answer what it was asked: nothing else leaves it.
    const pt = c.connect("w4", `${c.userOwnedBy("w1")}/pt`, true, 0, true);
    pt.respond("a-6", "not mine", alice.address);
    assert.equal(p4.stats.late, 1);
    assert.equal(alice.got.length, 0);
    bob.answer(req, "real");
    assert.equal(String(alice.last().payload), "real");
    assert.equal(alice.last().responseFor, "a-6");
  });

  test(`recipient detach fails its pending requests with unavailable (${pl.name})`, () => {
    const { alice, bob, pa, pb } = setup(pl);
    alice.request("a-7", bob.address);
    alice.request("a-8", bob.address);
    assert.equal(bob.inbound.size, 2);
    pb.detach(bob);
    const errs = alice.got.filter((e) => e.kind === Kind.Error);
    assert.deepEqual(errs.map((e) => [e.code, e.responseFor]).sort(), [
      [ErrorCode.Unavailable, "a-7"],
      [ErrorCode.Unavailable, "a-8"],
    ]);
    assert.equal(pa.pending.size, 0);
    assert.equal(alice.outstanding, 0);
    // Gone from its owner's channel: a new request fails at once.
    alice.request("a-9", bob.address);
    assert.equal(alice.last().code, ErrorCode.Unavailable);
    assert.equal(alice.last().responseFor, "a-9");
  });

  test(`requester detach drops its own pending requests (${pl.name})`, () => {
    const { alice, bob, pa } = setup(pl);
    alice.request("a-10", bob.address);
    alice.request("a-11", bob.address);
    const [r1] = bob.got;
    assert.equal(pa.pending.size, 2);
    pa.detach(alice);
    assert.equal(pa.pending.size, 0);
    assert.equal(alice.outstanding, 0);
    bob.answer(r1);
    assert.equal(alice.got.length, 0);
    assert.equal(pa.stats.late, 1);
    assert.equal(pa.timer.sweep(monotonicMs() + 1e6), 0, "nothing left to time out");
  });

  test(`rate-limited past maxPendingPerSession (${pl.name})`, () => {
    const { alice, bob, pa } = setup(pl);
    for (let i = 0; i < 3; i++) alice.request(`r${i}`, bob.address);
    assert.equal(alice.got.length, 0);
    alice.request("r3", bob.address);
    assert.equal(alice.got.length, 1);
    assert.equal(alice.last().code, ErrorCode.RateLimited);
    assert.equal(alice.last().responseFor, "r3");
    assert.equal(bob.got.length, 3, "the refused request was not forwarded");
    assert.equal(pa.stats.rateLimited, 1);
    // One answer frees one slot.
    bob.answer(bob.got[0]);
    alice.request("r4", bob.address);
    assert.equal(bob.got.length, 4);
  });

  test(`a second session binding the same full address replaces the first (${pl.name})`, () => {
    const { c, alice, bob, pb } = setup(pl);
    // On another worker.
    const bobAgain = c.connect("w4", bob.address);
    assert.equal(bob.replacedCount, 1);
    assert.equal(bobAgain.replacedCount, 0);
    alice.request("a-12", bob.address);
    assert.equal(bob.got.length, 0);
    assert.equal(bobAgain.last().from, alice.address);
    // The old one leaving later must not unbind the new one.
    pb.detach(bob);
    alice.request("a-13", bob.address);
    assert.equal(bobAgain.got.length, 2);
    // On the same worker.
    const bobThird = c.connect("w4", bob.address);
    assert.equal(bobAgain.replacedCount, 1);
    alice.request("a-14", bob.address);
    assert.equal(bobThird.got.length, 1);
    // Both on the owner's own worker.
    const z1 = c.connect(pl.ownerWorker, `${bob.bare}/z`);
    const z2 = c.connect(pl.ownerWorker, `${bob.bare}/z`);
    assert.deepEqual([z1.replacedCount, z2.replacedCount], [1, 0]);
    // (alice has 3 requests outstanding, her limit: carol asks.)
    const carol = c.connect("w2", `${c.userOwnedBy("w4")}/c`);
    carol.request("c-1", z1.address);
    assert.deepEqual([z1.got.length, z2.got.length], [0, 1]);
  });

  test(`a message to the bare address reaches every available session (${pl.name})`, () => {
    const { c, alice, bob, bobBare } = setup(pl);
    const b2 = c.connect("w3", `${bobBare}/b2`);
    const b3 = c.connect(pl.recipientWorker, `${bobBare}/b3`, true, 9);
    const off = c.connect("w2", `${bobBare}/off`, false);
    const neg = c.connect("w4", `${bobBare}/neg`, true, -1);
    alice.message(bobBare, "hello all");
    for (const s of [bob, b2, b3]) {
      assert.equal(s.got.length, 1, s.address);
      assert.equal(s.last().kind, Kind.Message);
      assert.equal(s.last().from, alice.address);
      assert.equal(String(s.last().payload), "hello all");
    }
    assert.equal(off.got.length, 0, "unavailable session");
    assert.equal(neg.got.length, 0, "negative priority");
    // A message to a full address reaches only that session.
    alice.message(b2.address, "only b2");
    assert.equal(b2.got.length, 2);
    assert.equal(bob.got.length, 1);
  });
}

test("the requested ttl is clamped into the protocol's bounds", () => {
  const c = cluster();
  const p = c.proxies.get("w0")!;
  assert.equal(p.timeoutFor("relay", 0), 5000);
  assert.equal(p.timeoutFor("relay", -3), 5000);
  assert.equal(p.timeoutFor("relay", 5), 100);
  assert.equal(p.timeoutFor("relay", 1e9), 120000);
  assert.equal(p.timeoutFor("relay", 250.7), 250);
  assert.throws(() => p.timeoutFor("nope", 0));
});

test("an answer to nothing asked of the session, or naming no live request, is counted late, not delivered", () => {
  const c = cluster();
  const alice = c.connect("w0", `${c.userOwnedBy("w0")}/a`);
  const bob = c.connect("w1", `${c.userOwnedBy("w1")}/b`);
  alice.request("x", bob.address);
  const p0 = c.proxies.get("w0")!;
  const p1 = c.proxies.get("w1")!;
  bob.respond("w0.999999999999");
  bob.respond("no-dot");
  bob.respond("w0.notanumber");
  assert.equal(alice.got.length, 0);
  assert.equal(p0.stats.late, 2, "refs naming w0 but no request there, judged on w0");
  assert.equal(p1.stats.late, 1, "a ref naming no worker, dropped where it was sent");
  // On the bus, refs that name no pending request or no worker.
  for (const ref of ["w0.999999999999", "w0.notanumber"]) p0.receive({ op: "answer", env: Envelope.response({ from: bob.address, to: "", protocol: "relay", responseFor: ref, payload: null }) });
  assert.equal(p0.stats.late, 4);
  assert.equal(alice.got.length, 0);
  assert.equal(p0.pending.size, 1);
});

for (const pl of PLACEMENTS) {
  test(`ids pass through: the recipient sees the requester's id and answers by it (${pl.name})`, () => {
    const c = cluster();
    const alice = c.connect(pl.requesterWorker, `${c.userOwnedBy("w2")}/a`, true, 0, true);
    const carol = c.connect("w4", `${c.userOwnedBy("w0")}/c`, true, 0, true);
    const bobBare = c.userOwnedBy(pl.ownerWorker);
    const bob = c.connect(pl.recipientWorker, `${bobBare}/b`, true, 0, true);
    const bob2 = c.connect("w3", `${bobBare}/b2`, true, 0, true);
    const pa = c.proxies.get(pl.requesterWorker)!;
    // Two requesters use the same id towards the same recipient, and one requester the same id towards two.
    alice.request("q1", bob.address);
    carol.request("q1", bob.address);
    alice.request("q1", bob2.address);
    assert.deepEqual(bob.got.map((e) => [e.id, e.from]), [
      ["q1", alice.address],
      ["q1", carol.address],
    ]);
    assert.equal(bob2.last().id, "q1");
    assert.equal(bob.inbound.size, 2);

    // Addressed to the wrong requester: matches nothing.
    bob.respond("q1", "wrong", `${alice.bare}/other`);
    assert.equal(alice.got.length + carol.got.length, 0);

    bob.respond("q1", "for carol", carol.address);
    assert.equal(carol.got.length, 1);
    assert.equal(carol.last().responseFor, "q1");
    assert.equal(String(carol.last().payload), "for carol");
    assert.equal(alice.got.length, 0);

    bob2.respond("q1", "from bob2", alice.address);
    bob.respond("q1", "from bob", alice.address);
    assert.deepEqual(alice.got.map((e) => [e.responseFor, e.from, String(e.payload)]), [
      ["q1", bob2.address, "from bob2"],
      ["q1", bob.address, "from bob"],
    ]);
    assert.equal(pa.pending.size, 0);
    assert.equal(bob.inbound.size, 0);

    // Answered twice: the second finds nothing.
    bob.respond("q1", "again", alice.address);
    assert.equal(alice.got.length, 2);

    // Fail-fast when the recipient leaves, and the timeout, keep the requester's id.
    alice.request("q2", bob.address);
    c.proxies.get(pl.recipientWorker)!.detach(bob);
    assert.deepEqual([alice.last().code, alice.last().responseFor], [ErrorCode.Unavailable, "q2"]);
    alice.request("q3", bob2.address, 200);
    pa.timer.sweep(monotonicMs() + 201);
    assert.deepEqual([alice.last().code, alice.last().responseFor], [ErrorCode.Timeout, "q3"]);
  });
}

test("a session that cannot express a request fails it at once", () => {
  const c = cluster();
  const alice = c.connect("w0", `${c.userOwnedBy("w0")}/a`);
  const mute = c.connect("w1", `${c.userOwnedBy("w3")}/m`);
  mute.deliver = () => false;
  alice.request("z", mute.address);
  assert.deepEqual([alice.last().code, alice.last().responseFor], [ErrorCode.Unavailable, "z"]);
  assert.equal(mute.inbound.size, 0);
  assert.equal(c.proxies.get("w0")!.pending.size, 0);
});

test("a request to a domain (an XEP-0114 component's bare address) is answered from any address in it, and from nowhere else", { timeout: 5000 }, () => {
  const c = cluster();
  const alice = c.connect("w0", `${c.userOwnedBy("w0")}/a`);
  const gw = c.connect("w3", "gw.example/component");
  const pa = c.proxies.get("w0")!;
  const p3 = c.proxies.get("w3")!;
  const answer = (from: string, ref: string, body: string) => p3.submit(gw, Envelope.response({ from, to: "", protocol: "relay", responseFor: ref, payload: Buffer.from(body) }));
  alice.request("c-1", "gw.example");
  const req = gw.last();
  assert.equal(req.kind, Kind.Request);
  // Not in the domain (a look-alike suffix too): refused as forged, the real answer still awaited.
  answer("x@other.example/r", req.ref, "forged");
  answer("x@evilgw.example/r", req.ref, "forged");
  assert.equal(pa.stats.forged, 2);
  assert.equal(alice.got.length, 0);
  answer("echo@gw.example/x", req.ref, "from inside");
  assert.equal(alice.last().kind, Kind.Response);
  assert.equal(alice.last().from, "echo@gw.example/x");
  assert.equal(alice.last().responseFor, "c-1");
  assert.equal(pa.pending.size, 0);
});
