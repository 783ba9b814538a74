import { test } from "node:test";
import assert from "node:assert/strict";
import { setImmediate as turn } from "node:timers/promises";
import { LocalHub, type LocalBus } from "../../../src/cluster/local-bus.js";
import type { BusMessage } from "../../../src/cluster/bus.js";
import { ProxyDaemon } from "../../../src/proxy/proxy-daemon.js";
import { Envelope, Flag } from "../../../src/envelope/envelope.js";
import type { Recalled } from "../../../src/session/resume-record.js";
import { Counted, describeRec, proxyOptions, Recorder } from "./fixtures.js";

// A resumable session's count at its keeper on another host, against a message it sent to another worker of its own
// host (docs/architecture.md, "Resumption after a death", *Pinned*; issue 14's kill-host loss of session 19): the
// count must not cover the message until that worker took it, or a death of the whole host — the message's custodian
// and its next hop together — leaves nothing that holds it, and the client, resumed from the count, never sends it again.

/**
 * Workers "<host>-w<i>" on a local hub. What one worker sends another can be kept back (`keepBack`): written to the
 * link, not yet read (`release` reads it). By default what a-w0 sends a-w1 about a user's messages (op owner).
 */
function world(hosts: Record<string, number>) {
  const hub = new LocalHub(64);
  const buses: LocalBus[] = [];
  for (const [h, n] of Object.entries(hosts)) for (let i = 0; i < n; i++) buses.push(hub.join(`${h}-w${i}`, h));
  const inFlight: [string, BusMessage][] = [];
  let held: ((from: string, to: string, msg: BusMessage) => boolean) | null = null;
  for (const b of buses) {
    const send = b.send.bind(b);
    b.send = (to, msg) => {
      if (held !== null && held(b.workerId, to, msg)) inFlight.push([to, msg]);
      else send(to, msg);
    };
  }
  const proxies = new Map(buses.map((b) => [b.workerId, new ProxyDaemon(b, proxyOptions({ sweepIntervalMs: 20 }))]));
  for (const p of proxies.values()) {
    p.records.describer("xmpp", describeRec, (s) => (s as Counted).handled);
    p.start();
  }
  return {
    p: (id: string) => proxies.get(id)!,
    keepBack(on: boolean, which = (from: string, to: string, msg: BusMessage) => from === "a-w0" && to === "a-w1" && msg.op === "owner") {
      held = on ? which : null;
    },
    /** What was kept back is read. */
    release() {
      for (const [to, m] of inFlight.splice(0)) proxies.get(to)?.receive(m);
    },
    /** SIGKILL: nothing more from it, and the others see it leave. */
    kill(id: string) {
      proxies.get(id)!.stop();
      proxies.delete(id);
      hub.leave(id);
    },
    stop() {
      for (const p of proxies.values()) p.stop();
    },
  };
}

/** A user whose owner, by `p`'s ring, is `worker`. */
function ownedBy(p: ProxyDaemon, worker: string): string {
  for (let i = 0; i < 10_000; i++) if (p.ownerOf(`u${i}@localhost`) === worker) return `u${i}@localhost`;
  throw new Error(`no user owned by ${worker}`);
}

function recall(p: ProxyDaemon, key: string, user: string, h = 0): Promise<Recalled | null> {
  return new Promise((resolve) => p.records.recall("xmpp", key, user, h, resolve));
}

/** `s` reads a chat message to `to` (its count moves first, as XEP-0198 counts a stanza before handling it). */
function send(p: ProxyDaemon, s: Counted, to: string, id: string): void {
  s.handled++;
  p.submit(s, Envelope.message({ from: s.address, to, protocol: "xmpp", payload: null, flags: Flag.Offline, id }));
}

test("a message held for another worker of the host: the keeper's count stays below it until that worker takes it, and a host's death leaves the client to send it again (kill-host)", { timeout: 5000 }, async () => {
  const w = world({ a: 2, b: 1 });
  await turn();
  const p0 = w.p("a-w0");
  assert.equal(p0.records.keeperNow, "b-w0", "the keeper on the other host");
  const s = new Counted("alice@localhost/phone", "P1");
  p0.attach(s);
  p0.records.keep(s);
  const to = ownedBy(p0, "a-w1");
  // Before: a message that a-w1 takes at once is counted as ever.
  send(p0, s, to, "m1");
  for (let i = 0; i < 3; i++) await turn();
  // The host link is written, a-w1 has not read it yet.
  w.keepBack(true);
  send(p0, s, to, "m2");
  send(p0, s, to, "m3");
  for (let i = 0; i < 3; i++) await turn();
  // The whole host a dies now: the keeper's count is what the client is told when it resumes on host b.
  w.kill("a-w0");
  w.kill("a-w1");
  const found = await recall(w.p("b-w0"), "P1", "alice");
  assert.equal(found?.holder, "", "its holder is gone");
  assert.equal(found?.record.count, 1, "m2 and m3 died with their custodian and their next hop: the client sends them again");
  w.stop();
});

test("the count, and the client's <a/>, pass the message once its next hop on the host took it", { timeout: 5000 }, async () => {
  const w = world({ a: 2, b: 1 });
  await turn();
  const p0 = w.p("a-w0");
  const keeper = w.p("b-w0");
  const s = new Counted("alice@localhost/phone", "P2");
  p0.attach(s);
  p0.records.keep(s);
  const to = ownedBy(p0, "a-w1");
  const bob = new Recorder(`${to}/pc`);
  w.p("a-w1").attach(bob);
  for (let i = 0; i < 3; i++) await turn();
  const kept = async () => (await recall(keeper, "P2", "alice"))?.record.count;
  w.keepBack(true);
  send(p0, s, to, "m1");
  send(p0, s, to, "m2");
  const answered: number[] = [];
  // countedNow (the answer's fast path, no callback) agrees with whenCounted at every step.
  assert.equal(p0.records.countedNow(s, 2), false);
  p0.records.whenCounted(s, 2, () => answered.push(2));
  for (let i = 0; i < 3; i++) await turn();
  assert.equal(p0.records.countedNow(s, 2), false);
  assert.equal(await kept(), 0);
  assert.equal(answered.length, 0, "no <a/> that covers what the keeper's count does not");
  // Another answer behind it waits too, in order (even one that covers nothing pinned).
  assert.equal(p0.records.countedNow(s, 0), false);
  p0.records.whenCounted(s, 2, () => answered.push(22));
  w.release();
  for (let i = 0; i < 3; i++) await turn();
  assert.deepEqual(bob.got.map((e) => e.id), ["m1", "m2"]);
  assert.equal(await kept(), 2, "taken: counted");
  assert.deepEqual(answered, [2, 22], "and answered, in order");
  // Taken, the next message is answered as before (no pin waits).
  w.keepBack(false);
  send(p0, s, to, "m3");
  for (let i = 0; i < 3; i++) await turn();
  assert.equal(p0.records.countedNow(s, 3), true);
  p0.records.whenCounted(s, 3, () => answered.push(3));
  assert.deepEqual(answered, [2, 22, 3]);
  assert.equal(await kept(), 3);
  w.stop();
});

test("nothing is pinned where a host's death takes the keeper too, nor for a next hop on another host", { timeout: 5000 }, async () => {
  // One host: the keeper is another worker of it.
  const one = world({ a: 3 });
  await turn();
  const p0 = one.p("a-w0");
  assert.equal(p0.records.pinning, false);
  const s = new Counted("alice@localhost/phone", "P3");
  p0.attach(s);
  p0.records.keep(s);
  one.keepBack(true);
  send(p0, s, ownedBy(p0, "a-w1"), "m1");
  let answered = false;
  assert.equal(p0.records.countedNow(s, 1), true);
  p0.records.whenCounted(s, 1, () => (answered = true));
  assert.equal(answered, true, "answered at once (nothing waits on the local bus)");
  for (let i = 0; i < 3; i++) await turn();
  const keeper = one.p(p0.records.keeperNow);
  assert.equal((await recall(keeper, "P3", "alice"))?.record.count, 1);
  one.stop();
  // Two hosts, the message's owner on the other one: the bus carried it off this host before the count.
  const two = world({ a: 2, b: 2 });
  await turn();
  const q0 = two.p("a-w0");
  assert.equal(q0.records.pinning, true);
  const t = new Counted("bob@localhost/phone", "P4");
  q0.attach(t);
  q0.records.keep(t);
  two.keepBack(true);
  send(q0, t, ownedBy(q0, "b-w1"), "m1");
  for (let i = 0; i < 3; i++) await turn();
  assert.equal((await recall(two.p(q0.records.keeperNow), "P4", "bob"))?.record.count, 1);
  two.stop();
});

test("the keeper comes to this host (the other host left): what was pinned is counted, and its answers go", { timeout: 5000 }, async () => {
  const w = world({ a: 3, b: 1 });
  await turn();
  const p0 = w.p("a-w0");
  const s = new Counted("alice@localhost/phone", "P5");
  p0.attach(s);
  p0.records.keep(s);
  w.keepBack(true);
  send(p0, s, ownedBy(p0, "a-w1"), "m1");
  let answered = false;
  p0.records.whenCounted(s, 1, () => (answered = true));
  for (let i = 0; i < 3; i++) await turn();
  assert.equal(answered, false);
  w.kill("b-w0");
  assert.equal(p0.records.pinning, false);
  assert.equal(answered, true);
  for (let i = 0; i < 3; i++) await turn();
  assert.equal((await recall(w.p(p0.records.keeperNow), "P5", "alice"))?.record.count, 1);
  w.stop();
});

test("an owner on another host passing a held message to a session on another worker of the sender's host holds it: that host's death takes custodian and session together, and the owner routes it again", { timeout: 5000 }, async () => {
  const w = world({ a: 2, b: 1 });
  await turn();
  const p0 = w.p("a-w0");
  const owner = w.p("b-w0");
  const to = ownedBy(p0, "b-w0");
  // The recipient's session is on a-w1, the sender's worker a-w0: both on host a.
  const bob = new Recorder(`${to}/pc`);
  w.p("a-w1").attach(bob);
  const alice = new Recorder("alice@localhost/phone");
  p0.attach(alice);
  for (let i = 0; i < 3; i++) await turn();
  // b-w0 passes it to a-w1; a-w1 has not read it when host a dies.
  w.keepBack(true, (from, dest, msg) => from === "b-w0" && dest === "a-w1" && msg.op === "session");
  p0.submit(alice, Envelope.message({ from: alice.address, to, protocol: "xmpp", payload: null, flags: Flag.Offline, id: "m1" }));
  for (let i = 0; i < 3; i++) await turn();
  assert.equal(p0.custody.size, 0, "its first custodian let it go");
  assert.equal(owner.custody.size, 1, "the owner holds it now");
  w.kill("a-w0");
  w.kill("a-w1");
  // The user comes back on host b; the owner routes the message again (after a heartbeat's wait), to it.
  const again = new Recorder(`${to}/pc`);
  owner.attach(again);
  owner.custody.expire(performance.now() + 60_000);
  for (let i = 0; i < 3; i++) await turn();
  assert.deepEqual(again.got.map((e) => e.id), ["m1"], "routed again to the user, not lost with host a");
  w.stop();
});

/** A session whose protocol's clients send again after resuming (XMPP): the core keeps its last messages (Session.recent). */
class Resumer extends Recorder {
  override get dropsResent(): boolean {
    return true;
  }
}

test("the pins' duplicate window: the next hop took it and host a died before its sender's worker heard so; sent again from the resumed client (Flag.Resent), it is dropped where it was delivered, and settled", { timeout: 5000 }, async () => {
  const w = world({ a: 2, b: 1 });
  await turn();
  const p0 = w.p("a-w0");
  const b0 = w.p("b-w0");
  const alice = new Counted("alice@localhost/phone", "P6");
  p0.attach(alice);
  p0.records.keep(alice);
  // Its owner a-w1 (on the sender's host: pinned), its session on host b.
  const to = ownedBy(p0, "a-w1");
  const bob = new Resumer(`${to}/pc`);
  b0.attach(bob);
  for (let i = 0; i < 3; i++) await turn();
  // What host b says to a-w0 (the taken confirmation) does not arrive before host a dies.
  w.keepBack(true, (from, dest) => from === "b-w0" && dest === "a-w0");
  send(p0, alice, to, "m1");
  for (let i = 0; i < 3; i++) await turn();
  assert.deepEqual(bob.got.map((e) => e.id), ["m1"]);
  w.kill("a-w0");
  w.kill("a-w1");
  const found = await recall(b0, "P6", "alice");
  assert.equal(found?.record.count, 0, "the count stayed below m1: the client sends it again");
  // Alice resumes on host b and sends again what the count did not cover, marked; then a new message with the same
  // id unmarked (a client that reuses ids is not second-guessed) and a marked one it had not sent before.
  const again = new Counted("alice@localhost/phone", "P6");
  b0.attach(again);
  for (let i = 0; i < 3; i++) await turn();
  const resend = (id: string, flags: number) => b0.submit(again, Envelope.message({ from: again.address, to, protocol: "xmpp", payload: null, flags: Flag.Offline | flags, id }));
  resend("m1", Flag.Resent);
  for (let i = 0; i < 3; i++) await turn();
  assert.deepEqual(bob.got.map((e) => e.id), ["m1"], "delivered once");
  assert.equal(b0.stats.resentDropped, 1);
  assert.equal(b0.custody.size, 0, "the dropped copy's receipt is settled, not routed again");
  resend("m2", Flag.Resent);
  resend("m1", 0);
  for (let i = 0; i < 3; i++) await turn();
  assert.deepEqual(bob.got.map((e) => e.id), ["m1", "m2", "m1"]);
  w.stop();
});
