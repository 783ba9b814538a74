import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NatsBus } from "../../../src/cluster/nats-bus.js";
import { BusWire } from "../../../src/cluster/wire.js";
import type { BusMessage } from "../../../src/cluster/bus.js";
import { ProxyDaemon } from "../../../src/proxy/proxy-daemon.js";
import { Envelope, Flag } from "../../../src/envelope/envelope.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { waitUntil } from "../../helpers.js";
import { Counted, describeRec, proxyOptions } from "./fixtures.js";

// A resumable session's count at its record keeper, against what the stanzas it counts caused, on a real host
// of NatsBus workers with host links (docs/architecture.md, "Resumption after a death", *Counted*).

const wire = new BusWire({});

/** The bus messages of one write on a host link: each behind its u32 length. */
function messagesOf(bytes: Uint8Array): BusMessage[] {
  const out: BusMessage[] = [];
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at < b.length; ) {
    const len = b.readUInt32BE(at);
    out.push(wire.decode(b.subarray(at + 4, at + 4 + len)));
    at += 4 + len;
  }
  return out;
}

describe("resume-record counts on a host of NatsBus workers", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  let dir: string;
  const buses: NatsBus[] = [];
  const proxies: ProxyDaemon[] = [];
  before(async () => {
    nats = await startNats();
    dir = mkdtempSync(join(tmpdir(), "sb-counts-"));
  }, { timeout: 15_000 });
  after(async () => {
    for (const p of proxies) p.stop();
    for (const b of buses) await b.close();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }, { timeout: 15_000 });

  test("a count rides in the write that carries what its stanzas caused, and the keeper's write goes last: a death between two writes never leaves the keeper behind", { timeout: 15_000 }, async () => {
    const host = "10.0.0.9";
    const ids = [0, 1, 2].map((i) => `10_0_0_9-w${i}`);
    for (let i = 0; i < 3; i++) {
      buses.push(await NatsBus.connect({ servers: [nats.url], subject: "counts", heartbeatMs: 1000, vnodes: 64, workerId: ids[i], hostAddress: host, links: { dir, index: i, maxQueuedBytes: 1 << 20 } }, {}));
    }
    await Promise.all(buses.map((b) => b.ready(3)));
    await waitUntil(() => buses.every((b) => Object.values(b.membership().hosts).flat().length === 3), 5000, "all three members");
    for (const b of buses) {
      const p = new ProxyDaemon(b, proxyOptions());
      p.records.describer("xmpp", describeRec, (s) => (s as Counted).handled);
      p.start();
      proxies.push(p);
    }
    const p0 = proxies[0];
    const keeper = p0.records.keeperNow;
    const other = ids.find((w) => w !== keeper && w !== ids[0])!;
    assert.ok(keeper !== "" && keeper !== ids[0], "w0 keeps its records on another worker of the host");
    const s = new Counted("alice@localhost/phone", "K1");
    p0.attach(s);
    p0.records.keep(s);
    await waitUntil(() => proxies.find((p) => p.workerId === keeper)!.records.size === 1, 3000, "the record at its keeper");
    // The keeper's queue first in w0's order of peers (as when it is the first peer w0 ever sent to): written first, unless told.
    const outq = (buses[0] as unknown as { outq: Map<string, unknown> }).outq;
    const queues = [...outq].sort(([a], [b]) => (a === keeper ? -1 : b === keeper ? 1 : 0));
    outq.clear();
    for (const [w, q] of queues) outq.set(w, q);
    const userOf = (w: string) => {
      for (let i = 0; ; i++) if (p0.ownerOf(`u${i}@localhost`) === w) return `u${i}@localhost`;
    };

    // What w0 writes to each link from now on, write by write.
    const links = (buses[0] as unknown as { links: { write(peer: number, bytes: Uint8Array, messages: number): void } }).links;
    const writes: { to: string; ops: BusMessage[] }[] = [];
    const write = links.write.bind(links);
    links.write = (peer, bytes, messages) => {
      writes.push({ to: ids[peer], ops: messagesOf(bytes) });
      write(peer, bytes, messages);
    };
    // One turn: alice sends to a user the keeper owns and to one the third worker owns (both held in custody).
    s.handled = 2;
    p0.submit(s, Envelope.message({ from: s.address, to: userOf(keeper), protocol: "xmpp", payload: null, flags: Flag.Offline, id: "m1" }));
    p0.submit(s, Envelope.message({ from: s.address, to: userOf(other), protocol: "xmpp", payload: null, flags: Flag.Offline, id: "m2" }));
    await waitUntil(() => buses[0].pending === false, 2000, "the turn published");
    links.write = write;

    const carries = (w: { ops: BusMessage[] }, id: string) => w.ops.some((m) => m.op === "owner" && m.env.id === id);
    const counted = (m: BusMessage) => m.op === "records" && (m.counts.some(([k, n]) => k === "K1" && n === 2) || m.keep.some((r) => r.key === "K1" && r.count === 2));
    const counts = (w: { ops: BusMessage[] }) => w.ops.some(counted);
    const m1 = writes.findIndex((w) => carries(w, "m1"));
    const m2 = writes.findIndex((w) => carries(w, "m2"));
    const c = writes.findIndex(counts);
    assert.ok(m1 >= 0 && m2 >= 0 && c >= 0, `each went: ${JSON.stringify(writes.map((w) => [w.to, w.ops.map((m) => m.op)]))}`);
    // A SIGKILL may fall between any two writes (a woken peer often preempts the writer right after one):
    // the count must be in the very write of the message the keeper gets, and after the other peer's.
    assert.equal(c, m1, "the count in the same write as the message to the keeper");
    assert.equal(writes[c].to, keeper);
    assert.ok(m2 < c, "the keeper's write after the other peer's");
    const ops = writes[c].ops;
    assert.ok(ops.findIndex((m) => m.op === "owner") < ops.findIndex(counted), "behind the message in that write");
  });
});
