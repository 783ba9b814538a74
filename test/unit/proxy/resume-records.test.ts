import { test } from "node:test";
import assert from "node:assert/strict";
import { setImmediate as turn } from "node:timers/promises";
import { defaults } from "../../../src/config/config.js";
import { LocalHub, type LocalBus } from "../../../src/cluster/local-bus.js";
import type { BusMessage } from "../../../src/cluster/bus.js";
import { ProxyDaemon, type ProxyOptions } from "../../../src/proxy/proxy-daemon.js";
import { keeperOf, ResumeRecordDesk } from "../../../src/proxy/resume-records.js";
import { Session } from "../../../src/session/session.js";
import { Envelope, Flag } from "../../../src/envelope/envelope.js";
import type { HeldCopy, Recalled, ResumeRecord } from "../../../src/session/resume-record.js";

class Resumable extends Session {
  readonly protocol = "xmpp";
  readonly idPassThrough = true;
  constructor(
    address: string,
    readonly key: string,
    readonly user = address.slice(0, address.indexOf("@")),
  ) {
    super();
    this.address = address;
    this.bare = address.slice(0, address.indexOf("/"));
    this.resource = address.slice(address.indexOf("/") + 1);
    this.available = true;
  }
  readonly got: Envelope[] = [];
  deliver(env: Envelope): boolean {
    this.got.push(env);
    return true;
  }
  replaced(): void {}
  handled = 0;
}

const describe = (s: Session): ResumeRecord | null => {
  const r = s as Resumable;
  return { protocol: "xmpp", key: r.key, user: r.user, address: r.address, count: 0, windowMs: 5000, state: { available: r.available } };
};

/** Workers on hosts: ids "<host>-w<i>". A worker made dead stops receiving and leaves the hub (as an expired member). */
function world(hosts: Record<string, number>, leftover?: (rec: ResumeRecord, held: readonly HeldCopy[]) => Envelope[], resumeGraceMs = 0, batching = false) {
  const opts: ProxyOptions = {
    timeouts: { xmpp: { defaultMs: 30000, minMs: 1000, maxMs: 300000 } },
    sweepIntervalMs: 20,
    maxPendingPerSession: 10,
    maxInboundPerSession: 100,
    custody: { ...defaults().cluster.custody, resumeGraceMs },
  };
  const hub = new LocalHub(64);
  const buses: LocalBus[] = [];
  for (const [h, n] of Object.entries(hosts)) for (let i = 0; i < n; i++) buses.push(hub.join(`${h}-w${i}`, h));
  const sent: BusMessage[] = [];
  for (const b of buses) {
    const send = b.send.bind(b);
    b.send = (to, msg) => {
      sent.push(msg);
      send(to, msg);
    };
  }
  // As NatsBus does (ClusterBus.beforePublish): called once when the turn's batch goes, a turn later.
  if (batching) {
    for (const b of buses) {
      let queued: (() => void)[] = [];
      (b as LocalBus & { beforePublish(cb: () => void): void }).beforePublish = (cb) => {
        if (queued.length === 0) setImmediate(() => {
          const cbs = queued;
          queued = [];
          for (const f of cbs) f();
        });
        queued.push(cb);
      };
    }
  }
  const proxies = new Map(buses.map((b) => [b.workerId, new ProxyDaemon(b, opts)]));
  for (const p of proxies.values()) {
    p.records.describer("xmpp", describe, (s) => (s as Resumable).handled, leftover);
    p.start();
  }
  return {
    hub,
    proxies,
    sent,
    p: (id: string) => proxies.get(id)!,
    /** SIGKILL: nothing more from it, and the others see it leave. */
    kill(id: string) {
      proxies.get(id)!.stop();
      proxies.delete(id);
      hub.leave(id);
    },
    stop() {
      for (const p of proxies.values()) p.stop();
    },
  };
}

function recall(p: ProxyDaemon, key: string, user: string, h = 0): Promise<Recalled | null> {
  return new Promise((resolve) => p.records.recall("xmpp", key, user, h, resolve));
}

test("the keeper is on another host when there is one, else another worker of the host, none when alone", () => {
  const one = { hosts: { a: ["a-w0"] }, vnodes: 8 };
  assert.equal(keeperOf("a-w0", one), "");
  const host = { hosts: { a: ["a-w0", "a-w1", "a-w2"] }, vnodes: 8 };
  assert.notEqual(keeperOf("a-w0", host), "a-w0");
  assert.ok(["a-w1", "a-w2"].includes(keeperOf("a-w0", host)));
  const three = { hosts: { a: ["a-w0", "a-w1"], b: ["b-w0", "b-w1"], c: ["c-w0"] }, vnodes: 8 };
  for (const w of ["a-w0", "a-w1"]) assert.ok(!keeperOf(w, three).startsWith("a-"), `${w}'s keeper on another host`);
  // The same membership gives every worker the same answer.
  assert.equal(keeperOf("b-w1", three), keeperOf("b-w1", { hosts: { c: ["c-w0"], b: ["b-w1", "b-w0"], a: ["a-w1", "a-w0"] }, vnodes: 8 }));
});

test("records ride to the keeper once per turn: whole when kept, then only the count; a clean end drops them", { timeout: 5000 }, async () => {
  const w = world({ a: 2 });
  const p0 = w.p("a-w0");
  const p1 = w.p("a-w1");
  await turn();
  const s = new Resumable("alice@localhost/phone", "K1");
  p0.attach(s);
  p0.records.keep(s);
  for (let h = 1; h <= 5; h++) p0.records.counted(s, h);
  const before = w.sent.filter((m) => m.op === "records").length;
  await turn();
  const out = w.sent.filter((m) => m.op === "records").slice(before) as Extract<BusMessage, { op: "records" }>[];
  assert.equal(out.length, 1, "one bus message for the turn");
  assert.equal(out[0].keep.length, 1);
  assert.equal(out[0].keep[0].count, 5, "the latest count, in the whole record");
  assert.equal(p1.records.size, 1);
  p0.records.counted(s, 9);
  await turn();
  const last = w.sent.at(-1) as Extract<BusMessage, { op: "records" }>;
  assert.deepEqual([last.keep.length, last.counts], [0, [["K1", 9]]], "only the count");
  // The holder lives: a recall finds the record and names its holder, and does not take it.
  assert.deepEqual(await recall(p1, "K1", "alice"), { record: { ...describe(s)!, count: 9 }, holder: "a-w0" });
  assert.equal(await recall(p1, "K1", "mallory"), null, "another account's recall finds nothing");
  p0.detach(s);
  await turn();
  assert.equal(p1.records.size, 0, "dropped at a clean end");
  w.stop();
});

test("the holder dies: its keeper keeps the records for their window; one recall takes each; then they expire", { timeout: 5000 }, async () => {
  const w = world({ a: 2, b: 1 });
  const p0 = w.p("a-w0");
  const keeper = p0.records.keeperNow;
  assert.equal(keeper, "b-w0", "on the other host");
  const s = new Resumable("alice@localhost/phone", "K2");
  const t = new Resumable("bob@localhost/pc", "K3");
  for (const x of [s, t]) {
    p0.attach(x);
    p0.records.keep(x);
  }
  p0.records.counted(s, 7);
  await turn();
  w.kill("a-w0");
  // Asked on the other worker of the dead one's host: found at the keeper, taken.
  const found = await recall(w.p("a-w1"), "K2", "alice");
  assert.equal(found?.holder, "", "its holder is gone");
  assert.equal(found?.record.count, 7);
  assert.equal(found?.record.address, "alice@localhost/phone");
  assert.equal(await recall(w.p("a-w1"), "K2", "alice"), null, "taken by the first recall");
  assert.equal(w.p("b-w0").records.stats.orphaned, 2);
  // The window (5 s in `describe`) passes: the sweep lets the other one go.
  w.p("b-w0").records.expire(performance.now() + 6000);
  assert.equal(await recall(w.p("a-w1"), "K3", "bob"), null, "expired");
  w.stop();
});

test("a keeper that dies too takes the records with it: the recall finds nothing (the client fails cleanly and logs in)", { timeout: 5000 }, async () => {
  const w = world({ a: 2, b: 1 });
  const s = new Resumable("alice@localhost/phone", "K4");
  w.p("a-w0").attach(s);
  w.p("a-w0").records.keep(s);
  await turn();
  w.kill("a-w0");
  w.kill("b-w0");
  assert.equal(await recall(w.p("a-w1"), "K4", "alice"), null);
  w.stop();
});

test("a keeper that leaves: the holder sends every record to its new keeper", { timeout: 5000 }, async () => {
  const w = world({ a: 1, b: 1, c: 1 });
  const p0 = w.p("a-w0");
  const first = p0.records.keeperNow;
  const s = new Resumable("alice@localhost/phone", "K5");
  p0.attach(s);
  p0.records.keep(s);
  p0.records.counted(s, 3);
  await turn();
  w.kill(first);
  const second = p0.records.keeperNow;
  assert.ok(second !== first && second !== "a-w0" && second !== "");
  await turn();
  assert.equal(w.p(second).records.size, 1, "the new keeper has it");
  w.kill("a-w0");
  const other = ["a-w0", "b-w0", "c-w0"].find((x) => x !== first && x !== "a-w0" && x !== second);
  const asker = other !== undefined ? w.p(other) : w.p(second);
  const found = await recall(asker, "K5", "alice");
  assert.equal(found?.record.count, 3);
  w.stop();
});

test("a count follows the session's a turn after it submitted, and by the sweep", { timeout: 5000 }, async () => {
  const w = world({ a: 2 });
  await turn();
  const p0 = w.p("a-w0");
  const p1 = w.p("a-w1");
  const s = new Resumable("alice@localhost/phone", "K6");
  p0.attach(s);
  p0.records.keep(s);
  await turn();
  const kept = () => (recall(p1, "K6", "alice") as Promise<Recalled | null>).then((r) => r?.record.count);
  assert.equal(await kept(), 0);
  s.handled = 4;
  p0.records.touched(s);
  assert.equal(await kept(), 0, "not before the turn's end");
  await turn();
  await turn();
  assert.equal(await kept(), 4, "a turn after (on NATS: right after the bus published the turn's messages)");
  // An iq the server answers submits nothing: the sweep (every second) catches the count.
  s.handled = 6;
  p0.records.expire(performance.now() + 2000);
  await turn();
  assert.equal(await kept(), 6);
  w.stop();
});

const heldIn = (msgs: BusMessage[]) => msgs.flatMap((m) => (m.op === "records" ? m.held.map((h) => h[2]) : []));

test("copies of what a session alone holds go into the turn's bus batch; acknowledged ones go", { timeout: 5000 }, async () => {
  const w = world({ a: 2, b: 1 });
  const p0 = w.p("a-w0");
  const keeper = w.p(p0.records.keeperNow);
  const s = new Resumable("alice@localhost/phone", "K7");
  p0.attach(s);
  p0.records.keep(s);
  await turn();
  const from = w.sent.length;
  // With a keeper a stream writing a message calls replicate (xmpp-session.ts tests `copying` first).
  assert.equal(p0.records.copying, true);
  p0.records.replicate(s, 1, "<message id='1'/>", "");
  p0.records.replicate(s, 2, "<message id='2'/>", "a-w0.17");
  // Held in custody by a live worker of another host: that worker routes it again if this one (or its host) dies.
  p0.records.replicate(s, 3, "<message id='3'/>", "b-w0.5");
  p0.records.replicate(s, 4, "<message id='4'/>", "gone-w9.5");
  assert.deepEqual(heldIn(w.sent.slice(from)), ["<message id='1'/>", "<message id='2'/>", "<message id='4'/>"], "into the bus at once (the turn's batch), not a turn later");
  assert.equal(p0.records.stats.copied, 3);
  p0.records.acked(s, 2);
  await turn();
  w.kill("a-w0");
  const found = await recall(w.p("a-w1"), "K7", "alice");
  assert.deepEqual(found?.held, [[4, "<message id='4'/>"]], "what the client acknowledged is gone");
  assert.equal(keeper.records.size, 0);
  w.stop();
});

test("a worker alone has no keeper: it copies nothing, and says so (copying), so streams skip replicate", { timeout: 5000 }, async () => {
  const w = world({ a: 1 });
  const p0 = w.p("a-w0");
  const s = new Resumable("alice@localhost/phone", "K8");
  p0.attach(s);
  p0.records.keep(s);
  await turn();
  assert.equal(p0.records.keeperNow, "");
  assert.equal(p0.records.copying, false);
  const from = w.sent.length;
  p0.records.replicate(s, 1, "<message id='1'/>", "");
  await turn();
  assert.deepEqual(heldIn(w.sent.slice(from)), []);
  assert.equal(p0.records.stats.copied, 0);
  w.stop();
});

test("held by another worker of this host: copied when the keeper is on another host (a host's death takes both), not when it is on this one", { timeout: 5000 }, async () => {
  const two = world({ a: 2, b: 1 });
  const s = new Resumable("alice@localhost/phone", "K9");
  two.p("a-w0").attach(s);
  two.p("a-w0").records.keep(s);
  await turn();
  two.p("a-w0").records.replicate(s, 1, "<message id='1'/>", "a-w1.5");
  assert.equal(two.p("a-w0").records.stats.copied, 1, "keeper on host b");
  two.stop();
  const one = world({ a: 3 });
  const t = new Resumable("bob@localhost/phone", "K10");
  one.p("a-w0").attach(t);
  one.p("a-w0").records.keep(t);
  await turn();
  one.p("a-w0").records.replicate(t, 1, "<message id='1'/>", "a-w1.5");
  assert.equal(one.p("a-w0").records.stats.copied, 0, "one host: its death takes the keeper too; a worker's death leaves the custodian");
  one.stop();
});

test("on a batching bus the copies of one turn go in one bus message when the turn's batch goes", { timeout: 5000 }, async () => {
  const w = world({ a: 2, b: 1 }, undefined, 0, true);
  const p0 = w.p("a-w0");
  const s = new Resumable("alice@localhost/phone", "K8");
  p0.attach(s);
  p0.records.keep(s);
  await turn();
  const from = w.sent.length;
  for (let n = 1; n <= 5; n++) p0.records.replicate(s, n, `<message id='${n}'/>`, "");
  assert.equal(heldIn(w.sent.slice(from)).length, 0, "not yet: at the start of the turn's publish");
  await turn();
  const msgs = w.sent.slice(from).filter((m) => m.op === "records" && m.held.length > 0);
  assert.equal(msgs.length, 1, "one message for the turn");
  assert.deepEqual(heldIn(msgs), [1, 2, 3, 4, 5].map((n) => `<message id='${n}'/>`));
  p0.records.acked(s, 3);
  await turn();
  w.kill("a-w0");
  const found = await recall(w.p("a-w1"), "K8", "alice");
  assert.deepEqual(found?.held, [[4, "<message id='4'/>"], [5, "<message id='5'/>"]]);
  w.stop();
});

test("a new keeper gets the copies again; a window that passes sends them on to the user", { timeout: 5000 }, async () => {
  const routed: string[] = [];
  const leftover = (rec: ResumeRecord, held: readonly HeldCopy[]) =>
    held.map(([, wire]) => {
      routed.push(wire);
      return Envelope.message({ from: "bob@localhost/pc", to: rec.address, protocol: "xmpp", payload: null, flags: Flag.Offline | Flag.BareFallback, id: wire });
    });
  const w = world({ a: 1, b: 1, c: 1 }, leftover);
  const p0 = w.p("a-w0");
  const first = p0.records.keeperNow;
  const s = new Resumable("alice@localhost/phone", "K8");
  p0.attach(s);
  p0.records.keep(s);
  p0.records.replicate(s, 1, "<message id='m1'/>", "");
  p0.records.replicate(s, 2, "<message id='m2'/>", "");
  await turn();
  p0.records.acked(s, 1);
  await turn();
  w.kill(first);
  const second = p0.records.keeperNow;
  await turn();
  await turn();
  // The holder dies; nobody resumes; a new session of the user is on the third worker.
  const third = ["a-w0", "b-w0", "c-w0"].find((x) => x !== first && x !== "a-w0" && x !== second);
  const other = w.p(third ?? second);
  const again = new Resumable("alice@localhost/laptop", "K9");
  other.attach(again);
  await turn();
  w.kill("a-w0");
  w.p(second).records.expire(performance.now() + 6000);
  assert.deepEqual(routed, ["<message id='m2'/>"], "the unacknowledged one, once");
  assert.equal(w.p(second).records.stats.copiesRouted, 1);
  const until = Date.now() + 3000;
  while (again.got.length === 0 && Date.now() < until) await turn();
  assert.deepEqual(
    again.got.map((e) => e.id),
    ["<message id='m2'/>"],
    "delivered to the user's session by the bare-address fallback",
  );
  w.stop();
});

test("a window that passed: the copies wait for the client's count, and only those beyond it go on", { timeout: 5000 }, async () => {
  const routed: string[] = [];
  const leftover = (_rec: ResumeRecord, held: readonly HeldCopy[]) => {
    for (const [, wire] of held) routed.push(wire);
    return [];
  };
  const w = world({ a: 2, b: 1 }, leftover, 10_000);
  const p0 = w.p("a-w0");
  const keeper = w.p(p0.records.keeperNow);
  const s = new Resumable("alice@localhost/phone", "KA");
  const t = new Resumable("bob@localhost/pc", "KB");
  for (const [x, key] of [[s, "KA"], [t, "KB"]] as const) {
    p0.attach(x);
    p0.records.keep(x);
    for (let n = 1; n <= 3; n++) p0.records.replicate(x, n, `<message id='${key}${n}'/>`, "");
  }
  await turn();
  w.kill("a-w0");
  const now = performance.now();
  keeper.records.expire(now + 6000);
  assert.deepEqual(routed, [], "the window passed: its copies wait for the client's count");
  assert.equal(await recall(w.p("a-w1"), "KA", "alice", 1), null, "not resumable any more");
  assert.deepEqual(routed, ["<message id='KA2'/>", "<message id='KA3'/>"], "what the client had not received, at once");
  keeper.records.expire(now + 17_000);
  assert.deepEqual(routed.slice(2), ["<message id='KB1'/>", "<message id='KB2'/>", "<message id='KB3'/>"], "no count came: all, after the grace");
  assert.equal(keeper.records.stats.expired, 2);
  w.stop();
});

/** A holder's desk alone, on a host that says whether its bus will publish this turn (ClusterBus.pending). */
function desk(busPending: () => boolean) {
  const sent: BusMessage[] = [];
  const d = new ResumeRecordDesk({
    workerId: "a-w0",
    send: (_w, msg) => void sent.push(msg),
    membership: () => ({ hosts: { a: ["a-w0"], b: ["b-w0"] }, vnodes: 64 }),
    busPending,
    route: () => {},
  });
  d.describer("xmpp", describe, (s) => (s as Resumable).handled);
  const counts = () => sent.flatMap((m) => (m.op === "records" ? m.counts : []));
  return { d, sent, counts };
}

test("on a batching bus a count goes right behind the turn's publish, not a turn or two later", { timeout: 5000 }, async () => {
  let pending = true;
  const { d, counts } = desk(() => pending);
  const s = new Resumable("alice@localhost/phone", "K9");
  d.keep(s);
  await turn();
  s.handled = 3;
  d.touched(s);
  await turn();
  assert.deepEqual(counts(), [], "left for the publish (its setImmediate came after the touch's)");
  d.busPublishing();
  assert.deepEqual(counts(), [["K9", 3]], "behind the publish, in the same write");
  // A turn whose stanzas put nothing on the bus: read at its end, sent a turn later, as before.
  pending = false;
  s.handled = 5;
  d.touched(s);
  await turn();
  await turn();
  assert.deepEqual(counts(), [["K9", 3], ["K9", 5]]);
});

test("a batch gathered before a stall: the sessions it counted are handed back with their last count, which never goes", { timeout: 5000 }, async () => {
  const { d, counts } = desk(() => true);
  const s = new Resumable("alice@localhost/phone", "K10");
  d.keep(s);
  await turn();
  s.handled = 2;
  d.touched(s);
  d.busPublishing();
  s.handled = 4;
  d.touched(s);
  await turn();
  assert.deepEqual(d.untouch().map(([x, n]) => [x === s, n]), [[true, 2]], "the count the keeper has");
  d.busPublishing();
  await turn();
  assert.deepEqual(counts(), [["K10", 2]], "4 never goes: its stanzas' effects are dropped, and the client sends them again");
  assert.deepEqual(d.untouch(), []);
});

test("the holder restarts under the same id while a recall waits: the record kept for it is taken, not its holder named (issue 14)", { timeout: 5000 }, async () => {
  // A host of two workers; a-w0 keeps a-w1's records. a-w1 is SIGKILLed and restarts before a-w0 notices it died, so a-w0
  // sees it only as restarted (a new incarnation, the same id), while the client's resumption is already asking.
  const m = { hosts: { a: ["a-w0", "a-w1"] }, vnodes: 8 };
  const sent: [string, BusMessage][] = [];
  const desk = new ResumeRecordDesk({ workerId: "a-w0", send: (w, msg) => sent.push([w, msg]), membership: () => m, route: () => {} });
  const rec: ResumeRecord = { protocol: "xmpp", key: "KR", user: "alice", address: "alice@localhost/r", count: 4, windowMs: 20_000, state: {} };
  desk.onRecords({ op: "records", from: "a-w1", reset: true, keep: [rec], counts: [], drop: [], held: [["KR", 5, "<message id='m5'/>"]], acks: [] });
  const got: { found?: Recalled | null; again?: Recalled | null } = {};
  desk.recall("xmpp", "KR", "alice", 4, (r) => (got.found = r));
  assert.equal(got.found, undefined, "its holder is live: the others are asked first");
  assert.ok(sent.some(([w, msg]) => w === "a-w1" && msg.op === "recall"));
  desk.membershipChanged(m, ["a-w1"], []);
  // Named "a-w1", the client would claim the session there, where the new process has none, and fail to resume.
  const found = got.found as Recalled | null | undefined;
  assert.equal(found?.holder, "", "taken: the holder that had the session is gone");
  assert.equal(found?.record.count, 4);
  assert.deepEqual(found?.held, [[5, "<message id='m5'/>"]], "with the copies of what its client had not acknowledged");
  desk.recall("xmpp", "KR", "alice", 4, (r) => (got.again = r));
  await turn();
  desk.membershipChanged(m, ["a-w1"], []);
  assert.equal(got.again, null, "taken once");
});

test("alone (no keeper), a stanza costs nothing here; a keeper that appears gets the count the sweep read, then counts as stanzas come", { timeout: 5000 }, async () => {
  let hosts: Record<string, string[]> = { a: ["a-w0"] };
  const sent: BusMessage[] = [];
  const d = new ResumeRecordDesk({ workerId: "a-w0", send: (_w, msg) => void sent.push(msg), membership: () => ({ hosts, vnodes: 64 }), route: () => {} });
  d.describer("xmpp", describe, (s) => (s as Resumable).handled);
  const s = new Resumable("alice@localhost/phone", "K12");
  d.keep(s);
  await turn();
  s.handled = 3;
  d.touched(s);
  assert.equal(d.untouch().length, 0, "nothing noted per stanza while alone");
  // The sweep (once a second) keeps the count current, telling nobody.
  d.expire(performance.now() + 2000);
  s.handled = 5;
  await turn();
  assert.equal(sent.length, 0);
  hosts = { a: ["a-w0"], b: ["b-w0"] };
  d.membershipChanged({ hosts, vnodes: 64 }, [], []);
  await turn();
  const kept = sent.flatMap((m) => (m.op === "records" ? m.keep : []));
  assert.deepEqual(kept.map((r) => [r.key, r.count]), [["K12", 3]], "the sweep's count: stanzas it covers were handled turns before");
  d.touched(s);
  await turn();
  await turn();
  assert.deepEqual(sent.flatMap((m) => (m.op === "records" ? m.counts : [])), [["K12", 5]], "then the count follows the session's");
});

test("the asker sees the holder leave before the keeper does: asked again, the keeper gives up the record with its copies, and sends nothing on later (kill-host)", { timeout: 5000 }, () => {
  // A host's death: a-w0 (the holder) dies; c-w0, where its client resumes, sees it leave first, b-w0 (the keeper) a
  // few hundred ms later (each worker's heartbeat timeout runs on its own). The keeper answered the recall meanwhile.
  const before = { hosts: { a: ["a-w0"], b: ["b-w0"], c: ["c-w0"] }, vnodes: 8 };
  const after = { hosts: { b: ["b-w0"], c: ["c-w0"] }, vnodes: 8 };
  const queue: [string, BusMessage][] = [];
  const routed: string[] = [];
  const keeper = new ResumeRecordDesk({ workerId: "b-w0", send: (w, msg) => void queue.push([w, msg]), membership: () => before, route: (env) => void routed.push(env.id) }, 1000, 10_000);
  keeper.describer("xmpp", describe, () => 0, (rec, held) => held.map(([, wire]) => Envelope.message({ from: "bob@localhost/pc", to: rec.address, protocol: "xmpp", payload: null, flags: Flag.Offline, id: wire })));
  const asker = new ResumeRecordDesk({ workerId: "c-w0", send: (w, msg) => void queue.push([w, msg]), membership: () => before, route: () => {} });
  const rec: ResumeRecord = { protocol: "xmpp", key: "KT", user: "alice", address: "alice@localhost/r", count: 4, windowMs: 20_000, state: {} };
  // Two messages the dead session wrote alone (its sender on its own worker): the client had the first, not the second.
  keeper.onRecords({ op: "records", from: "a-w0", reset: true, keep: [rec], counts: [], drop: [], held: [["KT", 5, "<message id='m5'/>"], ["KT", 6, "<message id='m6'/>"]], acks: [] });
  /** The bus between the two (a-w0 answers nothing: it is dead). */
  const pump = () => {
    while (queue.length > 0) {
      const [to, msg] = queue.shift()!;
      if (to === "b-w0" && msg.op === "recall") keeper.onRecall(msg);
      else if (to === "c-w0" && msg.op === "recalled") asker.onRecalled(msg);
    }
  };
  let found: Recalled | null | undefined;
  asker.recall("xmpp", "KT", "alice", 5, (r) => (found = r));
  pump();
  assert.equal(found, undefined, "waiting for the dead holder's answer");
  asker.membershipChanged(after, [], []);
  assert.equal(found, undefined, "the keeper named a holder that left: asked again");
  pump();
  const got = found as Recalled | null | undefined;
  assert.equal(got?.holder, "", "taken: rebuilt here");
  assert.equal(got?.record.count, 4);
  assert.deepEqual(got?.held, [[5, "<message id='m5'/>"], [6, "<message id='m6'/>"]], "with the copies (the client's count drops those it had)");
  // The keeper sees the death now; the window and the grace pass: nothing is sent on again.
  keeper.membershipChanged(after, [], []);
  const now = performance.now();
  keeper.expire(now + 21_000);
  keeper.expire(now + 32_000);
  assert.deepEqual(routed, [], "the copies went with the record, not again to the rebuilt session or offline storage");
  assert.equal(keeper.size, 0);
});

test("the asker sees the holder leave, the keeper does not give the record up (it has none now): the answer it had stands", { timeout: 5000 }, () => {
  const before = { hosts: { a: ["a-w0"], b: ["b-w0"], c: ["c-w0"] }, vnodes: 8 };
  const queue: [string, BusMessage][] = [];
  const asker = new ResumeRecordDesk({ workerId: "c-w0", send: (w, msg) => void queue.push([w, msg]), membership: () => before, route: () => {} });
  const rec: ResumeRecord = { protocol: "xmpp", key: "KU", user: "alice", address: "alice@localhost/r", count: 4, windowMs: 20_000, state: {} };
  let found: Recalled | null | undefined;
  asker.recall("xmpp", "KU", "alice", 4, (r) => (found = r));
  const recall = queue.find(([w]) => w === "b-w0")![1] as Extract<BusMessage, { op: "recall" }>;
  asker.onRecalled({ op: "recalled", token: recall.token, from: "b-w0", found: { record: rec, holder: "a-w0" } });
  queue.length = 0;
  asker.membershipChanged({ hosts: { b: ["b-w0"], c: ["c-w0"] }, vnodes: 8 }, [], []);
  const again = queue.find(([w, m]) => w === "b-w0" && m.op === "recall")?.[1] as Extract<BusMessage, { op: "recall" }> | undefined;
  assert.equal(again?.gone, "a-w0", "asked again, with the holder it saw leave");
  asker.onRecalled({ op: "recalled", token: again!.token, from: "b-w0", found: null });
  assert.equal((found as Recalled | null | undefined)?.holder, "a-w0", "the first answer: rebuilt from the record as before");
});
