import { test } from "node:test";
import assert from "node:assert/strict";
import { setImmediate as turn } from "node:timers/promises";
import { defaults } from "../../../src/config/config.js";
import { LocalHub, type LocalBus } from "../../../src/cluster/local-bus.js";
import type { BusMessage } from "../../../src/cluster/bus.js";
import { ProxyDaemon, type ProxyOptions } from "../../../src/proxy/proxy-daemon.js";
import { Session } from "../../../src/session/session.js";
import { Envelope, ErrorCode, Flag, Kind } from "../../../src/envelope/envelope.js";
import { Custody } from "../../../src/proxy/custody.js";
import { Confirmations, Receipts } from "../../../src/proxy/receipts.js";
import { workerOf } from "../../../src/proxy/receipt.js";
import { Router } from "../../../src/router/router.js";

/** A session as the core sees it; `acks` makes it keep what it gets until its "client" acknowledges (XEP-0198). */
class Client extends Session {
  readonly protocol = "xmpp";
  readonly idPassThrough = true;
  readonly got: Envelope[] = [];
  constructor(
    readonly proxy: ProxyDaemon,
    address: string,
    readonly acks = false,
  ) {
    super();
    this.address = address;
    this.bare = address.slice(0, address.indexOf("/"));
    this.resource = address.slice(address.indexOf("/") + 1);
    this.available = true;
  }
  override get confirmsLater(): boolean {
    return this.acks;
  }
  deliver(env: Envelope): boolean {
    this.got.push(env);
    return true;
  }
  replaced(): void {}
  send(to: string, body: string): void {
    this.proxy.submit(this, Envelope.message({ from: this.address, to, protocol: "xmpp", payload: body, flags: Flag.Offline, id: body }));
  }
  /** The client acknowledges everything it got. */
  ack(): void {
    for (const e of this.got) if (e.ref !== "") this.proxy.confirm(e.ref);
  }
  bodies(): string[] {
    return this.got.filter((e) => e.kind === Kind.Message).map((e) => String(e.payload));
  }
}

interface World {
  hub: LocalHub;
  proxies: Map<string, ProxyDaemon>;
  /** Messages to these workers wait (a stalled process) until released or dropped (a dead one). */
  stalled: Map<string, { to: string; msg: BusMessage }[]>;
  /** Messages this says yes to are lost on their way (a bus that drops them); the rest go on. */
  lose: ((to: string, msg: BusMessage) => boolean) | null;
  /** With a stalled worker: only the messages this says yes to wait; the rest go on (a slower way than theirs). */
  stallOnly: ((msg: BusMessage) => boolean) | null;
  stored: Envelope[];
  release(worker: string): void;
  userOwnedBy(owner: string): string;
  stop(): void;
}

function world(custody: Partial<ProxyOptions["custody"]> = {}): World {
  const opts: ProxyOptions = {
    timeouts: { xmpp: { defaultMs: 30000, minMs: 1000, maxMs: 300000 } },
    sweepIntervalMs: 20,
    maxPendingPerSession: 10,
    maxInboundPerSession: 100,
    custody: { ...defaults().cluster.custody, resumeGraceMs: 0, ...custody },
  };
  const hub = new LocalHub(64);
  const stalled = new Map<string, { to: string; msg: BusMessage }[]>();
  const buses: LocalBus[] = ["w0", "w1", "w2", "w3"].map((id) => hub.join(id, "10.0.0.1"));
  for (const b of buses) {
    const send = b.send.bind(b);
    b.send = (to, msg) => {
      if (w.lose?.(to, msg) === true) return;
      const q = stalled.get(to);
      if (q !== undefined && (w.stallOnly === null || w.stallOnly(msg))) q.push({ to, msg });
      else send(to, msg);
    };
  }
  const stored: Envelope[] = [];
  const proxies = new Map(buses.map((b) => [b.workerId, new ProxyDaemon(b, opts)]));
  for (const p of proxies.values()) {
    p.offline = (env, settle) => {
      stored.push(env);
      setImmediate(() => settle(null));
      return null;
    };
    p.start();
  }
  const router = new Router(hub.membership());
  let n = 0;
  const w: World = {
    hub,
    proxies,
    stalled,
    lose: null,
    stallOnly: null,
    stored,
    release(worker) {
      const q = stalled.get(worker) ?? [];
      stalled.delete(worker);
      for (const { msg } of q) hub.endpoints.get(worker)?.endpoint?.receive(msg);
    },
    userOwnedBy(owner) {
      for (;;) {
        const bare = `user${n++}@localhost`;
        if (router.ownerOf(bare) === owner) return bare;
      }
    },
    stop() {
      for (const p of proxies.values()) p.stop();
    },
  };
  return w;
}

async function until(what: string, ok: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** alice on w0, and bob, a user w3 owns, with his session on `bobOn`: both attached. */
function aliceAndBob(w: World, bobOn = "w3"): { p0: ProxyDaemon; alice: Client; bobBare: string; pb: ProxyDaemon; bob: Client } {
  const p0 = w.proxies.get("w0")!;
  const alice = new Client(p0, `${w.userOwnedBy("w0")}/a`);
  p0.attach(alice);
  const bobBare = w.userOwnedBy("w3");
  const pb = w.proxies.get(bobOn)!;
  const bob = new Client(pb, `${bobBare}/b`);
  pb.attach(bob);
  return { p0, alice, bobBare, pb, bob };
}

test("a message to another worker is held by the sender's worker until the deliverer confirms", { timeout: 5000 }, async () => {
  const w = world();
  const p0 = w.proxies.get("w0")!;
  const alice = new Client(p0, `${w.userOwnedBy("w0")}/a`);
  p0.attach(alice);
  const bob = new Client(w.proxies.get("w1")!, `${w.userOwnedBy("w3")}/b`);
  w.proxies.get("w1")!.attach(bob);
  alice.send(bob.bare, "m1");
  assert.deepEqual(bob.bodies(), ["m1"]);
  assert.equal(p0.custody.size, 1, "held until the confirmation's turn");
  await turn();
  await turn();
  assert.equal(p0.custody.size, 0);
  // A message that stays on its worker is not held at all.
  const carol = new Client(p0, `${w.userOwnedBy("w0")}/c`);
  p0.attach(carol);
  alice.send(carol.bare, "m2");
  assert.equal(p0.custody.size, 0);
  assert.deepEqual(carol.bodies(), ["m2"]);
  w.stop();
});

test("a session that keeps messages until its client acks: taken first, settled by the ack", { timeout: 5000 }, async () => {
  const w = world();
  const p0 = w.proxies.get("w0")!;
  const alice = new Client(p0, `${w.userOwnedBy("w0")}/a`);
  p0.attach(alice);
  const bob = new Client(w.proxies.get("w1")!, `${w.userOwnedBy("w1")}/b`, true);
  w.proxies.get("w1")!.attach(bob);
  alice.send(bob.address, "m1");
  await turn();
  await turn();
  assert.equal(p0.custody.size, 1, "taken, not settled");
  bob.ack();
  await turn();
  await turn();
  assert.equal(p0.custody.size, 0);
  w.stop();
});

test("the owner dies with the message: routed again to the new owner, settled once", { timeout: 5000 }, async () => {
  const w = world();
  const p0 = w.proxies.get("w0")!;
  const alice = new Client(p0, `${w.userOwnedBy("w0")}/a`);
  p0.attach(alice);
  const bobBare = w.userOwnedBy("w3");
  const bob = new Client(w.proxies.get("w1")!, `${bobBare}/b`);
  w.proxies.get("w1")!.attach(bob);
  w.stalled.set("w3", []);
  alice.send(bobBare, "m1");
  assert.deepEqual(bob.bodies(), []);
  // w3 dies: what waited for it is gone, the ring moves on.
  w.stalled.delete("w3");
  w.hub.leave("w3");
  await until("settled", () => p0.custody.size === 0);
  const reached = bob.bodies().length + w.stored.filter((e) => e.id === "m1").length;
  assert.equal(reached, 1, "delivered or stored offline, exactly once");
  assert.equal(p0.custody.rerouted, 1);
  w.stop();
});

test("routed again after the confirm timeout; the late original is dropped as a duplicate", { timeout: 5000 }, async () => {
  const w = world({ confirmTimeoutMs: 100, dedupWindowMs: 5000 });
  const { p0, alice, bobBare, pb: p1, bob } = aliceAndBob(w, "w1");
  // w2 stalls: messages to bob go to the owner w3, then to w1 through w2? No: stall the session's worker itself.
  w.stalled.set("w1", []);
  alice.send(bobBare, "m1");
  await until("routed again", () => p0.custody.rerouted >= 1);
  w.release("w1");
  await until("settled", () => p0.custody.size === 0);
  assert.deepEqual(bob.bodies(), ["m1"], "once");
  assert.ok(p1.stats.duplicates >= 1);
  w.stop();
});

test("given up after maxTries: the sender gets an error, nothing is held", { timeout: 5000 }, async () => {
  const w = world({ confirmTimeoutMs: 100, maxTries: 2 });
  const p0 = w.proxies.get("w0")!;
  const alice = new Client(p0, `${w.userOwnedBy("w0")}/a`);
  p0.attach(alice);
  const bobBare = w.userOwnedBy("w3");
  // Every copy lost on the way to the owner, which answers probes: lost, not slow, each time.
  w.lose = (to, msg) => to === "w3" && msg.op === "owner";
  alice.send(bobBare, "m1");
  await until("an error for the sender", () => alice.got.some((e) => e.kind === Kind.Error));
  const err = alice.got.find((e) => e.kind === Kind.Error)!;
  assert.equal(err.code, ErrorCode.Unavailable);
  assert.equal(err.responseFor, "m1");
  assert.equal(p0.custody.size, 0);
  assert.equal(p0.custody.givenUp, 1);
  w.stop();
});

test("a worker slower than the confirm timeout (a backlog, still in the ring): waited for, probed, not routed again; settled once when it catches up", { timeout: 5000 }, async () => {
  const w = world({ confirmTimeoutMs: 100, maxTries: 2 });
  const { p0, alice, bobBare, bob } = aliceAndBob(w);
  // w3 reads nothing for a while: what is sent to it, probes included, waits in order.
  w.stalled.set("w3", []);
  alice.send(bobBare, "m1");
  alice.send(bobBare, "m2");
  await until("both waited for", () => p0.custody.waiting === 2);
  // Well past maxTries × confirmTimeoutMs (an unanswered probe goes again every confirmTimeoutMs): a slow worker's
  // messages are neither routed again nor given up.
  const probes = () => w.stalled.get("w3")!.filter((x) => x.msg.op === "probe").length;
  await until("four probes sent", () => probes() >= 4);
  assert.equal(p0.custody.rerouted, 0, "no copy sent behind the backlog");
  assert.equal(p0.custody.givenUp, 0);
  assert.ok(w.stalled.get("w3")!.some((x) => x.msg.op === "probe"), "the slow worker was probed");
  w.release("w3");
  await until("settled", () => p0.custody.size === 0);
  await turn();
  assert.deepEqual(bob.bodies(), ["m1", "m2"], "each once, in order");
  assert.equal(p0.custody.rerouted, 0);
  assert.equal(p0.custody.waiting, 0);
  assert.equal(alice.got.filter((e) => e.kind === Kind.Error).length, 0, "no error for the sender");
  w.stop();
});

test("lost on the way while its worker answers: the probe's answer proves it, and it is routed again, delivered once", { timeout: 5000 }, async () => {
  const w = world({ confirmTimeoutMs: 100 });
  const { p0, alice, bobBare, bob } = aliceAndBob(w);
  let lost = 0;
  w.lose = (to, msg) => to === "w3" && msg.op === "owner" && lost++ === 0;
  alice.send(bobBare, "m1");
  await until("routed again", () => p0.custody.rerouted === 1);
  await until("settled", () => p0.custody.size === 0);
  assert.deepEqual(bob.bodies(), ["m1"]);
  assert.equal(p0.custody.waited, 1, "first waited for, until the probe came back without it");
  w.stop();
});

test("waiting for a slow worker that then leaves the ring: routed again to the new owner with the rest", { timeout: 5000 }, () => {
  const routed: string[] = [];
  const probes: [string, number][] = [];
  // Routed again, b@x goes to w2 as before; a@x to w3 (w1 has left by then).
  const c = new Custody("w0", { ...defaults().cluster.custody, confirmTimeoutMs: 100, rerouteAfterMs: 0, resumeGraceMs: 0 }, { reroute: (e) => (routed.push(e.ref), e.to === "a@x" ? "w3" : "w2"), giveUp: () => {}, probe: (to, at) => void probes.push([to, at]) });
  const a = c.hold(Envelope.message({ from: "z@x/1", to: "a@x", protocol: "xmpp", payload: "m1", flags: Flag.Offline }), 0, "w1")!;
  const b = c.hold(Envelope.message({ from: "z@x/1", to: "b@x", protocol: "xmpp", payload: "m2", flags: Flag.Offline }), 10, "w2")!;
  // w2 confirms a message sent to it after b: b was lost on the way. w1 has answered for nothing: slow.
  const later = c.hold(Envelope.message({ from: "z@x/1", to: "b@x", protocol: "xmpp", payload: "m3", flags: Flag.Offline }), 50, "w2")!;
  c.done(c.keyOf(later.ref));
  c.expire(120);
  assert.deepEqual(routed, [b.ref], "lost: routed again at once");
  assert.deepEqual(probes, [["w1", 120]], "slow: probed");
  assert.equal(c.waiting, 1);
  c.expire(200);
  assert.equal(probes.length, 1, "one probe at a time, until confirmTimeoutMs passes");
  c.expire(221);
  // b's second timeout, at w2, which has answered for nothing sent after its routing again: slow too.
  assert.deepEqual(probes, [["w1", 120], ["w2", 221], ["w1", 221]], "an unanswered probe is sent again");
  assert.equal(c.waiting, 2);
  c.probed("w2", 221);
  c.expire(240);
  assert.deepEqual(routed, [b.ref, b.ref], "w2 answered without it: lost again, routed again");
  c.lost((wk) => wk === "w1", 250);
  c.expire(251);
  assert.equal(routed.filter((r) => r === a.ref).length, 1, "w1 left: what waited for it routed again");
  assert.equal(c.waiting, 0);
  // An answer from w1 from before it left changes nothing now.
  c.probed("w1", 221);
  assert.equal(c.size, 2);
});

test("the confirmation of a message routed again says nothing of when: its first copy may have been read long before, and what was routed between is not taken for lost", { timeout: 5000 }, () => {
  const routed: string[] = [];
  const c = new Custody("w0", { ...defaults().cluster.custody, confirmTimeoutMs: 100, resumeGraceMs: 0 }, { reroute: (e) => (routed.push(e.ref), "w1"), giveUp: () => {}, probe: () => {} });
  const msg = (body: string) => Envelope.message({ from: "z@x/1", to: "b@x", protocol: "xmpp", payload: body, flags: Flag.Offline });
  const first = c.hold(msg("m1"), 0, "w1")!;
  // m1 lost on the way, as a later one's confirmation shows: routed again at 120.
  c.done(c.keyOf(c.hold(msg("m0"), 10, "w1")!.ref));
  const between = c.hold(msg("m2"), 50, "w1")!;
  c.expire(120);
  assert.deepEqual(routed, [first.ref]);
  // w1 has a backlog: m1's first copy is read and confirmed only now, m2 still behind it.
  c.done(c.keyOf(first.ref));
  c.expire(240);
  assert.deepEqual(routed, [first.ref], "m2 waits for the slow worker: m1's confirmation does not say w1 has read what was routed up to 120");
  assert.equal(c.waiting, 1);
  c.done(c.keyOf(between.ref));
  assert.equal(c.size, 0);
});

test("taken by a session whose worker dies: routed again, to another resource of the user", { timeout: 5000 }, async () => {
  const w = world();
  const p0 = w.proxies.get("w0")!;
  const alice = new Client(p0, `${w.userOwnedBy("w0")}/a`);
  p0.attach(alice);
  const bobBare = w.userOwnedBy("w2");
  const b1 = new Client(w.proxies.get("w1")!, `${bobBare}/phone`, true);
  w.proxies.get("w1")!.attach(b1);
  alice.send(b1.address, "m1");
  await turn();
  await turn();
  assert.deepEqual(b1.bodies(), ["m1"]);
  assert.equal(p0.custody.size, 1);
  const b2 = new Client(w.proxies.get("w2")!, `${bobBare}/laptop`);
  w.proxies.get("w2")!.attach(b2);
  // w1 dies before the phone acknowledged: its owner drops the phone, the custodian routes the message again.
  w.hub.leave("w1");
  await until("settled", () => p0.custody.size === 0);
  assert.deepEqual(b2.bodies(), [], "a full-JID message goes to offline storage when its resource is gone");
  assert.equal(w.stored.filter((e) => e.id === "m1").length, 1);
  w.stop();
});

test("both copies of a message for its custodian's own worker meet at the owner: the second goes no further", { timeout: 5000 }, async () => {
  const w = world({ confirmTimeoutMs: 100, dedupWindowMs: 5000 });
  const p0 = w.proxies.get("w0")!;
  const p3 = w.proxies.get("w3")!;
  const alice = new Client(p0, `${w.userOwnedBy("w0")}/a`);
  p0.attach(alice);
  const bobBare = w.userOwnedBy("w3");
  const bob = new Client(p0, `${bobBare}/b`);
  p0.attach(bob);
  // bob's owner stalls for the message and the copy routed again, not for the probe (its way was quicker: a first copy
  // delayed on a way of its own): they wait there; the owner passes the first back to w0.
  w.stalled.set("w3", []);
  w.stallOnly = (msg) => msg.op !== "probe";
  alice.send(bobBare, "m1");
  await until("routed again", () => p0.custody.rerouted >= 1);
  w.release("w3");
  await until("settled", () => p0.custody.size === 0 && p3.custody.size === 0);
  await turn();
  assert.deepEqual(bob.bodies(), ["m1"], "once");
  assert.equal(p3.stats.duplicates, 1, "the copy routed again is dropped at the owner, which had taken the message over");
  w.stop();
});

test("an owner passing a message back to its custodian's worker holds it: that worker dies before the client acknowledged, and it reaches the user's next session", { timeout: 5000 }, async () => {
  const w = world();
  const p0 = w.proxies.get("w0")!;
  const p3 = w.proxies.get("w3")!;
  const alice = new Client(p0, `${w.userOwnedBy("w0")}/a`);
  p0.attach(alice);
  const bobBare = w.userOwnedBy("w3");
  const phone = new Client(p0, `${bobBare}/phone`, true);
  p0.attach(phone);
  alice.send(bobBare, "m1");
  await until("delivered", () => phone.bodies().length === 1);
  await turn();
  assert.equal(p0.custody.size, 0, "its first custodian let it go");
  assert.equal(p3.custody.size, 1, "the owner holds it, taken by the phone's session");
  const laptop = new Client(w.proxies.get("w2")!, `${bobBare}/laptop`);
  w.proxies.get("w2")!.attach(laptop);
  await turn();
  w.hub.leave("w0");
  await until("settled", () => p3.custody.size === 0);
  assert.deepEqual(laptop.bodies(), ["m1"], "a bare-JID message goes to the user's other session");
  w.stop();
});

test("both copies of a message for its custodian's own worker, to a session that keeps it until acked: the second is dropped", { timeout: 5000 }, async () => {
  const w = world({ confirmTimeoutMs: 100, dedupWindowMs: 5000 });
  const p0 = w.proxies.get("w0")!;
  const alice = new Client(p0, `${w.userOwnedBy("w0")}/a`);
  p0.attach(alice);
  const bobBare = w.userOwnedBy("w3");
  const bob = new Client(p0, `${bobBare}/b`, true);
  p0.attach(bob);
  // As above: the copies wait at the owner, the probe does not.
  w.stalled.set("w3", []);
  w.stallOnly = (msg) => msg.op !== "probe";
  alice.send(bobBare, "m1");
  await until("routed again", () => p0.custody.rerouted >= 1);
  w.release("w3");
  const p3 = w.proxies.get("w3")!;
  await until("both copies at the owner", () => p3.stats.duplicates === 1);
  await turn();
  assert.deepEqual(bob.bodies(), ["m1"], "once");
  bob.ack();
  await until("settled", () => p0.custody.size === 0 && p3.custody.size === 0);
  w.stop();
});

test("a message taken after a membership change is not routed again, even when the sweep comes late", { timeout: 5000 }, () => {
  const routed: string[] = [];
  const c = new Custody("w0", { ...defaults().cluster.custody, rerouteAfterMs: 300, resumeGraceMs: 0 }, { reroute: (e) => void routed.push(e.ref), giveUp: () => {} });
  const env = Envelope.message({ from: "a@localhost/a", to: "b@localhost", protocol: "xmpp", payload: null, flags: Flag.Offline });
  const sent = c.hold(env, 1000)!;
  const other = c.hold(env, 1000)!;
  c.lost(() => false, 2000);
  // Taken by a live session 100 ms after the change; the sweep runs 900 ms late.
  c.takenBy(c.keyOf(sent.ref), "w1", 2100);
  c.expire(3200);
  assert.deepEqual(routed, [other.ref], "only the one nobody took");
});

test("membership changes in a row route a held message again as often as they come, but its sender is told only after maxTries routings and maxTries confirmation timeouts, as by timeouts alone", { timeout: 5000 }, () => {
  const routed: string[] = [];
  const given: string[] = [];
  const opts = { ...defaults().cluster.custody, confirmTimeoutMs: 1000, maxTries: 3, rerouteAfterMs: 10, resumeGraceMs: 0 };
  const c = new Custody("w0", opts, { reroute: (e) => void routed.push(e.ref), giveUp: (e) => void given.push(e.ref) });
  const env = Envelope.message({ from: "a@localhost/a", to: "b@localhost", protocol: "xmpp", payload: null, flags: Flag.Offline });
  const sent = c.hold(env, 0)!;
  // Five changes 100 ms apart (a worker stopped again and again): each routes it again.
  for (let t = 100; t <= 500; t += 100) {
    c.lost(() => false, t);
    c.expire(t + 20);
  }
  assert.equal(routed.length, 5, "routed again at each change");
  assert.equal(given.length, 0, "not given up within maxTries × confirmTimeoutMs of its first routing, however many changes");
  // Then no confirmation: the timeouts go on, and the sender is told once 3 × 1000 ms have passed since the first routing.
  c.expire(1600);
  assert.equal(given.length, 0, "1.6 s after the first routing");
  c.expire(3100);
  assert.deepEqual(given, [sent.ref]);
  assert.equal(c.size, 0);
  // By timeouts alone, as before: given up at the maxTries-th timeout (3 s), not later.
  const alone = new Custody("w0", opts, { reroute: () => {}, giveUp: (e) => void given.push(e.ref) });
  const other = alone.hold(env, 0)!;
  for (const t of [1000, 2000]) alone.expire(t + 1);
  assert.equal(given.length, 1, "routed again twice, still held");
  alone.expire(3002);
  assert.deepEqual(given.slice(1), [other.ref]);
});

test("a copy that reaches the owner that stored the message offline goes no further", { timeout: 5000 }, async () => {
  const w = world();
  const p0 = w.proxies.get("w0")!;
  const p3 = w.proxies.get("w3")!;
  const alice = new Client(p0, `${w.userOwnedBy("w0")}/a`);
  p0.attach(alice);
  const bobBare = w.userOwnedBy("w3");
  alice.send(bobBare, "m1");
  await until("stored and settled", () => w.stored.length === 1 && p0.custody.size === 0);
  // bob logs in (and gets m1 from storage); then a stalled worker's session gives back a copy it had of m1.
  const bob = new Client(w.proxies.get("w1")!, `${bobBare}/b`, true);
  w.proxies.get("w1")!.attach(bob);
  await turn();
  p3.receive({ op: "owner", env: w.stored[0] });
  await turn();
  await turn();
  assert.deepEqual(bob.bodies(), [], "not delivered again");
  assert.equal(p3.stats.duplicates, 1);
  w.stop();
});

test("stored by an owner that then dies, and given from storage to the user's live session: the copy its custodian routes again to the next owner is dropped at that session, not delivered twice", { timeout: 5000 }, async () => {
  const w = world({ dedupWindowMs: 5000 });
  const p0 = w.proxies.get("w0")!;
  const p1 = w.proxies.get("w1")!;
  const alice = new Client(p0, `${w.userOwnedBy("w0")}/a`);
  p0.attach(alice);
  // Owned by w3, and by w1 (where bob's session will be) once w3 is gone.
  const after = new Router({ hosts: { "10.0.0.1": ["w0", "w1", "w2"] }, vnodes: 64 });
  let bobBare = w.userOwnedBy("w3");
  while (after.ownerOf(bobBare) !== "w1") bobBare = w.userOwnedBy("w3");
  // The custodian w0 does not hear of it yet (the owner's "stored" is on its way).
  w.stalled.set("w0", []);
  alice.send(bobBare, "m1");
  await until("stored at the owner", () => w.stored.length === 1);
  // bob's session on w1, an XMPP one (it keeps what it was given: Session.recent), binds at w3 only now (its
  // worker was slow after a ring change), and takes what was stored meanwhile as the protocol's takeStored does.
  const bob = new (class extends Client {
    override get dropsResent(): boolean {
      return true;
    }
  })(p1, `${bobBare}/b`);
  p1.attach(bob);
  await turn();
  bob.recentMessages().note(alice.address, "m1");
  // The owner dies: the custodian, which never heard it was stored, routes it again, to bob's next owner.
  w.hub.leave("w3");
  await until("routed again by the custodian", () => p0.custody.rerouted >= 1);
  await until("the copy reached bob's session", () => p1.stats.resentDropped + bob.got.length > 0);
  assert.deepEqual(bob.bodies(), [], "given once, from storage");
  assert.equal(p1.stats.resentDropped, 1);
  assert.equal(w.stored.length, 1, "not stored again");
  w.release("w0");
  await until("settled", () => p0.custody.size === 0);
  w.stop();
});

test("a client's count after a failed resumption reaches its session's worker also when that one left the ring (stalled, not dead)", { timeout: 5000 }, async () => {
  const w = world();
  const p2 = w.proxies.get("w2")!;
  w.stalled.set("w1", []);
  w.hub.leave("w1");
  await turn();
  p2.receivedUpTo("bob\u0000id1", 7);
  const told = w.stalled.get("w1")!.map((m) => m.msg);
  assert.deepEqual(told, [{ op: "received", key: "bob\u0000id1", count: 7 }]);
  w.stop();
});

test("a message for a session that ended as it came goes back to the owner, which drops the stale binding and delivers to the user's new session", { timeout: 5000 }, async () => {
  const w = world();
  const p0 = w.proxies.get("w0")!;
  const p1 = w.proxies.get("w1")!;
  const p2 = w.proxies.get("w2")!;
  const alice = new Client(p0, `${w.userOwnedBy("w0")}/a`);
  p0.attach(alice);
  const bobBare = w.userOwnedBy("w3");
  const old = new Client(p1, `${bobBare}/r`, true);
  p1.attach(old);
  // The owner sends m1 to the old session's worker, where it waits a moment.
  w.stalled.set("w1", []);
  alice.send(bobBare, "m1");
  assert.equal(w.stalled.get("w1")!.length, 1);
  // Meanwhile that session ended there, and bob logged in again on w2 with the same resource.
  p1.sessions.delete(old.address);
  const fresh = new Client(p2, `${bobBare}/r`, true);
  p2.attach(fresh);
  w.release("w1");
  await until("delivered to the new session", () => fresh.bodies().includes("m1"));
  assert.equal(w.stored.length, 0, "not stored offline");
  assert.deepEqual(old.bodies(), []);
  // And a stale binding alone (no newer session) is dropped, the message stored by the owner.
  const gone = new Client(p1, `${bobBare}/other`, true);
  p1.attach(gone);
  w.stalled.set("w1", []);
  alice.send(gone.address, "m2");
  p1.sessions.delete(gone.address);
  w.release("w1");
  await until("m2 went to bob's other session (a chat to a gone resource)", () => fresh.bodies().includes("m2") || w.stored.length === 1);
  assert.equal(w.proxies.get("w3")!.owner.channels.get(bobBare)?.resources.has("other"), false, "the stale binding is gone");
  w.stop();
});

test("two copies of one held message that find nobody at once are stored once", { timeout: 5000 }, async () => {
  const w = world();
  const p3 = w.proxies.get("w3")!;
  const env = Envelope.message({ from: "alice@localhost/a", to: "carol@localhost", protocol: "xmpp", payload: "x", flags: Flag.Offline, id: "m1" }).withReceipt("w0.77");
  // As when a hold window closes on both the first copy and the one its custodian routed again.
  p3.undeliverable(env);
  p3.undeliverable(env);
  await turn();
  await turn();
  assert.equal(w.stored.length, 1);
  assert.equal(p3.stats.duplicates, 1);
  w.stop();
});

test("a session rebuilt after its worker died: what it had taken beyond its client's count is routed again at once, to it, and only once", { timeout: 5000 }, async () => {
  const w = world({ resumeGraceMs: 60_000 });
  const p0 = w.proxies.get("w0")!;
  const p1 = w.proxies.get("w1")!;
  const alice = new Client(p0, `${w.userOwnedBy("w0")}/a`);
  p0.attach(alice);
  // bob on w1 keeps what he gets until his client acknowledges it; his session is named by its keepKey.
  const bob = new Client(p1, `${w.userOwnedBy("w2")}/b`, true);
  bob.keepKey = "bob\u0000id";
  let count = 0;
  Object.defineProperty(bob, "keptCount", { get: () => count });
  p1.attach(bob);
  for (const m of ["m1", "m2", "m3"]) {
    count++;
    alice.send(bob.address, m);
  }
  await turn();
  await turn();
  assert.equal(p0.custody.size, 3, "taken by bob's session, held by alice's worker");
  // w1 dies; bob's client got m1 only (h = 1) and resumes on w3, where his session is rebuilt.
  w.hub.leave("w1");
  const bob2 = new Client(w.proxies.get("w3")!, bob.address, true);
  bob2.keepKey = bob.keepKey;
  w.proxies.get("w3")!.attach(bob2);
  w.proxies.get("w3")!.receivedUpTo(bob.keepKey, 1, true);
  await until("m2 and m3 at the rebuilt session", () => bob2.bodies().length === 2);
  assert.deepEqual(bob2.bodies(), ["m2", "m3"], "not m1, which the client had");
  // The death's later routing (resumeGraceMs) does not send them a second time.
  p0.custody.expire(performance.now() + 120_000);
  await turn();
  assert.deepEqual(bob2.bodies(), ["m2", "m3"]);
  w.stop();
});

test("a bare-JID message fanned out by its owner to a resource on its custodian's worker and one on the owner's: each gets it once", { timeout: 5000 }, async () => {
  const w = world();
  const p0 = w.proxies.get("w0")!;
  const p3 = w.proxies.get("w3")!;
  const alice = new Client(p0, `${w.userOwnedBy("w0")}/a`);
  p0.attach(alice);
  const bobBare = w.userOwnedBy("w3");
  const phone = new Client(p0, `${bobBare}/phone`);
  const desk = new Client(p3, `${bobBare}/desk`);
  p0.attach(phone);
  p3.attach(desk);
  await turn();
  alice.send(bobBare, "m1");
  await until("both delivered", () => phone.bodies().length === 1 && desk.bodies().length === 1);
  await until("settled", () => p0.custody.size === 0 && p3.custody.size === 0);
  await turn();
  assert.deepEqual([phone.bodies(), desk.bodies()], [["m1"], ["m1"]]);
  assert.equal(p3.stats.duplicates, 0, "the owner's own resource was not taken for a copy routed again");
  w.stop();
});

test("voided since a mark: only what was held after it, still travelling, from the named senders; never routed again", { timeout: 5000 }, () => {
  const routed: string[] = [];
  const c = new Custody("w0", { ...defaults().cluster.custody, confirmTimeoutMs: 1000, resumeGraceMs: 0 }, { reroute: (e) => void routed.push(e.ref), giveUp: () => {} });
  const from = (sender: string) => Envelope.message({ from: sender, to: "b@localhost", protocol: "xmpp", payload: null, flags: Flag.Offline });
  const before = c.hold(from("a@localhost/stalled"), 0)!;
  const mark = c.mark();
  const voided = c.hold(from("a@localhost/stalled"), 0)!;
  const taken = c.hold(from("a@localhost/stalled"), 0)!;
  const other = c.hold(from("c@localhost/other"), 0)!;
  c.takenBy(c.keyOf(taken.ref), "w1", 10, "K", 1);
  assert.equal(c.voidSince(mark, (e) => e.from === "a@localhost/stalled"), 1);
  assert.equal(c.voided, 1);
  c.expire(5000);
  assert.deepEqual(routed.sort(), [before.ref, other.ref].sort(), "the rest travels again at the confirm timeout");
  assert.ok(!routed.includes(voided.ref));
});

test("receipts name their worker, differ between incarnations of one worker id, and are read back as their keys", { timeout: 5000 }, () => {
  const opts = { ...defaults().cluster.custody };
  const act = { reroute: () => {}, giveUp: () => {} };
  const a = new Custody("w0", opts, act);
  const b = new Custody("w0", opts, act);
  const env = Envelope.message({ from: "alice@localhost/a", to: "bob@localhost", protocol: "xmpp", payload: "x", flags: Flag.Offline });
  const ra = a.hold(env, 0)!.ref;
  const rb = b.hold(env, 0)!.ref;
  assert.equal(workerOf(ra), "w0");
  assert.notEqual(ra, rb, "a restarted worker's first receipt is not its predecessor's");
  assert.equal(a.keyOf(ra), 0);
  assert.equal(a.keyOf(rb), -1, "another incarnation's receipt is not this one's");
  assert.equal(a.keyOf(ra + "x"), -1);
  assert.equal(a.done(a.keyOf(ra)), 1);
});

test("settled receipts are remembered per custodian for the window, whatever their shape", { timeout: 5000 }, () => {
  const r = new Receipts(1000, 100);
  r.add("w0.ab_7", 10);
  r.add("w1.ab_7", 20, true);
  r.add("w0.07", 30);
  r.add("odd", 40);
  assert.ok(r.has("w0.ab_7") && r.has("w1.ab_7") && r.has("w0.07") && r.has("odd"));
  assert.ok(!r.has("w0.ab_8") && !r.has("w0.7") && !r.has("w2.ab_7"), "same number, another custodian or shape: not seen");
  assert.ok(r.isTaken("w1.ab_7") && !r.isTaken("w0.ab_7"));
  r.add("w1.ab_7", 500);
  assert.ok(!r.isTaken("w1.ab_7"), "taken, then settled");
  assert.equal(r.size, 4);
  r.forget("w0.07");
  assert.ok(!r.has("w0.07"));
  r.expire(1015);
  assert.ok(!r.has("w0.ab_7") && r.has("w1.ab_7") && r.has("odd"), "expired by the time each was settled");
  r.expire(1600);
  assert.equal(r.size, 0);
  const full = new Receipts(1000, 3);
  full.add("w0.a_1", 1);
  full.add("w1.a_1", 2);
  full.add("w0.a_2", 3);
  full.add("w1.a_2", 4);
  assert.ok(!full.has("w0.a_1") && full.has("w1.a_1") && full.has("w0.a_2") && full.has("w1.a_2"), "full: the oldest goes");
});

test("a receipt's worker is read whole, whichever workers were read before (ids of one length, one a prefix of another)", { timeout: 5000 }, () => {
  for (const [receipt, worker] of [
    ["h-w1.ab_1", "h-w1"],
    ["h-w2.ab_1", "h-w2"],
    ["h-w1.ab_2", "h-w1"],
    ["h-w1x.ab_1", "h-w1x"],
    ["h-w.ab_1", "h-w"],
    ["a.b.c_1", "a.b"],
    [".x_1", ""],
    ["nodot", ""],
    ["", ""],
  ]) {
    assert.equal(workerOf(receipt), worker, receipt);
  }
  // More workers than it remembers: each still read right.
  for (let i = 0; i < 40; i++) assert.equal(workerOf(`h-w${i}.t_${i}`), `h-w${i}`);
  for (let i = 39; i >= 0; i--) assert.equal(workerOf(`h-w${i}.t_${i}`), `h-w${i}`);
});

test("confirmations go once per custodian and callback, by number behind the custodian's prefix, each gathering in lists of its own", { timeout: 5000 }, async () => {
  const sent: [string, string, number[], number[]][] = [];
  let published = 0;
  const c = new Confirmations(
    (w, prefix, taken, done) => sent.push([w, prefix, taken.map((t) => t[0]), done]),
    () => published++,
  );
  const r = new Receipts(1000, 1000);
  const of = (receipt: string) => [r.custodian(receipt)!, r.key] as const;
  const [w1, k1] = of("w1.a_1");
  c.done(w1, k1);
  c.done(...of("w2.a_1"));
  const [w1again, k2] = of("w1.a_2");
  assert.equal(w1again, w1, "one log per custodian");
  c.taken(w1again, [k2, "k", 3]);
  // The same worker restarted (another prefix): a custodian of its own.
  c.done(...of("w1.b_9"));
  await null;
  assert.deepEqual(sent, [
    ["w1", "w1.a_", [2], [1]],
    ["w2", "w2.a_", [], [1]],
    ["w1", "w1.b_", [], [9]],
  ]);
  assert.equal(published, 1);
  const first = sent[0][3];
  c.done(...of("w2.a_2"));
  await null;
  assert.deepEqual(sent.slice(3), [["w2", "w2.a_", [], [2]]], "a custodian with nothing this time gets no message");
  assert.deepEqual(first, [1], "a list sent before is never written again");
  assert.equal(published, 2);
  // Many custodians over time (workers that came and went): each gathering still reaches its own.
  for (let i = 0; i < 100; i++) c.done(...of(`x${i}.a_1`));
  await null;
  assert.equal(sent.length, 104);
  assert.deepEqual(sent[103], ["x99", "x99.a_", [], [1]]);
  assert.equal(r.custodian("odd"), null, "a receipt that ends in no number has no custodian to tell");
});

test("confirmations that ride: none is published by the callback; they go at the bus's next publish, where one can still be withdrawn; one that does not ride sends them all at once", { timeout: 5000 }, async () => {
  const sent: [string, number[]][] = [];
  let published = 0;
  let handed = 0;
  const before: (() => void)[] = [];
  const c = new Confirmations(
    (w, _prefix, _taken, done) => sent.push([w, [...done]]),
    () => published++,
    (cb) => cb(),
    (cb) => before.push(cb),
    () => handed++,
  );
  assert.equal(c.canRide, true);
  const r = new Receipts(1000, 1000);
  const of = (receipt: string) => [r.custodian(receipt)!, r.key] as const;
  const [w1, k1] = of("w1.a_1");
  c.done(w1, k1, true);
  assert.equal(before.length, 1, "the bus is asked at once for its next publish (it then holds a batch before any flush)");
  const [, k2] = of("w1.a_2");
  c.done(w1, k2, true);
  assert.equal(before.length, 1, "once");
  await null;
  assert.equal(sent.length, 0, "nothing sent at the callback's end");
  assert.equal(published, 0, "nothing published");
  assert.equal(c.withdraw(w1, new Set([k2, 77])), 1, "the one gathered");
  assert.equal(c.withdraw(w1, new Set([k2])), 0, "withdrawn once");
  // The bus publishes: what rode goes in it, without another publish.
  before.shift()!();
  assert.deepEqual(sent, [["w1", [1]]]);
  assert.equal(published, 0);
  assert.equal(handed, 1, "handed on: nothing can be withdrawn any more");
  assert.equal(c.withdraw(w1, new Set([k1])), 0);
  // One that rides and one that does not in the same callback: both go at its end, published at once.
  c.done(...of("w2.a_1"), true);
  c.done(...of("w1.a_3"));
  await null;
  assert.deepEqual(sent.slice(1), [["w2", [1]], ["w1", [3]]]);
  assert.equal(published, 1);
  // The publish it had asked for finds nothing left.
  before.shift()!();
  assert.equal(sent.length, 3);
  // Without a bus that publishes in batches nothing rides.
  const plain = new Confirmations((w, _p, _t, done) => sent.push([w, [...done]]), () => published++);
  assert.equal(plain.canRide, false);
  plain.done(...of("w3.a_1"), true);
  await null;
  assert.deepEqual(sent[sent.length - 1], ["w3", [1]] as [string, number[]]);
  assert.equal(published, 2);
});
