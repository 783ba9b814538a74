import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { defaults } from "../../../src/config/config.js";
import { NatsBus } from "../../../src/cluster/nats-bus.js";
import { ProxyDaemon, type ProxyOptions } from "../../../src/proxy/proxy-daemon.js";
import { Router } from "../../../src/router/router.js";
import { Session } from "../../../src/session/session.js";
import { Envelope, Flag } from "../../../src/envelope/envelope.js";
import { HAVE_NATS } from "../../nats.js";
import { waitUntil } from "../../helpers.js";
import { natsForBlock, textCodec } from "./fixtures.js";

// docs/architecture.md, "What it had gathered before the stop": two workers on two hosts over a real nats-server.
// A resumable session on A sends a message to a user owned by B; A's event loop is then held past the heal window
// before the turn's publish (as a SIGSTOP between the two would). The batch goes marked: B drops the held message,
// A's custody forgets it instead of routing it again, and the session counts the stanza no more and drops its
// connection, so that its client, resumed anywhere, sends it again: delivered once. A message sent in a normal
// turn is delivered as always.

class Resumable extends Session {
  readonly protocol = "xmpp";
  readonly idPassThrough = true;
  handled = 0;
  readonly got: string[] = [];
  /** What stalledBack was told: the count to go back to. */
  back: number[] = [];
  constructor(address: string, readonly key: string) {
    super();
    this.address = address;
    this.bare = address.slice(0, address.indexOf("/"));
    this.resource = address.slice(address.indexOf("/") + 1);
    this.available = true;
    this.keepKey = `x\u0000${key}`;
  }
  deliver(env: Envelope): boolean {
    this.got.push(String(env.payload));
    return true;
  }
  replaced(): void {}
  override stalledBack(count: number): boolean {
    this.back.push(count);
    this.handled = count;
    return true;
  }
}


describe("a bus batch gathered before a stall", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  const { url, buses, proxies } = natsForBlock();
  const HEARTBEAT_MS = 100;

  for (const coalesceMs of [0, 400]) {
  test(`its held messages are dropped where they arrive, voided where they were sent, and counted no more (coalesceMs ${coalesceMs})`, { timeout: 15_000 }, async () => {
    const opts: ProxyOptions = {
      timeouts: { xmpp: { defaultMs: 30000, minMs: 1000, maxMs: 300000 } },
      sweepIntervalMs: 20,
      maxPendingPerSession: 10,
      maxInboundPerSession: 100,
      // Nothing routed again by time within this test: a copy that arrived would be the batch's own.
      // With coalesceMs: the stale turn's batch waits for the bus's timer, and the sweep (every 20 ms) falls due
      // first after the stall: with a confirm timeout shorter than the stall, custody would route it again there
      // (a second copy next to the client's own) unless the sweep publishes the held batch first.
      custody: { ...defaults().cluster.custody, confirmTimeoutMs: coalesceMs > 0 ? 100 : 60_000, dedupWindowMs: 60_000 },
    };
    const connect = (id: string, host: string) => NatsBus.connect({ servers: [url()], subject: `stalebatch${coalesceMs}`, heartbeatMs: HEARTBEAT_MS, vnodes: 64, workerId: id, hostAddress: host, coalesceMs: id.startsWith("a") ? coalesceMs : 0 }, { xmpp: textCodec });
    const a = await connect("a-w0", "a");
    const b = await connect("b-w0", "b");
    buses.push(a, b);
    await b.ready(2);
    await waitUntil(() => Object.values(a.membership().hosts).flat().length === 2 && Object.values(b.membership().hosts).flat().length === 2, 3000, "both see both");
    const pa = new ProxyDaemon(a, opts);
    const pb = new ProxyDaemon(b, opts);
    proxies.push(pa, pb);
    for (const p of [pa, pb]) {
      p.records.describer("xmpp", (s) => ({ protocol: "xmpp", key: (s as Resumable).key, user: "alice", address: s.address, count: 0, windowMs: 5000, state: {} }), (s) => (s as Resumable).handled);
      p.start();
    }
    const ring = new Router(a.membership());
    let bobBare = "";
    for (let i = 0; bobBare === ""; i++) if (ring.ownerOf(`bob${i}@localhost`) === "b-w0") bobBare = `bob${i}@localhost`;
    let aliceBare = "";
    for (let i = 0; aliceBare === ""; i++) if (ring.ownerOf(`alice${i}@localhost`) === "a-w0") aliceBare = `alice${i}@localhost`;
    const alice = new Resumable(`${aliceBare}/phone`, "KA");
    const bob = new Resumable(`${bobBare}/desk`, "KB");
    pa.attach(alice);
    pb.attach(bob);
    pa.records.keep(alice);
    await waitUntil(() => bob.bound && alice.bound, 3000, "bound");
    await new Promise((r) => setTimeout(r, 50));

    const send = (body: string) => {
      alice.handled++;
      pa.submit(alice, Envelope.message({ from: alice.address, to: bobBare, protocol: "xmpp", payload: body, flags: Flag.Offline, id: body }));
    };
    send("normal");
    await waitUntil(() => bob.got.includes("normal"), 3000, "the normal turn's message");
    // Its count went to the keeper behind the publish: 1.
    await new Promise((r) => setTimeout(r, 50));

    send("stale");
    assert.equal(a.coalescing, coalesceMs > 0, "the stale turn's batch held for the window");
    const until = performance.now() + 3 * HEARTBEAT_MS + 50;
    while (performance.now() < until) {
      // held: the turn's publish waits, as under SIGSTOP
    }
    // (In one process B's event loop was held too, and its own late sweep would drop it as well: that the batch goes
    // marked is nats-bus-stale.test.ts's; here, what A does.)
    await waitUntil(() => pb.stats.staleDropped >= 1, 3000, "b dropped the stale batch's held message");
    assert.deepEqual(alice.back, [1], "alice counts the stale stanza no more: back to the count its keeper has");
    assert.equal(alice.handled, 1);
    assert.equal(pa.custody.voided, 1, "custody forgot it");
    assert.equal(pa.custody.size, 0, "nothing left to route again");
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(bob.got, ["normal"], "not delivered from the stale batch");

    // The client sends it again (from wherever it resumed): delivered once. (After B's own heal window.)
    await new Promise((r) => setTimeout(r, 4 * HEARTBEAT_MS));
    send("stale");
    await waitUntil(() => bob.got.length === 2, 3000, "the client's second copy");
    assert.deepEqual(bob.got, ["normal", "stale"]);
  });
  }
});
