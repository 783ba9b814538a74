import { test } from "node:test";
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { IdleWatch } from "../../../src/session/idle.js";
import { waitUntil } from "../../helpers.js";

// Real timers, tens of milliseconds long. The watch's timer is unref'd: the
// waits below keep the test's event loop alive, as a connection would.

interface Call {
  final: boolean;
  at: number;
}

function watch(ms: number): { w: IdleWatch; calls: Call[]; t0: number } {
  const calls: Call[] = [];
  const t0 = performance.now();
  const w = new IdleWatch(ms, (final) => calls.push({ final, at: performance.now() - t0 }));
  return { w, calls, t0 };
}

test("silence: the first idle period warns, a second one closes, and then it stops", { timeout: 5000 }, async () => {
  const { calls } = watch(40);
  await waitUntil(() => calls.length >= 2, 3000, "a warning and a close");
  assert.deepEqual(
    calls.map((c) => c.final),
    [false, true],
  );
  // Whole milliseconds on both sides of the clock: allow one.
  assert.ok(calls[0].at >= 39, `warned after ${calls[0].at} ms, not before 40`);
  assert.ok(calls[1].at - calls[0].at >= 39, `closed ${calls[1].at - calls[0].at} ms after the warning, not before 40`);
  // While a reference watch as long warns and closes, this one stays quiet: it has stopped.
  const ref = watch(40);
  await waitUntil(() => ref.calls.length === 2, 3000, "the reference watch to close");
  assert.equal(calls.length, 2);
});

test("traffic re-arms: seen() within every period keeps it quiet; the warning comes one period after the last", { timeout: 5000 }, async () => {
  const { w, calls, t0 } = watch(100);
  // Traffic every 10 ms for 300 ms (the gaps are the point here): three periods in which the watch must not fire.
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
  assert.equal(calls.length, 0, "no warning while traffic flows");
  await waitUntil(() => calls.length >= 1, 3000, "the warning after the traffic stopped");
  assert.equal(calls[0].final, false);
  assert.ok(calls[0].at - last >= 99, `warned ${calls[0].at - last} ms after the last traffic, not before 100`);
  w.stop();
});

test("traffic after a warning: the next silence warns again instead of closing", { timeout: 5000 }, async () => {
  const calls: boolean[] = [];
  // The client answers the ping 10 ms after it: a timer due before the watch's next one, however late the loop runs.
  const w: IdleWatch = new IdleWatch(40, (final) => {
    calls.push(final);
    if (calls.length === 1) setTimeout(() => w.seen(), 10);
  });
  await waitUntil(() => calls.length === 2, 3000, "the next warning");
  assert.deepEqual(calls, [false, false]);
  w.stop();
});

test("ms = 0 turns it off, and stop() ends a running one", { timeout: 5000 }, async () => {
  const off = watch(0);
  const stopped = watch(20);
  stopped.w.stop();
  // While a reference watch of 20 ms warns and closes, the other two say nothing.
  const ref = watch(20);
  await waitUntil(() => ref.calls.length === 2, 3000, "the reference watch to close");
  assert.deepEqual(off.calls, []);
  assert.deepEqual(stopped.calls, []);
});

test("traffic in the very millisecond of the warning answers it: the next silence warns again instead of closing", { timeout: 5000 }, async () => {
  const calls: boolean[] = [];
  // The answer comes from inside the warning, so it is in the warning's own millisecond.
  const w: IdleWatch = new IdleWatch(30, (final) => {
    calls.push(final);
    if (calls.length === 1) w.seen();
  });
  await waitUntil(() => calls.length >= 3, 3000, "warn, warn again, close");
  w.stop();
  assert.deepEqual(calls, [false, false, true]);
});
