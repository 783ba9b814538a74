import { test } from "node:test";
import assert from "node:assert/strict";
import { beginInput, endInput, inputMs, monotonicMs } from "../../../src/timer/clock.js";
import { EqualWaits } from "../../../src/timer/equal-waits.js";
import { PeerWatch } from "../../../src/session/peer-watch.js";
import { clockReads } from "./clock-reads.js";

/** Spins until the clock has moved past `t` (no timer can fire meanwhile), within 2 s. */
function pastMs(t: number): number {
  const deadline = Date.now() + 2000;
  let now = monotonicMs();
  while (now <= t && Date.now() < deadline) now = monotonicMs();
  assert.ok(now > t, "the clock moved");
  return now;
}

test("inputMs: outside a read, the clock; within one, the time of its first use, until the read ends", { timeout: 5_000 }, () => {
  const before = inputMs();
  const later = pastMs(before);
  assert.ok(inputMs() >= later, "outside a read it follows the clock");
  const outer = beginInput();
  assert.equal(outer, true);
  try {
    const t = inputMs();
    pastMs(t);
    assert.equal(inputMs(), t, "the read's time, though the clock moved");
    // Input handled within the read's handling (a release): the outer read goes on, with its time.
    assert.equal(beginInput(), false);
    assert.equal(inputMs(), t);
  } finally {
    endInput();
  }
  const after = inputMs();
  assert.ok(after > before);
  assert.ok(inputMs() < pastMs(after) + 1 && inputMs() > after, "ended: the clock again");
});

test("a read reads the clock once for its waits and its peer watch, and not at all if nothing uses it", { timeout: 5_000 }, () => {
  const waits = new EqualWaits<number>(60_000, () => {});
  const watch = new PeerWatch(60_000, 30_000, { pingPeer: () => {}, peerGone: () => {} });
  try {
    const deadlines: number[] = [];
    const inRead = clockReads(() => {
      const outer = beginInput();
      try {
        watch.seen();
        for (let i = 0; i < 5; i++) deadlines.push(waits.add(i));
      } finally {
        if (outer) endInput();
      }
    });
    assert.equal(inRead, 1, "one clock read for the whole read");
    assert.equal(new Set(deadlines).size, 1, "every wait from the read's moment");
    const unused = clockReads(() => {
      const outer = beginInput();
      if (outer) endInput();
    });
    assert.equal(unused, 0);
    // Outside a read each use reads the clock, as before.
    assert.equal(
      clockReads(() => {
        watch.seen();
        waits.add(9);
      }),
      2,
    );
  } finally {
    watch.stop();
  }
});
