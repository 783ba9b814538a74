import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import { performance } from "node:perf_hooks";
import { createServer, type Socket } from "node:net";
import { Writable } from "node:stream";
import winston from "winston";
import { HostLinks } from "../../../src/cluster/host-links.js";
import { busBeforeClientWrites } from "../../../src/server/server.js";
import { NatsBus, type NatsBusOptions } from "../../../src/cluster/nats-bus.js";
import type { BusMessage } from "../../../src/cluster/bus.js";
import { BusWire } from "../../../src/cluster/wire.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { waitUntil } from "../../helpers.js";

// The host's direct links (src/cluster/host-links.ts) on real Unix domain sockets.

const wire = new BusWire({});
const frameBytes = (b: Uint8Array): Buffer => {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
};

const frame = (body: string): Buffer => {
  const b = Buffer.from(body);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
};

describe("HostLinks", () => {
  const dirs: string[] = [];
  const links: HostLinks[] = [];
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), "sb-links-test-"));
    dirs.push(d);
    return d;
  };
  const make = (d: string, index: number, got: string[], lost: number[] = [], maxQueuedBytes = 1 << 20) => {
    const l = new HostLinks({ dir: d, index, maxQueuedBytes }, (m, start, end) => got.push(Buffer.from(m.subarray(start, end)).toString()), (i) => lost.push(i), null);
    links.push(l);
    return l;
  };
  after(() => {
    for (const l of links) l.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test("reset: a link to a peer's earlier process goes, and the next write reaches the new one", { timeout: 5000 }, async () => {
    const d = dir();
    // The earlier process's socket as a cluster primary held it after a SIGKILL: it accepts and never reads.
    const held: Socket[] = [];
    const stale = createServer((s) => held.push(s));
    await new Promise<void>((r) => stale.listen(HostLinks.pathOf(d, 1), r));
    const a = make(d, 0, []);
    a.write(1, frame("to the dead one"), 1);
    await waitUntil(() => held.length === 1, 3000, () => "the stale listener's accept");
    stale.close();
    try {
      const got: string[] = [];
      const b = make(d, 1, got);
      await b.listen();
      // Without the reset this would go into the held connection: nobody reads it, and no error says so.
      a.reset(1);
      a.write(1, frame("to the new one"), 1);
      await waitUntil(() => got.length === 1, 3000, () => `${got.length} arrived at the new process`);
      assert.deepEqual(got, ["to the new one"]);
    } finally {
      for (const s of held) s.destroy();
    }
  });

  test("messages arrive whole and in order, however the stream is cut", { timeout: 5000 }, async () => {
    const d = dir();
    const got: string[] = [];
    const b = make(d, 1, got);
    await b.listen();
    const a = make(d, 0, []);
    const want = Array.from({ length: 300 }, (_, i) => `m${i}:${"x".repeat(i * 7)}`);
    const bytes = Buffer.concat(want.map(frame));
    // One message at a time, and one byte at a time: a length or a body split across reads.
    for (let at = 0; at < 200; at++) a.write(1, bytes.subarray(at, at + 1), 0);
    a.write(1, bytes.subarray(200), want.length);
    await waitUntil(() => got.length === want.length, 3000, () => `${got.length} of ${want.length}`);
    assert.deepEqual(got, want);
  });

  test("what a message's reader keeps of it (a view, not a copy) stays as it was while later reads come", { timeout: 10_000 }, async () => {
    const d = dir();
    const views: Buffer[] = [];
    const b = new HostLinks({ dir: d, index: 1, maxQueuedBytes: 1 << 20 }, (m, start, end) => views.push(Buffer.from(m.buffer, m.byteOffset + start, end - start)), () => {}, null);
    links.push(b);
    await b.listen();
    const a = make(d, 0, []);
    // Enough for many reads and several slabs, a write per turn so that reads are many.
    const want = Array.from({ length: 2000 }, (_, i) => `m${i}:${String.fromCharCode(97 + (i % 26)).repeat(i % 300)}`);
    for (let i = 0; i < want.length; i += 20) {
      a.write(1, Buffer.concat(want.slice(i, i + 20).map(frame)), 20);
      await new Promise((r) => setImmediate(r));
    }
    await waitUntil(() => views.length === want.length, 5000, () => `${views.length} of ${want.length}`);
    // Read now, after every later read: a link that read into one reused buffer would have overwritten them.
    assert.deepEqual(views.map((v) => v.toString()), want);
  });

  test("an inbound link whose peer closes is let go, read into its slab or not", { timeout: 10_000 }, async () => {
    const d = dir();
    const got: string[] = [];
    const b = make(d, 1, got);
    await b.listen();
    const inbound = (b as unknown as { inbound: Set<unknown> }).inbound;
    for (let round = 0; round < 3; round++) {
      const a = make(d, 0, []);
      a.write(1, frame(`r${round}`), 1);
      await waitUntil(() => got.length === round + 1 && inbound.size === 1, 3000, () => `round ${round}: ${got.length} arrived, ${inbound.size} inbound`);
      // Its end reaches a socket that emits no 'data' (reads go to the slab): 'end' and 'close' still come.
      a.close();
      await waitUntil(() => inbound.size === 0, 3000, () => `round ${round}: ${inbound.size} inbound after the peer closed`);
    }
    assert.deepEqual(got, ["r0", "r1", "r2"]);
  });

  test("a peer not listening costs only what was sent to it; once it listens, the next messages arrive", { timeout: 5000 }, async () => {
    const d = dir();
    // The link says at debug level when its connection fails: that is the moment to start the peer.
    const said: string[] = [];
    const sink = new Writable({ objectMode: true, write: (info: { message: string }, _e, cb) => (said.push(info.message), cb()) });
    const log = winston.createLogger({ level: "debug", transports: [new winston.transports.Stream({ stream: sink })] });
    const a = new HostLinks({ dir: d, index: 0, maxQueuedBytes: 1 << 20 }, () => {}, () => {}, log);
    links.push(a);
    a.write(1, frame("lost"), 1);
    await waitUntil(() => said.includes("cluster host link failed"), 3000, "the failed connection to the absent peer");
    const got: string[] = [];
    const b = make(d, 1, got);
    await b.listen();
    a.write(1, frame("after"), 1);
    await waitUntil(() => got.length === 1, 3000, "the message after the peer listens");
    assert.deepEqual(got, ["after"]);
  });

  test("a restarted peer (its socket file replaced) gets what is sent after it", { timeout: 5000 }, async () => {
    const d = dir();
    const first: string[] = [];
    const b1 = make(d, 1, first);
    await b1.listen();
    const a = make(d, 0, []);
    a.write(1, frame("one"), 1);
    await waitUntil(() => first.length === 1, 3000, "first");
    b1.close();
    const second: string[] = [];
    const b2 = make(d, 1, second);
    await b2.listen();
    // The old connection ends; the next write connects to the new listener.
    await waitUntil(
      () => {
        a.write(1, frame("two"), 1);
        return second.length > 0;
      },
      3000,
      "a message at the new peer",
      50,
    );
    assert.equal(second[0], "two");
  });

  test("a peer that does not read: the link is dropped past maxQueuedBytes and its owner told", { timeout: 10_000 }, async () => {
    const d = dir();
    // A listener that accepts and never reads.
    const { createServer } = await import("node:net");
    const held: import("node:net").Socket[] = [];
    const srv = createServer((s) => {
      s.pause();
      held.push(s);
    });
    await new Promise<void>((r) => srv.listen(HostLinks.pathOf(d, 1), r));
    const lost: number[] = [];
    const a = make(d, 0, [], lost, 256 * 1024);
    const big = frame("y".repeat(64 * 1024));
    for (let i = 0; i < 200 && lost.length === 0; i++) {
      a.write(1, big, 1);
      await new Promise((r) => setImmediate(r));
    }
    await waitUntil(() => lost.length === 1, 3000, "onLost");
    assert.deepEqual(lost, [1]);
    assert.equal(a.dropped, 1);
    for (const s of held) s.destroy();
    srv.close();
  });
  /** A listener at peer 1's path that accepts one link and does not read until `resume`; what it reads, as frames. */
  async function slowPeer(d: string) {
    const { createServer } = await import("node:net");
    const got: string[] = [];
    let sock: import("node:net").Socket | null = null;
    let rest = Buffer.alloc(0);
    const srv = createServer((s) => {
      sock = s;
      s.pause();
      s.on("data", (c: Buffer) => {
        rest = Buffer.concat([rest, c]);
        while (rest.length >= 4 && rest.length - 4 >= rest.readUInt32BE(0)) {
          const len = rest.readUInt32BE(0);
          got.push(rest.subarray(4, 4 + len).toString());
          rest = rest.subarray(4 + len);
        }
      });
    });
    await new Promise<void>((r) => srv.listen(HostLinks.pathOf(d, 1), r));
    return { got, resume: () => sock?.resume(), close: () => (sock?.destroy(), srv.close()) };
  }

  test("flow control: a peer that reads late is waited for, past maxQueuedBytes; everything arrives, in order", { timeout: 10_000 }, async () => {
    const d = dir();
    const peer = await slowPeer(d);
    const lost: number[] = [];
    const l = new HostLinks({ dir: d, index: 0, maxQueuedBytes: 1024 * 1024, stallMs: 5000 }, () => {}, (i) => lost.push(i), null);
    links.push(l);
    // 2 MiB to a socket that does not read: the kernel's buffer fills, the writer waits, the queue passes the
    // bound (1 MiB), below HARD_FACTOR times it.
    const want = Array.from({ length: 64 }, (_, i) => `m${i}:${"z".repeat(32 * 1024)}`);
    for (const m of want) {
      l.write(1, frame(m), 1);
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(l.waits > 0, "the socket refused more and the writer waited");
    assert.deepEqual(lost, [], "a peer late by less than stallMs keeps its link");
    peer.resume();
    await waitUntil(() => peer.got.length === want.length, 5000, () => `${peer.got.length} of ${want.length}`);
    assert.deepEqual(peer.got, want);
    assert.equal(l.dropped, 0);
    peer.close();
  });

  test("flow control: a peer that takes nothing for stallMs past maxQueuedBytes is dropped, not before", { timeout: 10_000 }, async () => {
    const d = dir();
    const peer = await slowPeer(d);
    const lost: number[] = [];
    const l = new HostLinks({ dir: d, index: 0, maxQueuedBytes: 512 * 1024, stallMs: 400 }, () => {}, (i) => lost.push(i), null);
    links.push(l);
    const big = frame("y".repeat(64 * 1024));
    const small = frame("s".repeat(1024));
    let blockedAt = 0;
    for (let i = 0; i < 400 && lost.length === 0; i++) {
      // Past the bound (1 MiB, well below HARD_FACTOR times it) at once, then a small message every 20 ms.
      l.write(1, i < 16 ? big : small, 1);
      if (blockedAt === 0 && l.waits > 0) blockedAt = performance.now();
      await new Promise((r) => (i < 16 ? setImmediate(r) : setTimeout(r, 20)));
    }
    await waitUntil(() => lost.length === 1, 3000, "onLost");
    assert.ok(blockedAt > 0);
    assert.ok(performance.now() - blockedAt >= 400, "not before stallMs without progress");
    assert.equal(l.dropped, 1);
    peer.close();
  });

  test("flow control: past HARD_FACTOR × maxQueuedBytes the link is dropped, however recent the last progress", { timeout: 10_000 }, async () => {
    const d = dir();
    const peer = await slowPeer(d);
    const lost: number[] = [];
    const l = new HostLinks({ dir: d, index: 0, maxQueuedBytes: 128 * 1024, stallMs: 60_000 }, () => {}, (i) => lost.push(i), null);
    links.push(l);
    const big = frame("y".repeat(64 * 1024));
    for (let i = 0; i < 200 && lost.length === 0; i++) {
      l.write(1, big, 1);
      await new Promise((r) => setImmediate(r));
    }
    await waitUntil(() => lost.length === 1, 3000, "onLost");
    assert.deepEqual(lost, [1]);
    peer.close();
  });
});

describe("NatsBus with host links", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  const buses: NatsBus[] = [];
  let d: string;
  before(async () => {
    nats = await startNats();
    d = mkdtempSync(join(tmpdir(), "sb-links-bus-"));
  }, { timeout: 15_000 });
  after(async () => {
    for (const b of buses) await b.close();
    await nats.stop();
    rmSync(d, { recursive: true, force: true });
  }, { timeout: 15_000 });

  const opts = (subject: string, workerId: string, hostAddress: string, links?: number): NatsBusOptions => ({
    servers: [nats.url],
    subject,
    heartbeatMs: 1000,
    vnodes: 64,
    workerId,
    hostAddress,
    ...(links === undefined ? {} : { links: { dir: d, index: links, maxQueuedBytes: 1 << 20 } }),
  });
  /** Worker 10.0.0.`a` with a coalescing window of `coalesceMs`, and worker 10.0.0.`b` reading with `receive`: both members, the welcomes flushed. */
  const coalescingPair = async (subject: string, a: number, b: number, coalesceMs: number, receive: (m: BusMessage) => void) => {
    const w0 = await NatsBus.connect({ ...opts(subject, `10_0_0_${a}-w0`, `10.0.0.${a}`), coalesceMs }, {});
    const w1 = await NatsBus.connect(opts(subject, `10_0_0_${b}-w0`, `10.0.0.${b}`), {});
    buses.push(w0, w1);
    w1.attach({ receive });
    await w0.ready(2);
    await waitUntil(() => Object.values(w0.membership().hosts).flat().length === 2, 3000, "both members");
    await waitUntil(() => !w0.pending, 3000, "the welcomes flushed");
    return { w0, w1 };
  };

  test("workers of one host talk over the links, not NATS; a worker of another host over NATS", { timeout: 10_000 }, async () => {
    const subject = "links0";
    const got = new Map<string, BusMessage[]>();
    const start = async (o: NatsBusOptions) => {
      const b = await NatsBus.connect(o, {});
      buses.push(b);
      const mine: BusMessage[] = [];
      got.set(o.workerId, mine);
      b.attach({ receive: (m) => mine.push(m) });
      return b;
    };
    const w0 = await start(opts(subject, "10_0_0_1-w0", "10.0.0.1", 0));
    const w1 = await start(opts(subject, "10_0_0_1-w1", "10.0.0.1", 1));
    const other = await start(opts(subject, "10_0_0_2-w0", "10.0.0.2"));
    await w0.ready(3);
    await waitUntil(() => Object.values(w0.membership().hosts).flat().length === 3 && Object.values(w1.membership().hosts).flat().length === 3, 3000, "all three members");
    // Watch the inboxes on NATS: nothing for the same-host peer may appear there.
    const spy = await connect({ servers: nats.url });
    const onNats: string[] = [];
    spy.subscribe(`${subject}.w.>`, { callback: (_e, m) => onNats.push(m.subject) });
    await spy.flush();
    for (let i = 0; i < 50; i++) w0.send("10_0_0_1-w1", { op: "unbind", address: `u${i}@x/r`, serial: i });
    w0.send("10_0_0_2-w0", { op: "unbind", address: "far@x/r", serial: 1 });
    const unbinds = (id: string) => got.get(id)!.filter((m): m is Extract<BusMessage, { op: "unbind" }> => m.op === "unbind");
    await waitUntil(() => unbinds("10_0_0_1-w1").length === 50 && unbinds("10_0_0_2-w0").length === 1, 3000, "both peers to get theirs");
    assert.deepEqual(unbinds("10_0_0_1-w1").map((m) => m.serial), Array.from({ length: 50 }, (_, i) => i));
    await spy.flush();
    assert.deepEqual(onNats, [`${subject}.w.10_0_0_2-w0`]);
    assert.equal(other.dropped + w0.dropped + w1.dropped, 0);
    await spy.close();
  });

  test("beforePublish: called once at the start of the turn's publish; what it sends rides in that batch, ahead of what onFlushed sends", { timeout: 10_000 }, async () => {
    const subject = "links2";
    const got: BusMessage[] = [];
    const w0 = await NatsBus.connect(opts(subject, "10_0_0_4-w0", "10.0.0.4", 0), {});
    const w1 = await NatsBus.connect(opts(subject, "10_0_0_4-w1", "10.0.0.4", 1), {});
    buses.push(w0, w1);
    w1.attach({ receive: (m) => got.push(m) });
    await w0.ready(2);
    await waitUntil(() => Object.values(w0.membership().hosts).flat().length === 2, 3000, "both members");
    const to = "10_0_0_4-w1";
    let calls = 0;
    let afterSent = false;
    w0.onFlushed(() => {
      if (calls === 0 || afterSent) return;
      afterSent = true;
      w0.send(to, { op: "unbind", address: "after@x/r", serial: 3 });
    });
    // Nothing else sent this turn: beforePublish alone makes the turn publish, and the bus counts as pending.
    w0.beforePublish(() => {
      calls++;
      w0.send(to, { op: "unbind", address: "before@x/r", serial: 2 });
    });
    assert.equal(w0.pending, true);
    w0.send(to, { op: "unbind", address: "first@x/r", serial: 1 });
    await waitUntil(() => got.length === 3, 3000, "the three messages");
    assert.equal(calls, 1);
    assert.deepEqual(got.map((m) => (m as Extract<BusMessage, { op: "unbind" }>).serial), [1, 2, 3]);
    assert.equal(w0.pending, false);
  });

  test("coalesceMs: a batch goes at once, the next turns' messages wait for the window and go as one batch, in order", { timeout: 10_000 }, async () => {
    const subject = "links3";
    const got: BusMessage[] = [];
    // The joining's own messages (welcomes) go first; then the window (a span of time, 60 ms) must have passed
    // since that flush, or the first test message would wait for it.
    const { w0 } = await coalescingPair(subject, 5, 6, 60, (m) => got.push(m));
    await new Promise((r) => setTimeout(r, 70)); // the window itself is time: nothing to wait for but it
    const spy = await connect({ servers: nats.url });
    const batches: number[] = [];
    spy.subscribe(`${subject}.w.10_0_0_6-w0`, { callback: () => batches.push(performance.now()) });
    await spy.flush();
    const base = got.length;
    // What waits for the window can ask (coalescing) and is told once the batch went (afterPublish): the
    // composition root holds the turn's client output so (beforeClientWrites).
    const after: { pending: boolean; coalescing: boolean; batches: number }[] = [];
    w0.afterPublish(() => after.push({ pending: w0.pending, coalescing: w0.coalescing, batches: batches.length }));
    const coalescing: boolean[] = [];
    const t0 = performance.now();
    // Five turns in a row, a message each: the first turn's batch goes at its end, the four others together.
    for (let i = 0; i < 5; i++) {
      w0.send("10_0_0_6-w0", { op: "unbind", address: `c${i}@x/r`, serial: i });
      coalescing.push(w0.coalescing);
      await new Promise((r) => setImmediate(r));
    }
    assert.deepEqual(coalescing, [false, true, true, true, true], "the first at the turn's end, the others held for the window");
    await waitUntil(() => got.length === base + 5, 3000, "the five messages");
    assert.equal(after.length, 2, "told after each of the two publishes");
    assert.deepEqual(after.map((a) => [a.pending, a.coalescing]), [[false, false], [false, false]], "nothing held when told");
    assert.deepEqual(got.slice(base).map((m) => (m as Extract<BusMessage, { op: "unbind" }>).serial), [0, 1, 2, 3, 4]);
    assert.equal(batches.length, 2, "two batches on NATS");
    assert.ok(batches[1] - t0 >= 50, `the second batch waited for the window (${(batches[1] - t0).toFixed(1)} ms)`);
    await spy.close();
  });

  test("coalesceMs: in a turn longer than the window (its timer cannot fire), the output's hook publishes the batch once the window has passed, not at the turn's end", { timeout: 10_000 }, async () => {
    const subject = "links6";
    const got: BusMessage[] = [];
    const { w0 } = await coalescingPair(subject, 11, 12, 20, (m) => got.push(m));
    const base = got.length;
    // One turn, held synchronously as a worker reading a backlog from every ready socket is.
    w0.send("10_0_0_12-w0", { op: "unbind", address: "a@x/r", serial: 1 });
    w0.flushNow();
    w0.send("10_0_0_12-w0", { op: "unbind", address: "b@x/r", serial: 2 });
    assert.equal(w0.coalescing, true, "held for the window");
    assert.equal(busBeforeClientWrites(w0, false), false, "within the window the output waits for the batch");
    const until = performance.now() + 25;
    while (performance.now() < until) {
      // the turn goes on past the window; the window's timer cannot fire
    }
    assert.equal(busBeforeClientWrites(w0, false), true, "past the window the hook lets the output go");
    assert.equal(w0.pending, false, "having published the batch first");
    await waitUntil(() => got.length === base + 2, 3000, "both messages");
  });

  for (const [window, subject, a, b] of [
    [2, "links4", 7, 8],
    [1, "links5", 9, 10],
  ] as const) {
    test(`coalesceMs ${window}: under a steady stream no batch goes within half the window of the one before (Node's timers fire early)`, { timeout: 10_000 }, async () => {
      let got = 0;
      const { w0 } = await coalescingPair(subject, a, b, window, () => got++);
      const flushes: number[] = [];
      // When each publish began, as the bus itself counts the window (its lastFlush): a clock read in a hook would add
      // whatever ran or was preempted in between, and under load made batches look closer than they were.
      w0.onPublishing(() => {
        flushes.push((w0 as unknown as { lastFlush: number }).lastFlush);
        return "";
      });
      // A message every turn for 600 turns, each turn short: the window decides when batches go. A timer of the
      // window's rest, counted from the turn's start in whole milliseconds, went off up to 1 ms early: with a
      // 2 ms window, batches 0.0x ms apart were common.
      for (let i = 0; i < 600; i++) {
        w0.send(`10_0_0_${b}-w0`, { op: "unbind", address: `s${i}@x/r`, serial: i });
        await new Promise((r) => setImmediate(r));
      }
      await waitUntil(() => got === 600, 5000, () => `${got} of 600`);
      const gaps = flushes.slice(1).map((t, i) => t - flushes[i]);
      assert.ok(gaps.length >= 3, `${flushes.length} batches`);
      const min = Math.min(...gaps);
      // The window, less what a flush due within 0.5 ms may go early at a turn's end (NatsBus.schedule), and a margin;
      // a timer that went early gave gaps of 0.0x-1 ms (counted from the turn's start), and with a 1 ms window
      // 0.0x-0.5 ms still (the delay truncated to whole ms: NatsBus.windowDone).
      assert.ok(min >= window - 0.55, `two batches ${min.toFixed(3)} ms apart with a ${window} ms window (gaps: ${gaps.map((g) => g.toFixed(2)).join(" ")})`);
    });
  }

  test("a message that is not ours costs only itself: the rest of its batch and later batches arrive", { timeout: 10_000 }, async () => {
    const subject = "links1";
    const got: BusMessage[] = [];
    const w0 = await NatsBus.connect(opts(subject, "10_0_0_3-w0", "10.0.0.3"), {});
    buses.push(w0);
    w0.attach({ receive: (m) => got.push(m) });
    await w0.ready(1);
    const good = (serial: number) => wire.encode({ op: "unbind", address: "a@x/r", serial });
    const foreign = await connect({ servers: nats.url });
    // One batch: a good message, noise, a message with bytes cut off its end, an unknown tag, a good one.
    const cut = Buffer.from(good(0)).subarray(0, 6);
    foreign.publish(`${subject}.w.10_0_0_3-w0`, Buffer.concat([frameBytes(good(1)), frameBytes(Buffer.from("garbage!")), frameBytes(cut), frameBytes(Buffer.from([42, 0, 0])), frameBytes(good(2))]));
    // A batch whose last length runs past its end: what came before it is kept.
    foreign.publish(`${subject}.w.10_0_0_3-w0`, Buffer.concat([frameBytes(good(3)), Buffer.from([0, 0, 1, 0, 1])]));
    foreign.publish(`${subject}.w.10_0_0_3-w0`, frameBytes(good(4)));
    await waitUntil(() => got.length === 4, 3000, "the good messages");
    assert.deepEqual(got.map((m) => (m as Extract<BusMessage, { op: "unbind" }>).serial), [1, 2, 3, 4]);
    assert.equal(w0.dropped, 4);
    await foreign.close();
  });
});
