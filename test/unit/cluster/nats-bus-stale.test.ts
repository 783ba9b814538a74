import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NatsBus } from "../../../src/cluster/nats-bus.js";
import type { BusMessage } from "../../../src/cluster/bus.js";
import { HAVE_NATS, pairOptions, startNats, type NatsServer } from "../../nats.js";
import { waitUntil } from "../../helpers.js";

// A batch gathered before its worker was stopped past the others' patience (the heal window) and published
// after (docs/architecture.md, "Back from a stop"): its sender's endpoint hears `stalled` before it goes,
// and the peer reads exactly those messages with `readingStale` set; a batch of a normal turn, not.
// Against a real nats-server, between hosts (NATS) and between workers of one host (host links).

describe("NatsBus: batches gathered before a stall arrive marked", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  const buses: NatsBus[] = [];
  const dirs: string[] = [];
  let subjects = 0;
  const HEARTBEAT_MS = 100;

  before(async () => {
    nats = await startNats();
  }, { timeout: 15_000 });
  after(async () => {
    for (const b of buses) await b.close();
    await nats.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }, { timeout: 15_000 });

  /** Two workers, on two hosts or on one (host links); the second records what it reads and whether marked. */
  async function pair(sameHost: boolean) {
    const subject = `stale${subjects++}`;
    const dir = mkdtempSync(join(tmpdir(), "sb-stale-"));
    dirs.push(dir);
    const o = pairOptions(nats.url, subject, HEARTBEAT_MS, sameHost ? dir : undefined);
    const a = await NatsBus.connect(o(0), {});
    const b = await NatsBus.connect(o(1), {});
    buses.push(a, b);
    let stalled = 0;
    a.attach({ receive: () => {}, stalled: () => stalled++ });
    const got: [string, boolean][] = [];
    b.attach({
      receive: (m: BusMessage) => {
        if (m.op === "unbind") got.push([m.address, b.readingStale]);
      },
    });
    await b.ready(2);
    await waitUntil(() => Object.values(a.membership().hosts).flat().length === 2, 3000, "a to hear b");
    return { a, b, to: o(1).workerId, got, stalled: () => stalled };
  }

  for (const sameHost of [false, true]) {
    test(`${sameHost ? "host link" : "NATS"}: only the stalled batch is marked, whole, and its sender is told first`, { timeout: 10_000 }, async () => {
      const { a, to, got, stalled } = await pair(sameHost);
      const unbind = (address: string): BusMessage => ({ op: "unbind", address, serial: 1 });
      a.send(to, unbind("before"));
      await waitUntil(() => got.length === 1, 3000, "the normal batch");
      // Gathered, then the event loop held past the heal window (3 heartbeats) before the turn's publish: as a SIGSTOP would.
      a.send(to, unbind("stale1"));
      a.send(to, unbind("stale2"));
      const until = performance.now() + 3 * HEARTBEAT_MS + 50;
      while (performance.now() < until) {
        // busy: nothing else runs
      }
      await waitUntil(() => got.length === 3, 3000, "the stale batch");
      assert.equal(stalled(), 1, "the sender's endpoint heard stalled once");
      a.send(to, unbind("after"));
      await waitUntil(() => got.length === 4, 3000, "the batch after");
      assert.deepEqual(got, [
        ["before", false],
        ["stale1", true],
        ["stale2", true],
        ["after", false],
      ]);
      assert.equal(stalled(), 1);
      assert.equal(a.staleSent, 1);
    });
  }
});
