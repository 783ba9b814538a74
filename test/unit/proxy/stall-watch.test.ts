import { test } from "node:test";
import assert from "node:assert/strict";
import { waitUntil } from "../../helpers.js";
import { Departed, StallWatch } from "../../../src/proxy/stall-watch.js";
import { ClientCounts } from "../../../src/proxy/client-counts.js";
import { monotonicMs } from "../../../src/timer/clock.js";

test("StallWatch: a sweep later than the heal window marks a stall for one window; none without a heal window", { timeout: 5000 }, async () => {
  let heal = 50;
  const w = new StallWatch(() => heal);
  w.swept(monotonicMs());
  assert.equal(w.justStalled(), false, "swept just now");
  // The sweep comes 60 ms late (the worker was stopped): stalled, for a heal window after.
  const late = monotonicMs() + 60;
  w.swept(late);
  assert.equal(w.justStalled(), true);
  heal = 0;
  assert.equal(w.justStalled(), false, "no heal window: never");
});

test("Departed: workers that left are remembered until they come back; update says whether one left", { timeout: 5000 }, () => {
  const d = new Departed("w0", new Set(["w0", "w1", "w2"]));
  assert.equal(d.update(new Set(["w0", "w1", "w2", "w3"])), false, "one joined");
  assert.equal(d.update(new Set(["w0", "w3"])), true);
  assert.deepEqual([...d.workers()].sort(), ["w1", "w2"]);
  assert.equal(d.update(new Set(["w0", "w1", "w3"])), false, "w1 back");
  assert.deepEqual([...d.workers()], ["w2"]);
});

test("Departed: offOrBack while a worker is off the ring and for a window after it came back; none while nobody left lately", { timeout: 5000 }, () => {
  const d = new Departed("w0", new Set(["w0", "w1", "w2"]));
  assert.equal(d.none, true);
  assert.equal(d.offOrBack("w1", monotonicMs(), 100), false, "never left");
  d.update(new Set(["w0", "w2"]));
  assert.equal(d.none, false);
  assert.equal(d.offOrBack("w1", monotonicMs() + 10_000, 100), true, "off the ring: however long the window");
  assert.equal(d.offOrBack("w2", monotonicMs(), 100), false);
  d.update(new Set(["w0", "w1", "w2"]));
  const back = monotonicMs();
  assert.equal(d.offOrBack("w1", back, 100), true, "just back");
  assert.equal(d.offOrBack("w1", back + 50, 100), true, "within the window");
  assert.equal(d.none, false);
  assert.equal(d.offOrBack("w1", back + 1000, 100), false, "past it: forgotten");
  assert.equal(d.none, true);
  assert.equal(d.offOrBack("w1", back, 100), false, "forgotten stays forgotten");
});

test("ClientCounts: a count is kept for the window; a rebuild elsewhere marks what it resent, only for receipts of this worker", { timeout: 5000 }, async () => {
  const c = new ClientCounts("h-w0", 40);
  assert.equal(c.received("K"), -1);
  c.note("K", 7);
  assert.equal(c.received("K"), 7);
  assert.equal(c.replayedElsewhere("K", "", 3), false, "not rebuilt elsewhere");
  c.note("R", 2, "h-w1", 5);
  assert.equal(c.replayedElsewhere("R", "", 5), true);
  assert.equal(c.replayedElsewhere("R", "h-w0.9", 4), true, "held here");
  assert.equal(c.replayedElsewhere("R", "h-w2.9", 4), false, "held by another custodian: it routes that one");
  assert.equal(c.replayedElsewhere("R", "", 6), false, "beyond what the rebuild resent");
  c.note("S", 2, "h-w0", 5);
  assert.equal(c.replayedElsewhere("S", "", 1), false, "rebuilt here: nothing to skip");
  // The window's timers fire: waited for by their effect, within a deadline.
  await waitUntil(() => c.received("K") === -1, 2000, "the count forgotten past the window");
  // R was noted after K: its window ends a little later (one timer each), on a loaded machine a turn or more.
  await waitUntil(() => c.replayedElsewhere("R", "", 5) === false, 2000, "the rebuild's mark forgotten past its window");
});

test("StallWatch: stalledWithin remembers the last stall past its heal window", { timeout: 5000 }, () => {
  const w = new StallWatch(() => 50);
  w.swept(monotonicMs());
  assert.equal(w.stalledWithin(60_000), false, "never stalled");
  w.swept(monotonicMs() + 60);
  assert.equal(w.stalledWithin(60_000), true);
});

test("ClientCounts: whenNoted calls back when the count comes, or at its deadline; at once when it is known", { timeout: 5000 }, async () => {
  const c = new ClientCounts("h-w0", 1000);
  const calls: string[] = [];
  c.whenNoted("K", 2000, () => calls.push("K"));
  c.whenNoted("L", 30, () => calls.push("L"));
  c.note("K", 3);
  assert.deepEqual(calls, ["K"], "with the count");
  await waitUntil(() => calls.length === 2, 1000, "L's deadline");
  assert.deepEqual(calls, ["K", "L"]);
  c.whenNoted("K", 2000, () => calls.push("K again"));
  assert.deepEqual(calls, ["K", "L", "K again"], "known: at once");
  c.note("L", 1);
  assert.equal(calls.length, 3, "each called once");
});
