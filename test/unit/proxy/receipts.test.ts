import { test } from "node:test";
import assert from "node:assert/strict";
import { ReceiptLog, Receipts } from "../../../src/proxy/receipts.js";

test("a custodian's log: numbers in order, a little late, far out of order, forgotten and held again", { timeout: 5000 }, () => {
  const log = new ReceiptLog("h-w0.ab_");
  assert.equal(log.worker, "h-w0");
  for (let k = 0; k < 10; k++) assert.ok(log.add(k * 2, 100 + k));
  assert.ok(log.has(0) && log.has(18) && !log.has(1) && !log.has(19) && !log.has(-1));
  // Late by a few places: moved into place.
  assert.ok(log.add(13, 200));
  assert.ok(log.has(12) && log.has(13) && log.has(14));
  assert.equal(log.time(13), 200);
  // Held again (taken, then settled): the same entry, its time changed.
  assert.equal(log.add(-0, -50), false, "0 and -0 are one number");
  assert.equal(log.time(0), -50);
  assert.equal(log.add(4, -300), false);
  assert.equal(log.time(4), -300);
  assert.equal(log.add(4, 301), false);
  assert.equal(log.time(4), 301);
  assert.equal(log.size, 11);
  assert.ok(log.forget(6));
  assert.ok(!log.has(6) && !log.forget(6));
  assert.equal(log.size, 10);
  assert.ok(log.add(6, 400), "forgotten, then held again: a new entry");
  assert.equal(log.size, 11);
  // Far out of order (after many more): the side map, found all the same.
  for (let k = 100; k < 200; k++) log.add(k, 500);
  assert.ok(log.add(50, 600));
  assert.ok(log.has(50) && !log.has(51));
  assert.equal(log.add(50, 601), false);
  assert.equal(log.time(50), 601);
  assert.ok(log.forget(50) && !log.has(50));
  assert.ok(log.add(51, 602));
  assert.equal(log.size, 11 + 100 + 1);
});

test("a custodian's log expires from its lowest number up to the first still in the window; its side map by time", { timeout: 5000 }, () => {
  const log = new ReceiptLog("w.t_");
  for (let k = 0; k < 100; k++) log.add(k, k);
  log.add(5, 1000); // settled again late: keeps those above it
  log.add(1, 10); // already there: updated
  for (let k = 200; k < 300; k++) log.add(k, 100);
  log.add(150, 50); // far out of order: the side map
  log.expire(4);
  assert.ok(!log.has(0) && log.has(1) && log.has(2), "1, settled at 10, holds those above it");
  assert.ok(log.has(150));
  log.expire(60);
  assert.ok(!log.has(1) && !log.has(4) && log.has(5) && log.has(6), "5, settled again at 1000, holds the rest");
  assert.ok(!log.has(150), "the side map expires by time");
  log.expire(999);
  assert.ok(log.has(5) && log.has(99) && log.has(200));
  assert.equal(log.size, 95 + 100);
  log.expire(1000);
  assert.equal(log.size, 0);
  assert.ok(!log.has(5) && !log.has(200) && !log.has(299));
  assert.ok(log.add(0, 6000), "empty: numbers start anywhere again");
  assert.ok(log.has(0));
});

test("a custodian's log slides over a long run in little room: what the window holds is always found, nothing older grows it", { timeout: 20_000 }, () => {
  const log = new ReceiptLog("w.t_");
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  /** What must be found: number → time, as the old Map-based store kept it. */
  const model = new Map<number, number>();
  /** Forgotten and not held again: never found. */
  const forgotten = new Set<number>();
  let next = 0;
  const WINDOW = 2000;
  for (let now = 1; now <= 200_000; now++) {
    // Mostly in order; now and then a few places late, rarely far (routed again), or forgotten.
    const r = rand();
    let k = next++;
    if (r < 0.05 && next > 10) k = next - 2 - Math.floor(rand() * 8);
    else if (r < 0.06 && next > 1000) k = next - 100 - Math.floor(rand() * 800);
    if (r > 0.995) {
      const f = next - 1 - Math.floor(rand() * 50);
      log.forget(f);
      model.delete(f);
      forgotten.add(f);
      continue;
    }
    const t = rand() < 0.2 ? -now : now;
    log.add(k, t);
    forgotten.delete(k);
    model.delete(k);
    model.set(k, t);
    if (now % 97 === 0) {
      log.expire(now - WINDOW);
      for (const [mk, mt] of model) {
        if (Math.abs(mt) > now - WINDOW) continue;
        model.delete(mk);
      }
      for (const [mk, mt] of model) assert.equal(log.time(mk), mt, `${mk} at ${now}`);
      for (const f of forgotten) assert.ok(!log.has(f), `forgotten ${f} at ${now}`);
      assert.ok(!log.has(next) && !log.has(next + 1000), "never held");
    }
  }
  // It holds about the window, not the run.
  assert.ok(log.size < 2 * WINDOW + 500, `${log.size}`);
});

test("receipts by custodian: the store's cap drops the oldest across custodians and whole receipts", { timeout: 5000 }, () => {
  const r = new Receipts(1000, 4);
  r.add("a.x_1", 1);
  r.add("odd", 2);
  r.add("b.x_1", 3);
  r.add("a.x_2", 4);
  assert.equal(r.size, 4);
  r.add("b.x_2", 5);
  assert.ok(!r.has("a.x_1") && r.has("odd"), "the oldest of all went");
  r.add("b.x_3", 6);
  assert.ok(!r.has("odd") && r.has("b.x_1"));
  assert.equal(r.size, 4);
  r.add("a.x_2", 7);
  assert.equal(r.size, 4, "held again: no new entry");
  r.forget("a.x_2");
  assert.equal(r.size, 3);
  r.expire(1006);
  assert.equal(r.size, 0);
  assert.equal(r.custodian("a.x_3")?.prefix, "a.x_");
  assert.equal(r.key, 3);
  r.expire(5000);
  assert.equal(r.custodian("a.x_3")?.size, 0, "a custodian with nothing in the window is let go, and made again when needed");
});
