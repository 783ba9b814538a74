import { test } from "node:test";
import assert from "node:assert/strict";
import { PendingList, type PendingResponse, type Requester } from "../../../src/pending/pending-list.js";
import { TimerDaemon } from "../../../src/timer/timer-daemon.js";

const requester = (): Requester => ({ outstanding: 0, firstPending: null });

function drain(list: PendingList, now: number): PendingResponse[] {
  const out: PendingResponse[] = [];
  list.expire(now, (p) => out.push(p));
  return out;
}

test("add records who asked, under which id, whom and until when", () => {
  const list = new PendingList();
  const r = requester();
  const p = list.add(r, "orig-1", "bob@localhost/x", 500, 1000);
  assert.equal(p.originalId, "orig-1");
  assert.equal(p.sender, r);
  assert.equal(p.recipient, "bob@localhost/x");
  assert.equal(p.deadline, 1500);
  assert.equal(list.get(p.key), p);
  assert.equal(list.size, 1);
  assert.equal(r.outstanding, 1);
});

test("keys are unique among pending entries, also across completions", () => {
  const list = new PendingList();
  const r = requester();
  const live = new Map<number, PendingResponse>();
  for (let i = 0; i < 20000; i++) {
    const p = list.add(r, `id${i}`, "b", 100 + (i % 7), i);
    assert.ok(Number.isInteger(p.key) && p.key >= 0 && p.key <= 0x7fffffff);
    assert.equal(live.has(p.key), false, `key ${p.key} reused while pending`);
    live.set(p.key, p);
    if (i % 3 === 0) {
      const q = live.values().next().value!;
      list.remove(q);
      live.delete(q.key);
    }
  }
  assert.equal(list.size, live.size);
  for (const [k, p] of live) assert.equal(list.get(k), p);
});

test("expiry is earliest first across different ttls, and only at or after the deadline", () => {
  const list = new PendingList();
  const r = requester();
  // Three timeouts, interleaved in time: deadlines 100, 120, 150, 160, 170, 230.
  list.add(r, "a100", "x", 100, 0); // 100
  list.add(r, "b120", "x", 120, 0); // 120
  list.add(r, "a150", "x", 100, 50); // 150
  list.add(r, "c160", "x", 30, 130); // 160
  list.add(r, "b170", "x", 120, 50); // 170
  list.add(r, "c230", "x", 30, 200); // 230
  assert.deepEqual(drain(list, 99), []);
  assert.deepEqual(drain(list, 100).map((p) => p.originalId), ["a100"]);
  assert.deepEqual(drain(list, 200).map((p) => p.originalId), ["b120", "a150", "c160", "b170"]);
  assert.deepEqual(drain(list, 1e9).map((p) => p.originalId), ["c230"]);
  assert.equal(list.size, 0);
  assert.equal(r.outstanding, 0);
});

test("expiry order holds over many random ttls in one sweep", () => {
  const list = new PendingList();
  const r = requester();
  let x = 7;
  const rnd = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
  for (let now = 0; now < 2000; now++) list.add(r, String(now), "x", 100 + (rnd() % 50) * 10, now);
  const out = drain(list, 1e9);
  assert.equal(out.length, 2000);
  for (let i = 1; i < out.length; i++) assert.ok(out[i - 1].deadline <= out[i].deadline, `at ${i}: ${out[i - 1].deadline} > ${out[i].deadline}`);
});

test("completion unlinks at once: size drops and nothing is left to expire", () => {
  const list = new PendingList();
  const r = requester();
  const ps = Array.from({ length: 1000 }, (_, i) => list.add(r, String(i), "x", 100 + (i % 3), i));
  for (const p of ps) list.remove(p);
  assert.equal(list.size, 0);
  assert.equal(r.outstanding, 0);
  assert.equal(r.firstPending, null);
  for (const p of ps) assert.equal(list.get(p.key), undefined);
  let fired = 0;
  assert.equal(list.expire(1e9, () => fired++), 0);
  assert.equal(fired, 0);
  // Removing twice is harmless.
  list.remove(ps[0]);
  assert.equal(r.outstanding, 0);
});

test("completing the head of a timeout's list early does not hold back the rest", () => {
  const list = new PendingList();
  const r = requester();
  const first = list.add(r, "first", "x", 100, 0); // 100
  list.add(r, "second", "x", 100, 10); // 110
  list.remove(first);
  assert.deepEqual(drain(list, 105), []);
  assert.deepEqual(drain(list, 110).map((p) => p.originalId), ["second"]);
  // A timeout whose list emptied and filled again.
  list.add(r, "third", "x", 100, 500);
  assert.deepEqual(drain(list, 599), []);
  assert.deepEqual(drain(list, 600).map((p) => p.originalId), ["third"]);
});

test("removeAllOf drops every request of one requester and only those", () => {
  const list = new PendingList();
  const a = requester();
  const b = requester();
  for (let i = 0; i < 50; i++) {
    list.add(a, `a${i}`, "x", 100 + (i % 4), i);
    list.add(b, `b${i}`, "x", 100 + (i % 5), i);
  }
  // Some of a's completed already, from the head, middle and tail of its list.
  const some = list.add(a, "a-mid", "x", 100, 50);
  list.add(a, "a-last", "x", 100, 51);
  list.remove(some);
  assert.equal(a.outstanding, 51);
  assert.equal(list.removeAllOf(a), 51);
  assert.equal(a.outstanding, 0);
  assert.equal(a.firstPending, null);
  assert.equal(b.outstanding, 50);
  assert.equal(list.size, 50);
  const out = drain(list, 1e9);
  assert.equal(out.length, 50);
  assert.ok(out.every((p) => p.sender === b));
  assert.equal(list.removeAllOf(a), 0);
});

test("per-requester outstanding counts follow add, complete and expiry", () => {
  const list = new PendingList();
  const a = requester();
  const b = requester();
  const pa = [list.add(a, "1", "x", 100, 0), list.add(a, "2", "x", 200, 0), list.add(a, "3", "x", 300, 0)];
  list.add(b, "4", "x", 150, 0);
  assert.deepEqual([a.outstanding, b.outstanding], [3, 1]);
  list.remove(pa[1]);
  assert.deepEqual([a.outstanding, b.outstanding], [2, 1]);
  drain(list, 160);
  assert.deepEqual([a.outstanding, b.outstanding], [1, 0]);
  // The requester's list still links exactly its remaining request.
  assert.equal(a.firstPending, pa[2]);
  assert.equal(pa[2].senderNext, null);
});

test("TimerDaemon.sweep fails what expired and leaves the rest", () => {
  const list = new PendingList();
  const r = requester();
  const timedOut: string[] = [];
  const daemon = new TimerDaemon(list, 50, (p) => timedOut.push(p.originalId));
  list.add(r, "early", "x", 100, 1000);
  list.add(r, "late", "x", 5000, 1000);
  assert.equal(daemon.sweep(1099), 0);
  assert.equal(daemon.sweep(1100), 1);
  assert.deepEqual(timedOut, ["early"]);
  assert.equal(list.size, 1);
  assert.equal(daemon.sweep(6000), 1);
  assert.deepEqual(timedOut, ["early", "late"]);
  // start/stop are idempotent and the interval does not hold the process open (unref).
  daemon.start();
  daemon.start();
  daemon.stop();
  daemon.stop();
});
