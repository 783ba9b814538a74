import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NatsBus, workerIdOf } from "../../../src/cluster/nats-bus.js";
import { BusWire } from "../../../src/cluster/wire.js";
import type { BusMessage } from "../../../src/cluster/bus.js";
import { ProxyDaemon } from "../../../src/proxy/proxy-daemon.js";
import { Envelope, Flag } from "../../../src/envelope/envelope.js";
import type { Envelope as Env } from "../../../src/envelope/envelope.js";
import { HAVE_NATS } from "../../nats.js";
import { waitUntil } from "../../helpers.js";
import { Counted, describeRec, natsForBlock, proxyOptions } from "./fixtures.js";

// Two hosts of NatsBus workers (host links within a host, NATS between): a message from a session on a-w0 to one on
// a-w1, whose records are kept on host b. a-w1's session takes it (it waits for its client's ack) and copies it to
// the keeper; a-w1 confirms to a-w0 that it took it, and a-w0 then lets its sender's count pass the message. A
// SIGKILL may fall between any two of a-w1's writes (a woken peer preempts the writer on a busy host), and the death
// of host a takes custodian and session together: the copy at the keeper is what survives, so it must be written
// before the confirmation (docs/architecture.md, "Resumption after a death", *Pinned*). A host link is written as a
// publish begins and NATS last: in one publish the confirmation went first (session 22).

const wire = new BusWire({});

/** The bus messages of one write (a host link's, or a NATS batch): each behind its u32 length. */
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

/** A resumable session that keeps what it is given until its client acknowledges it, copying it to its keeper, as XmppSession does. */
class Keeping extends Counted {
  written = 0;
  proxy: ProxyDaemon | null = null;
  override get confirmsLater(): boolean {
    return true;
  }
  override get keptCount(): number {
    return this.written;
  }
  override deliver(env: Env): boolean {
    this.got.push(env);
    this.written++;
    this.proxy!.records.replicate(this, this.written, `<message id='${env.id}'/>`, env.ref);
    return true;
  }
}

describe("a next hop's taken confirmation on its host goes behind the copy to a keeper on another host", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  const { url, buses, proxies } = natsForBlock();
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test("the keeper's copy is on the wire before the confirmation that lets the sender's count pass the message", { timeout: 15_000 }, async () => {
    const hosts = [
      ["10.0.0.1", 2],
      ["10.0.0.2", 1],
    ] as const;
    for (const [host, n] of hosts) {
      const dir = mkdtempSync(join(tmpdir(), "sb-copies-"));
      dirs.push(dir);
      for (let i = 0; i < n; i++) {
        buses.push(await NatsBus.connect({ servers: [url()], subject: "copies", heartbeatMs: 1000, vnodes: 64, workerId: workerIdOf(host, i), hostAddress: host, links: { dir, index: i, maxQueuedBytes: 1 << 20 } }, {}));
      }
    }
    await Promise.all(buses.map((b) => b.ready(3)));
    await waitUntil(() => buses.every((b) => Object.values(b.membership().hosts).flat().length === 3), 5000, "all three members");
    for (const b of buses) {
      const p = new ProxyDaemon(b, proxyOptions());
      p.records.describer("xmpp", describeRec, (s) => (s as Counted).handled);
      p.start();
      proxies.push(p);
    }
    const [p0, p1, keeper] = proxies;
    await waitUntil(() => p0.records.keeperNow === keeper.workerId && p1.records.keeperNow === keeper.workerId, 3000, "both keep their records on host b");
    assert.ok(p1.records.pinning, "a-w1's keeper is on another host");
    const alice = new Counted("alice@localhost/phone", "A1");
    p0.attach(alice);
    p0.records.keep(alice);
    let to = "";
    for (let i = 0; to === ""; i++) if (p0.ownerOf(`u${i}@localhost`) === p1.workerId) to = `u${i}@localhost`;
    const bob = new Keeping(`${to}/pc`, "B1");
    bob.proxy = p1;
    p1.attach(bob);
    p1.records.keep(bob);
    await waitUntil(() => keeper.records.size === 2, 3000, "both records at the keeper");

    // What a-w1 writes from now on, write by write: its host links, and its NATS connection (each flush of what it published).
    const writes: { via: string; to: string; ops: BusMessage[] }[] = [];
    const b1 = buses[1] as unknown as {
      links: { write(peer: number, bytes: Uint8Array, messages: number): void };
      nc: { publish(subject: string, data?: Uint8Array): void; protocol: { flushPending(): void } };
    };
    const linkWrite = b1.links.write.bind(b1.links);
    b1.links.write = (peer, bytes, messages) => {
      writes.push({ via: "link", to: workerIdOf("10.0.0.1", peer), ops: messagesOf(bytes) });
      linkWrite(peer, bytes, messages);
    };
    let published: { to: string; ops: BusMessage[] }[] = [];
    const publish = b1.nc.publish.bind(b1.nc);
    b1.nc.publish = (subject, data) => {
      const inbox = "copies.w.";
      if (subject.startsWith(inbox) && data !== undefined) published.push({ to: subject.slice(inbox.length), ops: messagesOf(data) });
      publish(subject, data);
    };
    const protocol = b1.nc.protocol;
    const flushPending = protocol.flushPending.bind(protocol);
    protocol.flushPending = () => {
      for (const p of published) writes.push({ via: "nats", ...p });
      published = [];
      flushPending();
    };

    p0.submit(alice, Envelope.message({ from: alice.address, to, protocol: "xmpp", payload: null, flags: Flag.Offline, id: "m1" }));
    await waitUntil(() => bob.got.length === 1 && p0.custody.size === 1 && writes.some((w) => w.ops.some((m) => m.op === "confirm")), 3000, "taken by bob, confirmed to a-w0");

    const copy = writes.findIndex((w) => w.via === "nats" && w.to === keeper.workerId && w.ops.some((m) => m.op === "records" && m.held.some(([key, n, text]) => key === "B1" && n === 1 && text.includes("m1"))));
    const confirm = writes.findIndex((w) => w.via === "link" && w.to === p0.workerId && w.ops.some((m) => m.op === "confirm" && m.taken.length === 1));
    const seen = JSON.stringify(writes.map((w) => [w.via, w.to, w.ops.map((m) => m.op)]));
    assert.ok(copy >= 0 && confirm >= 0, `both written: ${seen}`);
    assert.ok(copy < confirm, `the copy to the keeper first, then the confirmation: ${seen}`);
  });
});
