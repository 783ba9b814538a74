import { test } from "node:test";
import assert from "node:assert/strict";
import { Acks, TimedRequests } from "../../../../src/xmpp/modules/stream-management.js";
import { EqualWaits } from "../../../../src/timer/equal-waits.js";
import { beginInput, endInput } from "../../../../src/timer/clock.js";
import { clockReads } from "../../timer/clock-reads.js";
import { UnackedQueue } from "../../../../src/xmpp/modules/unacked-queue.js";
import { HeldAnswers } from "../../../../src/xmpp/modules/held-answers.js";
import { StreamError } from "../../../../src/xmpp/errors.js";
import { SmCounts } from "../../../../src/metrics/metrics.js";
import type { ClientSession } from "../../../../src/xmpp/client-session.js";

// XEP-0198 counters and queue without a server: wrap-around at 2^32 cannot be reached over a socket.
// The session here only records what the tracker writes or cuts (the e2e test uses a real one).
function session() {
  const written: string[] = [];
  const cut: string[] = [];
  const out = { pending: false };
  const s = { sendNonza: (x: string) => written.push(x), destroy: (r: string) => cut.push(r), get outputPending() { return out.pending; } } as unknown as ClientSession;
  return { s, written, cut, out };
}
const policy = { ackEveryStanzas: 0, ackEveryMs: 0, maxUnacked: 100, resumeTimeoutMs: 0, answerDelayMs: 0 };

test("h and the sent count wrap modulo 2^32; an ack across the wrap trims the queue", { timeout: 5_000 }, () => {
  const { s } = session();
  const acks = new Acks(s, policy);
  acks.handled = 2 ** 32 - 1;
  acks.received();
  assert.equal(acks.handled, 0);
  (acks as unknown as { acked: number }).acked = 2 ** 32 - 2;
  for (const w of ["a", "b", "c", "d"]) acks.sent(w);
  assert.equal(acks.sentCount, 2);
  acks.acknowledged(1); // three of the four: 2^32-1, 0, 1
  assert.deepEqual(acks.queue.pending(), ["d"]);
  assert.throws(() => acks.acknowledged(3), (e: unknown) => e instanceof StreamError && /handled-count-too-high[^>]* h='3' send-count='2'/.test(e.appCondition));
});

test("at the wrap, fits takes exactly the counts from the last ack to the sent count, and nothing past it", { timeout: 5_000 }, () => {
  const { s } = session();
  const acks = new Acks(s, policy);
  (acks as unknown as { acked: number }).acked = 2 ** 32 - 3;
  for (const w of ["a", "b", "c", "d", "e"]) acks.sent(w);
  assert.equal(acks.sentCount, 2);
  for (const h of [2 ** 32 - 3, 2 ** 32 - 2, 2 ** 32 - 1, 0, 1, 2]) assert.equal(acks.fits(h), true, String(h));
  for (const h of [3, 4, 2 ** 31, 2 ** 32 - 4, 2 ** 32 - 1000]) assert.equal(acks.fits(h), false, String(h));
  acks.acknowledged(0);
  assert.deepEqual(acks.queue.pending(), ["d", "e"]);
  assert.equal(acks.acknowledgedCount, 0);
  acks.acknowledged(2);
  assert.equal(acks.queue.length, 0);
  // h counts received stanzas up to 2^32 − 1 and goes on from 0.
  acks.handled = 2 ** 32 - 2;
  acks.received();
  assert.equal(acks.handled, 2 ** 32 - 1);
  acks.received();
  acks.received();
  assert.equal(acks.handled, 1);
});

test("the queue drops from the head in order and compacts without losing anything", { timeout: 5_000 }, () => {
  const q = new UnackedQueue();
  for (let i = 0; i < 5000; i++) q.push(String(i));
  q.drop(1500);
  q.drop(1500);
  assert.equal(q.length, 2000);
  assert.equal(q.pending()[0], "3000");
  q.push("x");
  q.drop(2000);
  assert.deepEqual(q.pending(), ["x"]);
  q.drop(1);
  assert.equal(q.length, 0);
});

test("policy: <r/> every N stanzas; past maxUnacked the session is cut as a slow consumer", { timeout: 5_000 }, () => {
  const { s, written, cut } = session();
  const acks = new Acks(s, { ackEveryStanzas: 2, ackEveryMs: 0, maxUnacked: 4, resumeTimeoutMs: 0, answerDelayMs: 0 });
  for (let i = 0; i < 4; i++) acks.sent(`m${i}`);
  assert.equal(written.length, 2);
  assert.deepEqual(cut, []);
  acks.sent("m4");
  assert.deepEqual(cut, ["slow consumer"]);
});

test("policy: <r/> by time after the first unrequested stanza", { timeout: 5_000 }, async () => {
  const { s, written } = session();
  const acks = new Acks(s, { ackEveryStanzas: 0, ackEveryMs: 20, maxUnacked: 10, resumeTimeoutMs: 0, answerDelayMs: 0 });
  acks.sent("m");
  const deadline = Date.now() + 3000;
  while (written.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(written, ["<r xmlns='urn:xmpp:sm:3'/>"]);
  acks.stop();
});

test("the worker's unacked gauge follows sends, acks and a discarded queue across sessions", { timeout: 5_000 }, () => {
  const counts = new SmCounts();
  const a = new Acks(session().s, policy, "", counts);
  const b = new Acks(session().s, policy, "", counts);
  for (const w of ["1", "2", "3"]) a.sent(w);
  for (const w of ["x", "y"]) b.sent(w);
  assert.equal(counts.unacked, 5);
  a.acknowledged(2);
  assert.equal(counts.unacked, 3);
  b.discard();
  assert.equal(counts.unacked, 1);
  assert.equal(b.queue.length, 0);
  a.acknowledged(3);
  assert.equal(counts.unacked, 0);
});

const a = (h: number) => `<a xmlns='urn:xmpp:sm:3' h='${h}'/>`;
const r = "<r xmlns='urn:xmpp:sm:3'/>";

test("held answers: each <r/> gets its own <a/> with the count at its request, with the next stanza written", { timeout: 5_000 }, () => {
  const { s, written } = session();
  const held = new HeldAnswers(60_000);
  const acks = new Acks(s, policy, "", new SmCounts(), undefined, undefined, undefined, held);
  acks.received();
  acks.answer();
  acks.received();
  acks.received();
  acks.answer();
  assert.deepEqual(written, [], "held: nothing else was written to the client");
  acks.sent("m");
  assert.deepEqual(written, [a(1), a(3)]);
  acks.sent("n");
  assert.deepEqual(written, [a(1), a(3)], "sent once");
  assert.equal(acks.answerDue, 0);
});

test("held answers go at once when this turn already wrote to the client, and alone once the delay passed", { timeout: 5_000 }, async () => {
  const { s, written, out } = session();
  const held = new HeldAnswers(30);
  const acks = new Acks(s, policy, "", new SmCounts(), undefined, undefined, undefined, held);
  out.pending = true;
  acks.answer();
  assert.deepEqual(written, [a(0)]);
  out.pending = false;
  acks.received();
  acks.answer();
  assert.equal(written.length, 1);
  const t0 = Date.now();
  const deadline = t0 + 3000;
  while (written.length === 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(written, [a(0), a(1)]);
  assert.ok(Date.now() - t0 >= 25, "not before the delay");
  assert.equal(held.size, 0);
});

test("held answers: sent with the server's own <r/>; dropped on resumption (the client has its count from <resumed/>)", { timeout: 5_000 }, () => {
  const { s, written } = session();
  const held = new HeldAnswers(60_000);
  const acks = new Acks(s, { ...policy, ackEveryStanzas: 1 }, "", new SmCounts(), undefined, undefined, undefined, held);
  acks.answer();
  acks.sent("m");
  assert.deepEqual(written, [a(0), "<r xmlns='urn:xmpp:sm:3'/>"]);
  acks.acknowledged(1);
  written.length = 0;
  acks.received();
  acks.answer();
  acks.resumed();
  acks.sent("n");
  assert.deepEqual(written, ["<r xmlns='urn:xmpp:sm:3'/>"]);
});

test("the timed <r/> rides with a stanza written in the last fifth of ackEveryMs, else goes alone at its time; one timer for all streams", { timeout: 5_000 }, async () => {
  const requests = new TimedRequests(100);
  const cfg = { ...policy, ackEveryMs: 100 };
  const one = session();
  const two = session();
  const a1 = new Acks(one.s, cfg, "", new SmCounts(), undefined, undefined, undefined, undefined, requests);
  const a2 = new Acks(two.s, cfg, "", new SmCounts(), undefined, undefined, undefined, undefined, requests);
  const t0 = performance.now();
  a1.sent("m1");
  a2.sent("n1");
  assert.equal(requests.size, 2);
  a1.sent("m2");
  assert.deepEqual(one.written, [], "not yet near its time");
  // The last fifth reached without leaving this callback, so the timer cannot fire first, however loaded the
  // machine: the riding is checked in every run (the spin stands for the time that passes between two stanzas).
  while (performance.now() - t0 < 85);
  assert.deepEqual(one.written, [], "not asked before a stanza goes");
  a1.sent("m3");
  assert.deepEqual(one.written, [r], "with the stanza, before its time");
  const deadline = Date.now() + 3000;
  while (two.written.length === 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
  assert.deepEqual(two.written, [r], "alone at its time");
  assert.ok(performance.now() - t0 >= 99, "not before");
  assert.deepEqual(one.written, [r], "asked once");
  a1.acknowledged(3);
  a2.acknowledged(1);
});

test("within one read, stanzas to streams whose timed <r/> is armed read the clock once (the ride window by the read's time)", { timeout: 5_000 }, () => {
  const requests = new TimedRequests(60_000);
  const held = new HeldAnswers(60_000);
  const cfg = { ...policy, ackEveryMs: 60_000, answerDelayMs: 60_000 };
  const one = session();
  const two = session();
  const a1 = new Acks(one.s, cfg, "", new SmCounts(), undefined, undefined, undefined, held, requests);
  const a2 = new Acks(two.s, cfg, "", new SmCounts(), undefined, undefined, undefined, held, requests);
  const reads = clockReads(() => {
    const outer = beginInput();
    try {
      // Arms both timed <r/>, then judges the ride window with every stanza; an answer held for a stream.
      for (let i = 0; i < 5; i++) {
        a1.sent(`m${i}`);
        a2.sent(`n${i}`);
      }
      a1.received();
      a1.answer();
    } finally {
      if (outer) endInput();
    }
  });
  assert.equal(reads, 1, "one clock read for the read");
  assert.deepEqual(one.written, [], "far from its time: nothing rides, the answer is held");
  assert.equal(requests.size, 2);
  assert.equal(held.size, 1);
  a1.stop();
  a2.stop();
});

test("EqualWaits: deadlines in order across the ring's growth; an entry its holder no longer waits for does nothing", { timeout: 5_000 }, async () => {
  const fired: number[] = [];
  const current = new Map<number, number>();
  const q = new EqualWaits<number>(20, (id, due) => {
    if (current.get(id) === due) fired.push(id);
  });
  for (let i = 0; i < 40; i++) current.set(i, q.add(i));
  current.set(3, 0); // no longer waits
  const deadline = Date.now() + 3000;
  while (fired.length < 39 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
  assert.deepEqual(fired, [...Array(40).keys()].filter((i) => i !== 3));
  assert.equal(q.size, 0);
});

test("the unacked queue is a ring: interleaved pushes and drops wrap and grow in order, and hold flat text", { timeout: 5_000 }, () => {
  const q = new UnackedQueue();
  let next = 0;
  let first = 0;
  for (let round = 0; round < 50; round++) {
    for (let k = 0; k < (round % 7) + 3; k++) q.push(`s${next++}`);
    const n = Math.min(q.length, (round % 5) + 1);
    q.drop(n);
    first += n;
    assert.deepEqual(q.pending(), [...Array(next - first).keys()].map((i) => `s${first + i}`));
  }
});
