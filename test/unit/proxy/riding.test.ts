import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { defaults } from "../../../src/config/config.js";
import { NatsBus } from "../../../src/cluster/nats-bus.js";
import { ProxyDaemon } from "../../../src/proxy/proxy-daemon.js";
import { Router } from "../../../src/router/router.js";
import { Envelope, Flag } from "../../../src/envelope/envelope.js";
import { HAVE_NATS } from "../../nats.js";
import { waitUntil } from "../../helpers.js";
import { natsForBlock, proxyOptions, Recorder, textCodec } from "./fixtures.js";

// docs/architecture.md, "Riding confirmations": two workers on two hosts over a real nats-server. A message held in
// custody on A is delivered on B to a session that confirms at once (no XEP-0198) and whose output waits for B's
// bus batch: the confirmation rides that batch. When the batch goes out a heartbeat late (B's loop held in the
// window, as a SIGSTOP would), B takes the delivery back before anything is written — output cut, confirmation
// withdrawn, receipt and the session's note of it forgotten — and A's custody, which never heard of it, routes it
// again: written once.

/**
 * A session without stream management whose output, as a connection's turn output, waits for the bus's publish.
 * It keeps what it was given by sender and id, as an XMPP session does (Session.recent): the copy routed again
 * comes marked Flag.Resent, and must not be dropped as one it had.
 */
class Plain extends Recorder {
  override get dropsResent(): boolean {
    return true;
  }
  held: string[] = [];
  readonly written: string[] = [];
  /** Called inside deliver (for the test to act between the delivery and the publish). */
  onDeliver: (body: string) => void = () => {};
  override deliver(env: Envelope): boolean {
    this.held.push(String(env.payload));
    this.onDeliver(String(env.payload));
    return true;
  }
  override outputMark(): number {
    return this.held.length;
  }
  override cutOutput(from: number, to: number): boolean {
    if (to > this.held.length) return false;
    this.held.splice(from, to - from);
    return true;
  }
  /** The publish went: what was held is written. */
  published(): void {
    this.written.push(...this.held);
    this.held = [];
  }
}

describe("confirmations that ride a bus batch", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  const { url, buses, proxies } = natsForBlock();
  const HEARTBEAT_MS = 100;

  /**
   * Worker A (host a, publishing at each turn's end) and worker B (host b, a 5 ms window, so its confirmations ride),
   * their proxies started; alice's session on A and bob's, whose output is written after each of B's publishes (as
   * the composition root does: server.ts), on B; both bound.
   */
  async function twoHosts(subject: string, opts: ReturnType<typeof proxyOptions>) {
    const connect = (id: string, host: string, coalesceMs: number) => NatsBus.connect({ servers: [url()], subject, heartbeatMs: HEARTBEAT_MS, vnodes: 64, workerId: id, hostAddress: host, coalesceMs }, { xmpp: textCodec });
    const a = await connect("a-w0", "a", 0);
    const b = await connect("b-w0", "b", 5);
    buses.push(a, b);
    await b.ready(2);
    await waitUntil(() => Object.values(a.membership().hosts).flat().length === 2 && Object.values(b.membership().hosts).flat().length === 2, 3000, "both see both");
    const pa = new ProxyDaemon(a, opts);
    const pb = new ProxyDaemon(b, opts);
    proxies.push(pa, pb);
    for (const p of [pa, pb]) p.start();
    const ring = new Router(a.membership());
    let bobBare = "";
    for (let i = 0; bobBare === ""; i++) if (ring.ownerOf(`bob${i}@localhost`) === "b-w0") bobBare = `bob${i}@localhost`;
    let aliceBare = "";
    for (let i = 0; aliceBare === ""; i++) if (ring.ownerOf(`alice${i}@localhost`) === "a-w0") aliceBare = `alice${i}@localhost`;
    const alice = new Plain(`${aliceBare}/phone`);
    const bob = new Plain(`${bobBare}/desk`);
    b.afterPublish(() => bob.published());
    pa.attach(alice);
    pb.attach(bob);
    await waitUntil(() => bob.bound && alice.bound, 3000, "bound");
    return { a, b, pa, pb, alice, bob, bobBare };
  }

  test("ride the batch the output waits for; a batch a heartbeat late takes its deliveries back, and custody routes them again: written once", { timeout: 20_000 }, async () => {
    const opts = proxyOptions({ sweepIntervalMs: 20, maxPendingPerSession: 10, custody: { ...defaults().cluster.custody, confirmTimeoutMs: 1000, dedupWindowMs: 60_000 } });
    const { b, pa, pb, alice, bob, bobBare } = await twoHosts("riding", opts);
    assert.equal(b.ridesConfirmations, true, "a 5 ms window against a 100 ms heartbeat");
    let publishes = 0;
    b.afterPublish(() => publishes++);
    await waitUntil(() => pa.custody.size === 0, 3000, "nothing held");

    const send = (body: string) => pa.submit(alice, Envelope.message({ from: alice.address, to: bobBare, protocol: "xmpp", payload: body, flags: Flag.Offline, id: body }));
    // A normal delivery: held with the output, confirmed by the publish the output waits for.
    let heldAtDelivery = -1;
    let publishesAtDelivery = -1;
    let before = -1;
    bob.onDeliver = () => {
      before = publishes;
      // At the end of the delivering callback (microtasks, where a confirmation used to publish): nothing went yet.
      void Promise.resolve().then(() => Promise.resolve()).then(() => {
        heldAtDelivery = pa.custody.size;
        publishesAtDelivery = publishes;
      });
    };
    send("first");
    await waitUntil(() => bob.written.includes("first"), 3000, "the first message written");
    assert.equal(publishesAtDelivery, before, "the delivering callback published nothing: its confirmation rode the batch");
    assert.equal(heldAtDelivery, 1);
    await waitUntil(() => pa.custody.size === 0, 3000, "A heard the confirmation that rode B's batch");
    assert.equal(pb.stats.ridingVoided, 0);

    // A late batch: B's loop held past a heartbeat after the delivery and before its publish.
    bob.onDeliver = (body) => {
      if (body !== "late") return;
      queueMicrotask(() => {
        const until = performance.now() + 3.5 * HEARTBEAT_MS;
        while (performance.now() < until) {
          // held: the batch's publish waits, as under SIGSTOP
        }
      });
    };
    send("late");
    await waitUntil(() => pb.stats.ridingVoided === 1, 3000, "B took the late delivery back");
    assert.deepEqual(bob.written, ["first"], "nothing of it written from the late batch");
    assert.equal(bob.held.length, 0, "its output cut");
    assert.equal(pa.custody.size, 1, "A still holds it: no confirmation came");
    bob.onDeliver = () => {};
    // A routes it again after confirmTimeoutMs; B, its receipt forgotten, delivers it (not dropped as a duplicate).
    await waitUntil(() => bob.written.includes("late"), 5000, "the late message written after custody routed it again");
    await waitUntil(() => pa.custody.size === 0, 3000, "settled");
    assert.deepEqual(bob.written, ["first", "late"]);
    assert.equal(pb.stats.duplicates, 0);
  });

  test("a custody probe read behind a delivery whose confirmation rides is answered behind that confirmation", { timeout: 20_000 }, async () => {
    const { a, pa, alice, bob, bobBare } = await twoHosts("riding-probe", proxyOptions({ sweepIntervalMs: 20, maxPendingPerSession: 10 }));
    // What A reads from B, in order.
    const seen: string[] = [];
    const receive = pa.receive.bind(pa);
    pa.receive = (msg) => {
      if (msg.op === "confirm" || msg.op === "probed") seen.push(msg.op);
      receive(msg);
    };
    // In one turn, so in one batch: the message, then a probe behind it (as custody sends one at a timeout).
    pa.submit(alice, Envelope.message({ from: alice.address, to: bobBare, protocol: "xmpp", payload: "m", flags: Flag.Offline, id: "m" }));
    a.send("b-w0", { op: "probe", from: "a-w0", at: 42 });
    await waitUntil(() => seen.includes("probed"), 3000, "the probe answered");
    assert.ok(bob.written.includes("m"), "delivered, its confirmation riding B's batch");
    assert.deepEqual(seen, ["confirm", "probed"], "the answer behind the confirmation of what was read before the probe");
    await waitUntil(() => pa.custody.size === 0, 3000, "settled");
  });
});
