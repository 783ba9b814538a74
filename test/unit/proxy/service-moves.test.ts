import { test } from "node:test";
import assert from "node:assert/strict";
import { setImmediate as turn } from "node:timers/promises";
import { Envelope, Flag } from "../../../src/envelope/envelope.js";
import type { BusMessage } from "../../../src/cluster/bus.js";
import type { OwnedService } from "../../../src/session/service.js";
import { ServiceMoves } from "../../../src/proxy/service-moves.js";
import { monotonicMs } from "../../../src/timer/clock.js";

// Rooms moving between workers (src/proxy/service-moves.ts) without a bus: what goes where, what waits, and
// for how long, under the orders in which workers of a NATS cluster may see a ring change.

const D = "conference.x";
const R = `r@${D}`;
const X = `x@${D}`;

function bed(opts: { healMs?: number; members?: string[]; ring?: string; serve?: boolean } = {}) {
  const sent: [string, BusMessage][] = [];
  const served: string[] = [];
  const rooms = new Map<string, string>();
  const owners = new Map<string, string>();
  let members = opts.members ?? ["w0", "w1", "w2"];
  let registered = opts.serve !== false;
  const svc: OwnedService = {
    receive: (env) => void served.push(`${env.to} ${String(env.payload)}${rooms.has(env.to.split("/")[0]) ? " (room)" : ""}`),
    holds: (bare) => rooms.has(bare),
    handOff: (owns) => {
      const out: [string, string][] = [];
      for (const [b, s] of rooms) if (!owns(b)) (out.push([b, s]), rooms.delete(b));
      return out;
    },
    adopt: (bare, state) => (rooms.has(bare) ? false : (rooms.set(bare, state), true)),
  };
  let moves!: ServiceMoves;
  const receive = (env: Envelope, via: string) => {
    const bare = env.to.split("/")[0];
    if (!svc.holds!(bare) && moves.unheld(env, via, bare)) return;
    svc.receive(env, via);
  };
  moves = new ServiceMoves(
    {
      self: "w1",
      ownerOf: (bare) => owners.get(bare) ?? "w1",
      send: (to, msg) => void sent.push([to, msg]),
      members: () => members,
      healMs: () => opts.healMs ?? 0,
      services: () => (registered ? [svc] : []),
      serviceOf: () => (registered ? svc : undefined),
      receive,
      serve: (env, via) => svc.receive(env, via),
    },
    opts.ring ?? "k1",
  );
  const stanza = (to: string, body: string, via = "w0") => receive(Envelope.message({ from: "a@x/r", to, protocol: "xmpp", payload: body, flags: Flag.Service }), via);
  return {
    moves, sent, served, rooms, owners, stanza,
    setMembers: (m: string[]) => (members = m),
    register: () => ((registered = true), moves.served(D)),
    take: () => sent.splice(0).map(([to, m]) => (m.op === "moved" ? `${to} moved ${m.states.map((s) => s[0]).join(",")}${m.done ? " done" : ""} ${m.ring}${m.placed.length > 0 ? ` placed ${m.placed.map((x) => x.join(">")).join(",")}` : ""}` : m.op === "service" ? `${to} service ${m.via} ${String(m.env.payload)}` : `${to} ${m.op}`)),
  };
}

test("the old owner hands each room it no longer owns to its new owner, tells every worker it is done, and sends on what still comes", { timeout: 5000 }, async () => {
  const b = bed();
  await turn();
  assert.deepEqual(b.take().sort(), ["w0 moved  done k1", "w2 moved  done k1"], "a starting worker says done, with nothing");
  b.rooms.set(R, "state-of-r");
  b.rooms.set(X, "state-of-x");
  b.owners.set(R, "w2");
  b.moves.ringChanged("k2", monotonicMs());
  // Handed off one turn later: meanwhile the room is still here and serves.
  b.stanza(R, "m1");
  assert.deepEqual(b.served, [`${R} m1 (room)`]);
  await turn();
  assert.deepEqual(b.take().sort(), ["w0 moved  done k2", "w2 moved r@conference.x done k2"]);
  assert.deepEqual([...b.rooms.keys()], [X], "x stays: still owned here");
  // A sender whose ring is behind: sent on to the new owner, with the sender's place.
  b.stanza(`${R}/nick`, "m2", "w0");
  assert.deepEqual(b.take(), ["w2 service w0 m2"]);
  assert.equal(b.moves.stats.movedOut, 1);
  // Past the forwarding time, no more: it is one more stanza for a room not here.
  b.moves.sweep(monotonicMs() + 31_000);
  b.stanza(R, "m3");
  assert.deepEqual(b.take(), []);
  assert.ok(b.served.includes(`${R} m3`));
});

test("the new owner holds what comes for a room it does not hold until the state, or every worker's done, or the window's end", { timeout: 5000 }, async () => {
  const b = bed();
  await turn();
  b.take();
  b.moves.ringChanged("k2", monotonicMs());
  b.stanza(R, "m1", "w2");
  b.stanza(X, "j1", "w2");
  b.stanza(R, "m2", "w0");
  assert.deepEqual(b.served, [], "both wait");
  // w0's state for r: r goes on with what waited for it, in order; x waits for w2's word.
  b.moves.onMoved({ op: "moved", from: "w0", ring: "k2", states: [[R, "s"]], done: true, placed: [] });
  assert.deepEqual(b.served, [`${R} m1 (room)`, `${R} m2 (room)`]);
  b.moves.onMoved({ op: "moved", from: "w2", ring: "k1", states: [], done: true, placed: [] });
  assert.equal(b.served.length, 2, "a done for another ring is not the one awaited");
  b.moves.onMoved({ op: "moved", from: "w2", ring: "k2", states: [], done: true, placed: [] });
  assert.deepEqual(b.served.slice(2), [`${X} j1`], "nobody had x: it is served as a room not here (a join makes it)");
  // Now nothing waits.
  b.stanza(`y@${D}`, "j2");
  assert.deepEqual(b.served.slice(3), [`y@${D} j2`]);
  // A done that came before this worker saw the ring: not waited for again.
  b.moves.onMoved({ op: "moved", from: "w0", ring: "k3", states: [], done: true, placed: [] });
  b.moves.onMoved({ op: "moved", from: "w2", ring: "k3", states: [], done: true, placed: [] });
  b.moves.ringChanged("k3", monotonicMs());
  b.stanza(`z@${D}`, "j3");
  assert.deepEqual(b.served.slice(4), [`z@${D} j3`]);
  // A worker that never says done: the window ends (the sweep), and what waited is served.
  b.moves.ringChanged("k4", monotonicMs());
  b.stanza(`q@${D}`, "j4");
  assert.equal(b.served.length, 5);
  b.moves.sweep(monotonicMs() + 1001);
  assert.deepEqual(b.served.slice(5), [`q@${D} j4`]);
});

test("what comes here while this worker's ring names another owner waits for its next ring change, then travels by it", { timeout: 5000 }, async () => {
  const b = bed({ healMs: 3000 });
  await turn();
  b.moves.onMoved({ op: "moved", from: "w0", ring: "k1", states: [], done: true, placed: [] });
  b.moves.onMoved({ op: "moved", from: "w2", ring: "k1", states: [], done: true, placed: [] });
  b.take();
  // The sender's ring is ahead: this worker's still names w2.
  b.owners.set(R, "w2");
  b.stanza(R, "m1", "w0");
  assert.deepEqual([b.served, b.take()], [[], []]);
  // Its ring catches up: now it owns r, whose state w2 sends.
  b.owners.delete(R);
  b.moves.ringChanged("k2", monotonicMs());
  assert.deepEqual(b.served, [], "now it waits for the state");
  b.moves.onMoved({ op: "moved", from: "w2", ring: "k2", states: [[R, "s"]], done: true, placed: [] });
  assert.deepEqual(b.served, [`${R} m1 (room)`]);
  // No change comes: after the heal window it is served here.
  b.moves.onMoved({ op: "moved", from: "w0", ring: "k2", states: [], done: true, placed: [] });
  b.owners.set(X, "w2");
  b.stanza(X, "m2");
  b.moves.sweep(monotonicMs() + 3001);
  assert.deepEqual(b.served.slice(1), [`${X} m2`]);
  // A ring change that names another owner: it goes there, as it came.
  b.stanza(X, "m3", "w0");
  b.moves.ringChanged("k3", monotonicMs());
  assert.deepEqual(b.take().filter((s) => s.includes("service")), ["w2 service w0 m3"]);
});

test("states that come before the service is registered are kept for it; a draining worker hands everything on and says no done", { timeout: 5000 }, async () => {
  const b = bed({ serve: false });
  await turn();
  b.take();
  b.moves.onMoved({ op: "moved", from: "w0", ring: "k1", states: [[R, "s"]], done: true, placed: [] });
  assert.equal(b.rooms.size, 0);
  b.register();
  assert.deepEqual([...b.rooms], [[R, "s"]]);
  assert.equal(b.moves.stats.movedIn, 1);
  // Every live worker is told where r went (they route there while their ring names this one), w2 with its state.
  assert.deepEqual(b.moves.draining((bare) => (bare === R ? "w2" : "w0")).sort(), ["w0", "w2"]);
  assert.deepEqual(b.take().sort(), [`w0 moved  k1 placed ${R}>w2`, `w2 moved ${R} k1 placed ${R}>w2`]);
  // A room not here: to its owner without this worker. One given here while draining: on again.
  b.stanza(X, "j1", "w1");
  b.moves.onMoved({ op: "moved", from: "w0", ring: "k1", states: [[X, "sx"]], done: false, placed: [] });
  assert.deepEqual(b.take().sort(), ["w0 moved x@conference.x k1 placed x@conference.x>w0", "w0 service w1 j1", `w2 moved  k1 placed ${X}>w0`]);
  assert.equal(b.rooms.size, 0);
});

test("a worker told where a draining worker's room went routes there, and holds nothing for it, until the drainer leaves", { timeout: 5000 }, async () => {
  const b = bed();
  await turn();
  b.moves.ringChanged("k1", monotonicMs());
  b.moves.onMoved({ op: "moved", from: "w0", ring: "k1", states: [], done: true, placed: [] });
  b.take();
  // w2 still waits to say done: r's stanza waits here; then w2 drains and says r is on w0.
  b.stanza(R, "m1", "w1");
  b.moves.onMoved({ op: "moved", from: "w2", ring: "k1", states: [], done: false, placed: [[R, "w0"]] });
  assert.deepEqual(b.take(), ["w0 service w1 m1"]);
  assert.equal(b.moves.placedAt(R), "w0");
  // The drainer left: the ring names the owner again.
  b.setMembers(["w0", "w1"]);
  b.moves.ringChanged("k2", monotonicMs());
  assert.equal(b.moves.placedAt(R), undefined);
});
