import { test } from "node:test";
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { PeerWatch } from "../../../src/session/peer-watch.js";
import { waitUntil } from "../../helpers.js";

// Real timers, tens of milliseconds long. The watch's timer is unref'd: the
// waits below keep the test's event loop alive, as a connection would.

interface Call {
  what: "ping" | "gone";
  at: number;
}

function watch(afterMs: number, timeoutMs: number, onPing?: (w: PeerWatch, n: number) => void): { w: PeerWatch; calls: Call[]; t0: number } {
  const calls: Call[] = [];
  const t0 = performance.now();
  let pings = 0;
  const w: PeerWatch = new PeerWatch(afterMs, timeoutMs, {
    pingPeer: () => {
      calls.push({ what: "ping", at: performance.now() - t0 });
      onPing?.(w, ++pings);
    },
    peerGone: () => calls.push({ what: "gone", at: performance.now() - t0 }),
  });
  return { w, calls, t0 };
}

test("silence: a ping after pingAfter, gone pingTimeout after it, and then it stops", { timeout: 5000 }, async () => {
  const { calls } = watch(40, 25);
  await waitUntil(() => calls.length >= 2, 3000, "a ping and gone");
  assert.deepEqual(
    calls.map((c) => c.what),
    ["ping", "gone"],
  );
  // Whole milliseconds on both sides of the clock: allow one.
  assert.ok(calls[0].at >= 39, `pinged after ${calls[0].at} ms, not before 40`);
  assert.ok(calls[1].at - calls[0].at >= 24, `gone ${calls[1].at - calls[0].at} ms after the ping, not before 25`);
  // While a reference watch as long pings and gives up, this one stays quiet: it has stopped.
  const ref = watch(40, 25);
  await waitUntil(() => ref.calls.length === 2, 3000, "the reference watch to give up");
  assert.equal(calls.length, 2);
});

test("traffic re-arms: seen() within every period keeps it quiet; the ping comes pingAfter after the last traffic", { timeout: 5000 }, async () => {
  const { w, calls, t0 } = watch(100, 50);
  let last = 0;
  await new Promise<void>((resolve) => {
    const traffic = setInterval(() => {
      w.seen();
      last = performance.now() - t0;
      if (last >= 300) {
        clearInterval(traffic);
        resolve();
      }
    }, 10);
  });
  assert.equal(calls.length, 0, "no ping while traffic flows");
  await waitUntil(() => calls.length >= 1, 3000, "the ping after the traffic stopped");
  assert.equal(calls[0].what, "ping");
  assert.ok(calls[0].at - last >= 99, `pinged ${calls[0].at - last} ms after the last traffic, not before 100`);
  w.stop();
});

test("an answer to the ping keeps the peer: the next silence pings again instead of giving up", { timeout: 5000 }, async () => {
  // The client answers 10 ms after the ping: a timer due before the watch's timeout, however late the loop runs.
  const { w, calls } = watch(40, 200, (w, n) => {
    if (n === 1) setTimeout(() => w.seen(), 10);
  });
  await waitUntil(() => calls.length >= 3, 3000, "ping, ping again, gone");
  w.stop();
  assert.deepEqual(
    calls.map((c) => c.what),
    ["ping", "ping", "gone"],
  );
  // After the answer the next ping waits a whole pingAfter of silence, and not for the timeout to run out.
  assert.ok(calls[1].at - calls[0].at >= 49, `second ping ${calls[1].at - calls[0].at} ms after the first`);
});

test("traffic in the very millisecond of the ping answers it", { timeout: 5000 }, async () => {
  // The answer comes from inside ping(), so it is in the ping's own millisecond.
  const { w, calls } = watch(30, 20, (w, n) => {
    if (n === 1) w.seen();
  });
  await waitUntil(() => calls.length >= 3, 3000, "ping, ping again, gone");
  w.stop();
  assert.deepEqual(
    calls.map((c) => c.what),
    ["ping", "ping", "gone"],
  );
});

test("pingAfter 0 turns it off, and stop() ends a running one, also between ping and timeout", { timeout: 5000 }, async () => {
  const off = watch(0, 20);
  const stopped = watch(20, 20);
  stopped.w.stop();
  const stoppedAfterPing = watch(20, 40, (w) => w.stop());
  const ref = watch(20, 40);
  await waitUntil(() => ref.calls.length === 2, 3000, "the reference watch to give up");
  assert.deepEqual(off.calls, []);
  assert.deepEqual(stopped.calls, []);
  assert.deepEqual(
    stoppedAfterPing.calls.map((c) => c.what),
    ["ping"],
  );
});

test("watches with the same periods share one wheel: those stopped by another's ping never fire, the others all do", { timeout: 5000 }, async () => {
  const fired: number[] = [];
  const watches: PeerWatch[] = [];
  // Same periods, made within a millisecond or two: due in the same slot or the next.
  for (let i = 0; i < 50; i++) {
    watches.push(
      new PeerWatch(30, 30, {
        pingPeer: () => {
          // The first to fire stops every odd-numbered watch but itself, some of them in the slot being run.
          if (fired.length === 0) for (let k = 1; k < 50; k += 2) if (k !== i) watches[k].stop();
          fired.push(i);
        },
        peerGone: () => {},
      }),
    );
  }
  const first = () => fired[0];
  const want = (n: number) => n % 2 === 0 || n === first();
  await waitUntil(() => fired.length > 0 && fired.length >= Array.from({ length: 50 }, (_, k) => k).filter(want).length, 3000, "the pings");
  const ref = watch(30, 30);
  await waitUntil(() => ref.calls.length === 2, 3000, "a later watch to give up");
  for (const w of watches) w.stop();
  assert.deepEqual(
    [...fired].sort((a, b) => a - b),
    Array.from({ length: 50 }, (_, k) => k).filter(want),
  );
});
