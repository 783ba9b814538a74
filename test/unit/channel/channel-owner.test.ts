import { test } from "node:test";
import assert from "node:assert/strict";
import { ChannelOwner, type Delivery } from "../../../src/channel/channel-owner.js";
import type { SessionRef } from "../../../src/channel/user-channel.js";
import { Envelope, Flag, Kind } from "../../../src/envelope/envelope.js";
import { monotonicMs } from "../../../src/timer/clock.js";

// The owner's side of seed 000 on its own: what it hands on for each envelope,
// as told to the worker it runs in (Delivery), which here writes it down.

interface Said {
  to: string[];
  undeliverable: Envelope[];
  routed: Envelope[];
  replaced: string[];
  /** For each in `replaced`: the address of the session that replaced it. */
  by: string[];
  told: string[];
  /** What toSession was given, by session resource. */
  envs: [string, Envelope][];
}

function owner(self = "w0"): { o: ChannelOwner; said: Said } {
  const said: Said = { to: [], undeliverable: [], routed: [], replaced: [], by: [], told: [], envs: [] };
  const d: Delivery = {
    workerId: self,
    toSession: (ref, env) => {
      said.to.push(`${ref.resource}@${ref.workerId} ${env.kind}`);
      said.envs.push([ref.resource, env]);
    },
    undeliverable: (env) => void said.undeliverable.push(env),
    route: (env) => void said.routed.push(env),
    replaced: (old, by) => {
      said.replaced.push(`${old.address}#${old.serial}`);
      said.by.push(by.address);
    },
    local: () => undefined,
    peersWantCopies: (ref, on) => void said.told.push(`${ref.resource} ${on}`),
  };
  return { o: new ChannelOwner(d), said };
}

let serial = 0;
function ref(resource: string, workerId: string, available = true, priority = 0, presence: unknown = null, copies = false): SessionRef {
  return { address: `bob@localhost/${resource}`, resource, workerId, serial: ++serial, protocol: "xmpp", available, priority, presence, pool: false, session: null, seq: 0, born: 0, client: "", copies, told: false };
}

/** A relay gateway session: one of a pool. */
function gw(resource: string, workerId: string): SessionRef {
  return { ...ref(resource, workerId), protocol: "relay", pool: true };
}

const msg = (to: string, flags = 0) => Envelope.message({ from: "alice@localhost/a", to, protocol: "xmpp", payload: null, flags });

test("a message to the bare address goes to every available session with priority >= 0; EveryResource to every bound one", { timeout: 5000 }, () => {
  const { o, said } = owner();
  o.bind(ref("a", "w0"));
  o.bind(ref("b", "w1", true, 5));
  o.bind(ref("neg", "w1", true, -1));
  o.bind(ref("off", "w2", false));
  o.deliver(msg("bob@localhost"));
  assert.deepEqual(said.to.sort(), [`a@w0 ${Kind.Message}`, `b@w1 ${Kind.Message}`]);
  said.to = [];
  o.deliver(msg("bob@localhost", Flag.EveryResource));
  assert.deepEqual(said.to.map((s) => s.split("@")[0]).sort(), ["a", "b", "neg", "off"]);
  said.to = [];
  o.deliver(Envelope.presence({ from: "alice@localhost/a", to: "bob@localhost", protocol: "xmpp", payload: null }));
  assert.deepEqual(said.to.map((s) => s.split("@")[0]).sort(), ["a", "b", "neg"]);
});

test("to a full address: that session; not online: as to the bare address with BareFallback, else undeliverable", { timeout: 5000 }, () => {
  const { o, said } = owner();
  o.bind(ref("a", "w1"));
  o.deliver(msg("bob@localhost/a"));
  assert.deepEqual(said.to, [`a@w1 ${Kind.Message}`]);
  o.deliver(msg("bob@localhost/gone", Flag.BareFallback | Flag.Offline));
  assert.deepEqual(said.to, [`a@w1 ${Kind.Message}`, `a@w1 ${Kind.Message}`]);
  o.deliver(msg("bob@localhost/gone", Flag.Bounce));
  assert.equal(said.undeliverable.length, 1);
  // Nobody of the user online at all: undeliverable, whatever the flags.
  o.deliver(msg("carol@localhost", Flag.Offline));
  o.deliver(msg("carol@localhost/x", Flag.BareFallback | Flag.Offline));
  assert.equal(said.undeliverable.length, 3);
});

test("a request goes to exactly one session: the one named, or the best of the bare address", { timeout: 5000 }, () => {
  const { o, said } = owner();
  o.bind(ref("low", "w1", true, 1));
  o.bind(ref("high", "w2", true, 9));
  const req = (to: string) => Envelope.request({ from: "alice@localhost/a", to, protocol: "relay", id: "r", payload: null }).forwarded("w9.1", 1000);
  o.deliver(req("bob@localhost"));
  o.deliver(req("bob@localhost/low"));
  assert.deepEqual(said.to, [`high@w2 ${Kind.Request}`, `low@w1 ${Kind.Request}`]);
  o.deliver(req("bob@localhost/none"));
  assert.equal(said.undeliverable.length, 1);
});

test("a probe is answered with each available session's last presence, from that session to the prober", { timeout: 5000 }, () => {
  const { o, said } = owner();
  o.bind(ref("a", "w1", true, 0, "P-a"));
  o.bind(ref("b", "w2", true, 0, null));
  o.bind(ref("off", "w2", false, 0, "P-off"));
  o.deliver(Envelope.presence({ from: "alice@localhost/a", to: "bob@localhost", protocol: "xmpp", payload: null, flags: Flag.Probe }));
  assert.deepEqual(said.to, [], "the probe itself reaches no session");
  assert.deepEqual(said.routed.map((e) => [e.kind, e.from, e.to, e.payload]), [[Kind.Presence, "bob@localhost/a", "alice@localhost/a", "P-a"]]);
});

test("binding an address held on another worker tells the old session; presence updates need the current serial", { timeout: 5000 }, () => {
  const { o, said } = owner();
  const old = ref("r", "w1");
  o.bind(old);
  o.bind(ref("r", "w2"));
  assert.deepEqual(said.replaced, [`bob@localhost/r#${old.serial}`]);
  // The same worker binding again (its own attach told the old one): nothing to tell.
  o.bind(ref("r", "w2"));
  assert.equal(said.replaced.length, 1);
  o.presence("bob@localhost/r", old.serial, false, 0, null, false);
  o.deliver(msg("bob@localhost"));
  assert.equal(said.to.length, 1, "the stale update did not make it unavailable");
  o.unbind("bob@localhost/r", old.serial);
  assert.equal(o.channels.size, 1, "a stale unbind leaves the channel");
});

test("rehome keeps only what this worker still owns, without sessions on workers that left or restarted", { timeout: 5000 }, () => {
  const { o } = owner("w0");
  o.bind(ref("a", "w0"));
  o.bind(ref("b", "w1"));
  o.bind(ref("c", "w2"));
  o.bind({ ...ref("x", "w1"), address: "carol@localhost/x" });
  o.rehome((bare) => bare === "bob@localhost", (w) => w === "w1");
  assert.deepEqual([...o.channels.keys()], ["bob@localhost"]);
  assert.deepEqual([...o.channels.get("bob@localhost")!.resources.keys()].sort(), ["a", "c"]);
  // A channel whose sessions were all on a lost worker goes too.
  o.rehome(() => true, (w) => w !== "w0");
  assert.deepEqual([...o.channels.get("bob@localhost")!.resources.keys()], ["a"]);
  o.unbind("bob@localhost/a", o.channels.get("bob@localhost")!.resources.get("a")!.serial);
  assert.equal(o.channels.size, 0);
});

// XEP-0280 in neutral terms: the owner's side of copies (Flag.Copies, Copy, SentCopy).
const chat = (to: string, flags: number = Flag.Copies) => Envelope.message({ from: "alice@localhost/a", to, protocol: "xmpp", payload: null, flags });
const copiesOf = (said: Said) => said.to.filter((s) => s.endsWith(" copy")).sort();

function copyOwner(): { o: ChannelOwner; said: Said; stats: { copies: number } } {
  const stats = { copies: 0 };
  const said: Said = { to: [], undeliverable: [], routed: [], replaced: [], by: [], told: [], envs: [] };
  const o = new ChannelOwner(
    {
      workerId: "w0",
      toSession: (ref, env) => void said.to.push(`${ref.resource}${env.flags & (Flag.Copy | Flag.SentCopy) ? " copy" : ""}`),
      undeliverable: (env) => void said.undeliverable.push(env),
      route: (env) => void said.routed.push(env),
      replaced: () => {},
      local: () => undefined,
      peersWantCopies: (ref, on) => void said.told.push(`${ref.resource} ${on}`),
    },
    stats,
  );
  return { o, said, stats };
}

test("a message to the bare address: the targets get it, every other session that wants copies one copy, nobody both", { timeout: 5000 }, () => {
  const { o, said, stats } = copyOwner();
  o.bind(ref("top", "w0", true, 5, null, true));
  o.bind(ref("plain", "w1", true, 0, null, false));
  o.bind(ref("neg", "w1", true, -1, null, true));
  o.bind(ref("off", "w2", false, 0, null, true));
  o.bind(ref("negplain", "w2", true, -1, null, false));
  o.deliver(chat("bob@localhost"));
  assert.deepEqual(said.to.filter((s) => !s.endsWith(" copy")).sort(), ["plain", "top"]);
  assert.deepEqual(copiesOf(said), ["neg copy", "off copy"]);
  assert.equal(stats.copies, 1, "one copy envelope, however many sessions take it");
  // Without Flag.Copies (a headline, a <private/> message): no copies.
  said.to = [];
  o.deliver(msg("bob@localhost"));
  assert.deepEqual(copiesOf(said), []);
  // Nobody can take the original (stored offline): the sessions that want copies still get one.
  const { o: o2, said: s2 } = copyOwner();
  o2.bind(ref("neg", "w1", true, -1, null, true));
  o2.deliver(chat("bob@localhost", Flag.Copies | Flag.Offline));
  assert.equal(s2.undeliverable.length, 1);
  assert.deepEqual(s2.to, ["neg copy"]);
});

test("a message to a full address: the others that want copies get one; to an offline one with BareFallback, as to the bare address", { timeout: 5000 }, () => {
  const { o, said } = copyOwner();
  o.bind(ref("a", "w0", true, 0, null, true));
  o.bind(ref("b", "w1", true, 0, null, true));
  o.bind(ref("c", "w1", true, 0, null, false));
  o.deliver(chat("bob@localhost/a"));
  assert.deepEqual(said.to.sort(), ["a", "b copy"]);
  said.to = [];
  o.deliver(chat("bob@localhost/gone", Flag.Copies | Flag.BareFallback | Flag.Offline));
  assert.deepEqual(said.to.sort(), ["a", "b", "c"], "every target has the original: no copies");
});

test("nobody else wants copies: none is made; a copy made elsewhere reaches only the others that want one", { timeout: 5000 }, () => {
  const { o, said, stats } = copyOwner();
  o.bind(ref("a", "w0", true, 0, null, true));
  o.bind(ref("b", "w1", true, -1, null, false));
  o.deliver(chat("bob@localhost/a"));
  o.deliver(chat("bob@localhost"));
  assert.equal(stats.copies, 0);
  assert.deepEqual(copiesOf(said), []);
  o.bind(ref("c", "w2", true, 0, null, true));
  said.to = [];
  // Flag.Copy: a recipient reached at its full address on the sender's worker; Flag.SentCopy: what a has sent.
  o.deliver(Envelope.message({ from: "carol@localhost/x", to: "bob@localhost/a", protocol: "xmpp", payload: null, flags: Flag.Copies }).copy(Flag.Copy));
  o.deliver(Envelope.message({ from: "bob@localhost/a", to: "carol@localhost", protocol: "xmpp", payload: null, flags: Flag.Copies }).copy(Flag.SentCopy));
  assert.deepEqual(said.to, ["c copy", "c copy"]);
  assert.equal(stats.copies, 0, "those were counted where they were made");
  assert.equal(said.undeliverable.length, 0);
});

test("each session is told whether another session of its user wants copies, only when that changes", { timeout: 5000 }, () => {
  const { o, said } = copyOwner();
  const a = ref("a", "w0");
  const b = ref("b", "w1");
  o.bind(a);
  o.bind(b);
  assert.deepEqual(said.told, []);
  o.presence(a.address, a.serial, true, 0, null, true);
  assert.deepEqual(said.told, ["b true"], "a itself is the only one: not told");
  o.presence(b.address, b.serial, true, 0, null, true);
  assert.deepEqual(said.told, ["b true", "a true"]);
  // A presence change that keeps copies as they are tells nobody.
  o.presence(b.address, b.serial, true, 3, null, true);
  assert.equal(said.told.length, 2);
  const c = ref("c", "w2");
  o.bind(c);
  assert.deepEqual(said.told.slice(2), ["c true"]);
  o.unbind(b.address, b.serial);
  assert.deepEqual(said.told.slice(3), ["a false"]);
  // A session binding again (a new owner after a ring change) says what it was told; the owner corrects it.
  said.told = [];
  o.bind({ ...ref("d", "w3"), told: true });
  assert.deepEqual(said.told, [], "a wants copies: d was right");
  o.bind({ ...ref("e", "w3"), address: "bob@localhost/e", told: true });
  o.presence(a.address, a.serial, true, 0, null, false);
  assert.deepEqual(said.told.sort(), ["c false", "d false", "e false"]);
});

// ---- pools (docs/relay-protocol.md, "Pools") ----

let reqN = 0;
/** A request as the requester's worker forwards it: with its ref and clamped ttl. */
const poolReq = (to = "bob@localhost", ttl = 1000) => Envelope.request({ from: "alice@localhost/a", to, protocol: "relay", id: "r", payload: null }).forwarded(`w9.${++reqN}`, ttl);

test("a request to the bare address of a pool goes to the member with the fewest in flight, ties in turn, marked Pool", { timeout: 5000 }, () => {
  const { o, said } = owner();
  for (const r of ["g1", "g2", "g3"]) o.bind(gw(r, "w1"));
  const sent = Array.from({ length: 4 }, () => poolReq());
  for (const e of sent) o.deliver(e);
  assert.deepEqual(said.envs.map(([r]) => r), ["g1", "g2", "g3", "g1"]);
  assert.ok(said.envs.every(([, e]) => e.flags & Flag.Pool), "each marked for a settle notice");
  assert.deepEqual(said.envs.map(([, e]) => [e.ref, e.ttl, e.from, e.payload]), sent.map((e) => [e.ref, e.ttl, e.from, e.payload]), "otherwise the same request");
  assert.equal(o.load.size, 4);
  // g2 and g3 answer: they have nothing in flight, g1 two: g2 and g3 take the next ones, in turn.
  o.settled(sent[1].ref);
  o.settled(sent[2].ref);
  said.envs = [];
  for (let i = 0; i < 4; i++) o.deliver(poolReq());
  assert.deepEqual(said.envs.map(([r]) => r), ["g2", "g3", "g2", "g3"]);
  // Now g1 2, g2 2, g3 2: a tie again, and the turn is g1's.
  o.deliver(poolReq());
  assert.equal(said.envs.at(-1)![0], "g1");
});

test("a lone pooled session, and a request to a full address, are neither counted nor marked", { timeout: 5000 }, () => {
  const { o, said } = owner();
  o.bind(gw("g1", "w1"));
  const e = poolReq();
  o.deliver(e);
  assert.equal(said.envs[0][1], e, "the very envelope: nothing made for it");
  assert.equal(o.load.size, 0);
  o.bind(gw("g2", "w1"));
  const full = poolReq("bob@localhost/g2");
  o.deliver(full);
  assert.equal(said.envs[1][1], full);
  assert.equal(o.load.size, 0);
});

test("XMPP sessions keep the priority rule; a user with both gives a request to the bare address to its pool", { timeout: 5000 }, () => {
  const { o, said } = owner();
  o.bind(ref("low", "w1", true, 1));
  o.bind(ref("high", "w2", true, 9));
  o.deliver(poolReq());
  o.deliver(poolReq());
  assert.deepEqual(said.envs.map(([r, e]) => [r, e.flags]), [
    ["high", 0],
    ["high", 0],
  ]);
  o.bind(gw("g1", "w1"));
  o.bind(gw("g2", "w2"));
  said.envs = [];
  o.deliver(poolReq());
  o.deliver(poolReq());
  assert.deepEqual(said.envs.map(([r]) => r), ["g1", "g2"]);
});

test("a pooled session that leaves, is replaced, or is on a worker that left takes its counts along", { timeout: 5000 }, () => {
  const { o, said } = owner("w0");
  const g1 = gw("g1", "w1");
  const g2 = gw("g2", "w2");
  const g3 = gw("g3", "w0");
  for (const r of [g1, g2, g3]) o.bind(r);
  for (let i = 0; i < 6; i++) o.deliver(poolReq());
  assert.equal(o.load.size, 6);
  o.unbind(g1.address, g1.serial);
  assert.equal(o.load.size, 4);
  assert.equal(o.channels.get("bob@localhost")!.pool!.members.length, 2);
  // g2 binds again from another worker: a new session, counted from nothing.
  o.bind(gw("g2", "w3"));
  assert.equal(o.load.size, 2);
  said.envs = [];
  o.deliver(poolReq());
  assert.deepEqual(said.envs.map(([r, e]) => [r, (e.flags & Flag.Pool) !== 0]), [["g2", true]]);
  // w3 leaves the cluster; g3 is alone again: not counted any more.
  o.rehome(() => true, (w) => w === "w3");
  assert.equal(o.load.size, 2, "g3's two");
  const e = poolReq();
  o.deliver(e);
  assert.equal(said.envs.at(-1)![1], e);
  // The address moves to another owner: nothing is kept.
  o.rehome(() => false, () => false);
  assert.equal(o.channels.size, 0);
  assert.equal(o.load.size, 0);
});

test("a pool whose counts are never settled forgets them at each request's deadline", { timeout: 5000 }, () => {
  const { o } = owner();
  o.bind(gw("g1", "w1"));
  o.bind(gw("g2", "w1"));
  o.deliver(poolReq("bob@localhost", 200));
  o.deliver(poolReq("bob@localhost", 60_000));
  assert.equal(o.load.size, 2);
  o.load.expire(monotonicMs() + 201);
  assert.equal(o.load.size, 1);
  o.load.expire(monotonicMs() + 60_001);
  assert.equal(o.load.size, 0);
  const members = o.channels.get("bob@localhost")!.pool!.members;
  assert.deepEqual(members.map((m) => m.outstanding), [0, 0]);
});

test("an older session binding again after a newer one took its address is the one replaced, whichever bind comes last", { timeout: 5000 }, () => {
  const { o, said } = owner();
  // The newer login (on w1) bound while the older session's worker (w2) was stalled; w2, back, binds its session again.
  const older = { ...ref("r", "w2"), born: 1000 };
  const newer = { ...ref("r", "w1"), born: 2000 };
  o.bind(newer);
  o.bind(older);
  assert.deepEqual(said.replaced, [`bob@localhost/r#${older.serial}`]);
  o.deliver(msg("bob@localhost"));
  assert.deepEqual(said.to, [`r@w1 ${Kind.Message}`]);
  // The other order is a plain login replacing a session: the older one goes too.
  const { o: o2, said: said2 } = owner();
  o2.bind(older);
  o2.bind(newer);
  assert.deepEqual(said2.replaced, [`bob@localhost/r#${older.serial}`]);
  // The same session binding again (a new owner, or its worker resynced) replaces nothing.
  o2.bind({ ...newer });
  assert.equal(said2.replaced.length, 1);
});

// XEP-0386 §3.2: a client (a XEP-0388 user-agent id) binding again ends its earlier sessions, whatever tag they
// bound under. The client is the resource's part after its first `/` (Bind2's `tag/part`, the part stable per id).

/** A session of client `part` (Bind2 with a user-agent id) under `tag`; `named`: its bind names the client. */
function client(tag: string, part: string, workerId: string, born: number, named = true): SessionRef {
  const resource = tag === "" ? part : `${tag}/${part}`;
  return { ...ref(resource, workerId), born, client: named ? part : "" };
}

test("a client's new binding ends its sessions under its other tags (here or on any worker), no other client's, and no look-alike's of another protocol", { timeout: 5000 }, () => {
  const { o, said } = owner("w0");
  // Bound without naming their client (as by workers from before the field), so they are there together.
  const phone = client("phone", "Xa9_3kQ2", "w1", 1000, false);
  const untagged = client("", "Xa9_3kQ2", "w0", 1100, false);
  const desk = client("desk", "Xa9_3kQ2", "w2", 1200, false);
  const other = client("phone", "Zz0-1234", "w1", 1300);
  const relay = { ...ref("gw/Xa9_3kQ2", "w1", false), protocol: "relay", born: 1400 };
  for (const r of [phone, untagged, desk, other, relay]) o.bind(r);
  assert.deepEqual(said.replaced, []);
  const tablet = client("tablet", "Xa9_3kQ2", "w2", 2000);
  o.bind(tablet);
  assert.deepEqual(said.replaced.sort(), [phone, untagged, desk].map((r) => `${r.address}#${r.serial}`).sort());
  assert.deepEqual(said.by, [tablet.address, tablet.address, tablet.address]);
  // Unbound at once: nothing more goes to them; the others stay.
  assert.deepEqual([...o.channels.get("bob@localhost")!.resources.keys()].sort(), ["gw/Xa9_3kQ2", "phone/Zz0-1234", "tablet/Xa9_3kQ2"]);
  o.deliver(msg("bob@localhost"));
  assert.deepEqual(said.to.map((s) => s.split("@")[0]).sort(), ["phone/Zz0-1234", "tablet/Xa9_3kQ2"]);
  // Their own unbinds, when they end, find nothing to undo.
  o.unbind(phone.address, phone.serial);
  assert.equal(o.channels.get("bob@localhost")!.resources.size, 3);
});

test("bindings that name no client end nothing, whatever their resources look like", { timeout: 5000 }, () => {
  const { o, said } = owner();
  // Bind2 without a user-agent id (a random part), RFC 6120 resources a client chose.
  o.bind(client("phone", "Xa9_3kQ2", "w1", 1000, false));
  o.bind(client("desk", "Xa9_3kQ2", "w2", 2000, false));
  o.bind(client("", "Xa9_3kQ2", "w0", 3000, false));
  assert.deepEqual(said.replaced, []);
  assert.equal(o.channels.get("bob@localhost")!.resources.size, 3);
  // A client's session gone (unbound): those after it that name none end nothing either.
  const { o: o2, said: said2 } = owner();
  const named = client("phone", "Xa9_3kQ2", "w1", 1000);
  o2.bind(named);
  o2.unbind(named.address, named.serial);
  o2.bind(client("desk", "Xa9_3kQ2", "w2", 2000, false));
  o2.bind(client("tab", "Xa9_3kQ2", "w2", 3000, false));
  assert.deepEqual(said2.replaced, []);
});

test("of two sessions of one client under different tags, the older goes, whichever bind comes last", { timeout: 5000 }, () => {
  const { o, said } = owner();
  // The new binding (on w1) came while the older session's worker (w2) was stalled; w2, back, binds it again
  // (a `binds` row: no client named).
  const newer = client("desk", "Xa9_3kQ2", "w1", 2000);
  const older = client("phone", "Xa9_3kQ2", "w2", 1000, false);
  o.bind(newer);
  o.bind(older);
  assert.deepEqual(said.replaced, [`${older.address}#${older.serial}`]);
  assert.deepEqual(said.by, [newer.address]);
  assert.deepEqual([...o.channels.get("bob@localhost")!.resources.keys()], ["desk/Xa9_3kQ2"]);
  // The newer binding itself binding again (a new owner) ends nothing more.
  o.bind({ ...newer, client: "" });
  assert.equal(said.replaced.length, 1);
});
