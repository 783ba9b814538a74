import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "node:net";
import { WorkerHandoff } from "../../../src/host/handoff.js";
import { FdChannel } from "../../../src/transport/fd-channel.js";
import type { Listening } from "../../../src/transport/listener.js";
import { startReading } from "../../../src/transport/node-internals.js";
import { silentLogger } from "../../../src/log/logger.js";
import { workerIdOf } from "../../../src/cluster/nats-bus.js";
import { heldTcp, waitUntil, within } from "../../helpers.js";

const native = FdChannel.native();
const skip = typeof native === "string" ? `no descriptor channel here: ${native}` : false;
const HOST = "h";

/**
 * The direct hand-off between two workers of a host (src/host/handoff.ts): both ends in this process, on the real
 * descriptor channel, passing real TCP connections. What happens in each answer and each deadline decides whether a
 * connection is lost or read by two processes, so each is played here. An owner's listener is the part a worker's
 * server gives it: here one that records what it adopts and echoes what the adopted connection reads.
 */
describe("direct hand-off between workers", { timeout: 40_000, skip }, () => {
  let dir: string;
  /** Connections accepted and not read, as a worker's paused login. */
  let tcp: Awaited<ReturnType<typeof heldTcp>>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "sb-handoff-"));
    tcp = await heldTcp();
  });
  after(() => {
    tcp.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A worker's hand-off end with one listener; `adopted` gets each socket it takes, which then echoes. */
  const worker = (index: number, opts: { stopping?: () => boolean } = {}) => {
    const adopted: { socket: Socket; state: unknown }[] = [];
    const listener = {
      open: true,
      adopt: (socket: Socket, state: unknown) => {
        adopted.push({ socket, state });
        socket.on("data", (d: Buffer) => socket.write(`w${index}: ${d.toString()}`));
        return true;
      },
    } as unknown as Listening;
    const h = new WorkerHandoff(index, HOST, silentLogger(), dir);
    assert.ok(h.directPath, "the direct path is up");
    h.serve(() => workerIdOf(HOST, 1), [listener], opts.stopping ?? (() => false));
    return { h, adopted };
  };
  const pair = () => tcp.pair();
  const verdictOf = (h: WorkerHandoff, socket: Socket, to: number): Promise<boolean> => new Promise((resolve) => h.offer(socket, to, 0, { user: "u" }, resolve));
  /** What worker `w` echoes back after the client sends `text` (each read echoed behind "w<index>: "). */
  const echo = async (client: Socket, text: string, w: number, expect: string): Promise<void> => {
    let back = "";
    const on = (d: Buffer) => (back += d.toString());
    client.on("data", on);
    client.write(text);
    const bytes = () => back.split(`w${w}: `).join("");
    await waitUntil(() => bytes() === expect, 3000, () => `${JSON.stringify(expect)} from w${w}; got ${JSON.stringify(back)}`);
    client.off("data", on);
  };

  test("moved: the owner adopts the connection with its state and reads it; the source is told so", async () => {
    const src = worker(0);
    const own = worker(1);
    try {
      assert.equal(src.h.target("u@localhost"), 1, "worker 1 owns every user here");
      const { client, theirs } = await pair();
      client.write("early ");
      assert.equal(await within(verdictOf(src.h, theirs, 1), 2000, "the verdict"), true);
      // The protocol's part on `true`: this copy closes; the connection lives in the owner.
      theirs.destroy();
      // The owner reads the connection from its `go`, a packet after this verdict.
      await waitUntil(() => own.adopted.length === 1, 2000, "adopted");
      assert.deepEqual(own.adopted[0].state, { user: "u" });
      await echo(client, "late", 1, "early late");
      assert.equal(src.h.directMoved, 1);
      client.destroy();
    } finally {
      src.h.close();
      own.h.close();
    }
  });

  test("refused: an owner that is stopping says so, and the source reads the connection itself", async () => {
    const src = worker(0);
    const own = worker(1, { stopping: () => true });
    try {
      const { client, theirs } = await pair();
      assert.equal(await within(verdictOf(src.h, theirs, 1), 2000, "the verdict"), false);
      assert.equal(own.adopted.length, 0);
      let read = "";
      theirs.on("data", (d: Buffer) => (read += d.toString()));
      startReading(theirs);
      client.write("still here");
      await waitUntil(() => read === "still here", 2000, () => `the source reads; ${JSON.stringify(read)}`);
      assert.equal(src.h.directStayed, 1);
      client.destroy();
    } finally {
      src.h.close();
      own.h.close();
    }
  });

  test("an owner that does not answer in time: stay; its late `have` gets `drop`; the next offer stays at once", async () => {
    const src = worker(0);
    // Worker 2's end, played by hand: it keeps what it is offered and answers after the source's deadline.
    const offers: { m: { id: number; pid: number }; socket: Socket | null }[] = [];
    const drops: unknown[] = [];
    const two = FdChannel.open(dir, 2, (data, socket) => {
      const m = JSON.parse(data.toString()) as { t: string; id: number; pid: number };
      if (m.t === "offer") offers.push({ m, socket });
      else drops.push(m);
    });
    assert.ok(typeof two !== "string");
    try {
      const { client, theirs } = await pair();
      const t0 = performance.now();
      assert.equal(await within(verdictOf(src.h, theirs, 2), 3000, "the verdict"), false);
      assert.ok(performance.now() - t0 >= 900, `after the source's deadline: ${performance.now() - t0} ms`);
      assert.equal(offers.length, 1, "the offer reached the owner");
      // Silent since: the next login does not wait for it (no IPC channel here, so no other path either).
      const second = await pair();
      const t1 = performance.now();
      assert.equal(await verdictOf(src.h, second.theirs, 2), false);
      assert.ok(performance.now() - t1 < 100, `at once: ${performance.now() - t1} ms`);
      assert.equal(offers.length, 1, "not offered again");
      // Late: the source has stayed, so the owner must let go of its copy.
      assert.equal(two.send(0, Buffer.from(JSON.stringify({ t: "have", id: offers[0].m.id, pid: offers[0].m.pid, owner: 2 }))), 0);
      await waitUntil(() => drops.length === 1, 2000, "a drop");
      assert.deepEqual(drops[0], { t: "drop", id: offers[0].m.id, pid: offers[0].m.pid, from: 0 });
      offers[0].socket?.destroy();
      // Heard from again: the next login is offered to it.
      const third = await pair();
      const late = verdictOf(src.h, third.theirs, 2);
      await waitUntil(() => offers.length === 2, 2000, "offered again");
      offers[1].socket?.destroy();
      assert.equal(await within(late, 3000, "its verdict"), false);
      third.client.destroy();
      client.destroy();
      second.client.destroy();
    } finally {
      src.h.close();
      two.close();
    }
  });

  test("an owner's deadline does not overtake a `go` already sent: the connection is adopted, not closed", async () => {
    const own = worker(1);
    // The source, played by hand: it sends its `go` just before the owner's hold deadline, from the loop's check
    // phase, and keeps the loop busy past the deadline: the next turn runs its timers before it polls, so the
    // deadline's timer comes before the packet is read.
    const haves: { id: number; pid: number }[] = [];
    const zero = FdChannel.open(dir, 0, (data) => haves.push(JSON.parse(data.toString()) as { id: number; pid: number }));
    assert.ok(typeof zero !== "string");
    try {
      const { client, theirs } = await pair();
      const offered = performance.now();
      assert.equal(zero.send(1, Buffer.from(JSON.stringify({ t: "offer", id: 7, from: 0, pid: 42, listener: 0, state: { user: "u" } })), theirs), 0);
      await waitUntil(() => haves.length === 1, 2000, "the owner's have");
      const holdMs = 3000;
      await new Promise<void>((resolve) =>
        setTimeout(
          () =>
            setImmediate(() => {
              assert.equal(zero.send(1, Buffer.from(JSON.stringify({ t: "go", id: 7, pid: 42, from: 0 }))), 0);
              theirs.destroy();
              while (performance.now() - offered < holdMs + 100);
              resolve();
            }),
          holdMs - 150 - (performance.now() - offered),
        ),
      );
      await waitUntil(() => own.adopted.length === 1, 2000, "adopted");
      await echo(client, "hi", 1, "hi");
      client.destroy();
    } finally {
      own.h.close();
      zero.close();
    }
  });
});
