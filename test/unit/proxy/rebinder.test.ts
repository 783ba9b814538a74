import { test } from "node:test";
import assert from "node:assert/strict";
import { Rebinder, type RebindHost } from "../../../src/proxy/rebinder.js";
import type { Session } from "../../../src/session/session.js";
import type { SessionRef } from "../../../src/channel/user-channel.js";

// Sessions binding again after a membership change (src/proxy/rebinder.ts): batched per owner, paced
// per event-loop turn, each judged when its batch goes. A fake worker: sessions are plain objects, the
// ring a map the test changes between turns.

interface Fake {
  address: string;
  bare: string;
  closed: boolean;
}

function world(n: number, owners: string[]) {
  const sessions: Fake[] = Array.from({ length: n }, (_, i) => ({ address: `u${i}@x/r`, bare: `u${i}@x`, closed: false }));
  const ring = new Map(sessions.map((s, i) => [s.bare, owners[i % owners.length]]));
  const sent: { owner: string; addresses: string[]; turn: number }[] = [];
  let turn = 0;
  const host: RebindHost = {
    current: (s) => !(s as unknown as Fake).closed,
    ownerOf: (bare) => ring.get(bare),
    refOf: (s) => ({ address: s.address }) as SessionRef,
    send: (owner, refs) => sent.push({ owner, addresses: refs.map((r) => r.address), turn }),
  };
  const ticking = setInterval(() => turn++, 0);
  const turns = () => new Promise<void>((r) => setImmediate(r));
  return { sessions: sessions as unknown as Session[], fakes: sessions, ring, sent, host, stop: () => clearInterval(ticking), turns };
}

const settle = async (r: Rebinder, deadlineMs = 3000): Promise<void> => {
  const until = Date.now() + deadlineMs;
  while (r.backlog > 0) {
    if (Date.now() > until) throw new Error(`rebinder still has ${r.backlog} sessions`);
    await new Promise((res) => setImmediate(res));
  }
};

test("one pass: every session that needs it is bound once at its owner, in messages of perMessage refs, perTurn sessions a turn", { timeout: 5000 }, async () => {
  const w = world(1000, ["a", "b", "c"]);
  const r = new Rebinder(w.host, { perTurn: 100, perMessage: 15 });
  // Only the sessions owned by b (a resync with b).
  r.add(w.sessions, (_s, owner) => owner === "b");
  assert.equal(w.sent.length, 0, "nothing in the turn of the change itself");
  assert.equal(r.backlog, 1000);
  await new Promise((res) => setImmediate(res));
  assert.equal(r.backlog, 900, "one turn looked at perTurn sessions");
  await settle(r);
  const all = w.sent.flatMap((m) => m.addresses);
  const owned = w.fakes.filter((s) => w.ring.get(s.bare) === "b").map((s) => s.address);
  assert.deepEqual(all.sort(), owned.sort(), "each session of b's once, no other");
  assert.ok(w.sent.every((m) => m.owner === "b" && m.addresses.length <= 15));
  assert.equal(r.bound, owned.length);
  assert.equal(r.messages, w.sent.length);
  // 1000 sessions at 100 a turn: 10 turns, each ending with a short message; 334 refs need ≥ 23 messages.
  assert.ok(w.sent.length >= Math.ceil(owned.length / 15) && w.sent.length <= Math.ceil(owned.length / 15) + 10, `${w.sent.length} messages`);
  w.stop();
});

test("judged when the batch goes: a session that ended is skipped, one whose owner changed again binds at its owner of now", { timeout: 5000 }, async () => {
  const w = world(300, ["a", "b"]);
  const r = new Rebinder(w.host, { perTurn: 50, perMessage: 1000 });
  r.add(w.sessions, () => true);
  w.fakes[250].closed = true;
  w.ring.set(w.fakes[260].bare, "c");
  await settle(r);
  const to = new Map<string, string>();
  for (const m of w.sent) for (const a of m.addresses) to.set(a, m.owner);
  assert.equal(to.size, 299);
  assert.ok(!to.has(w.fakes[250].address), "ended: not bound");
  assert.equal(to.get(w.fakes[260].address), "c");
  w.stop();
});

test("passes not started yet merge (the welcomes of several peers after a stall): the sessions are walked once", { timeout: 5000 }, async () => {
  const w = world(600, ["a", "b", "c"]);
  let looked = 0;
  const host: RebindHost = { ...w.host, current: (s) => (looked++, w.host.current(s)) };
  const r = new Rebinder(host, { perTurn: 1000, perMessage: 1000 });
  r.add(w.sessions, (_s, o) => o === "a");
  r.add(w.sessions, (_s, o) => o === "b");
  assert.equal(r.backlog, 600);
  await settle(r);
  assert.equal(looked, 600);
  assert.deepEqual(new Set(w.sent.map((m) => m.owner)), new Set(["a", "b"]));
  assert.equal(r.bound, 400);
  // A pass already under way is not changed: a later change walks the sessions again.
  const r2 = new Rebinder(w.host, { perTurn: 100, perMessage: 1000 });
  r2.add(w.sessions, (_s, o) => o === "a");
  await new Promise((res) => setImmediate(res));
  r2.add(w.sessions, (_s, o) => o === "c");
  assert.equal(r2.backlog, 500 + 600);
  await settle(r2);
  assert.equal(r2.bound, 400);
  w.stop();
});

test("perTurn Infinity (a bus without a heal window): everything at once, in the caller's turn", { timeout: 5000 }, () => {
  const w = world(50, ["a"]);
  const r = new Rebinder(w.host, { perTurn: Infinity, perMessage: 20 });
  r.add(w.sessions, () => true);
  assert.equal(r.backlog, 0);
  assert.deepEqual(w.sent.map((m) => m.addresses.length), [20, 20, 10]);
  w.stop();
});
