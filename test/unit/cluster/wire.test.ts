import { test } from "node:test";
import assert from "node:assert/strict";
import { Element } from "ltx";
import { BusWire } from "../../../src/cluster/wire.js";
import type { BusMessage, Taken } from "../../../src/cluster/bus.js";
import { Envelope, Flag, Kind } from "../../../src/envelope/envelope.js";
import { xmppPayloadCodec } from "../../../src/xmpp/payload-codec.js";
import { relayPayloadCodec } from "../../../src/relay/payload-codec.js";
import { parseStanza } from "../../../src/xmpp/stream/xml.js";

const wire = new BusWire({ xmpp: xmppPayloadCodec, relay: relayPayloadCodec });
const fields = (e: Envelope) => [e.kind, e.id, e.ref, e.responseFor, e.from, e.to, e.protocol, e.ttl, e.flags, e.code];

/** A tag-0 message (wire-json.ts) with `head` as its fields and no presence, as a worker would write it. */
function jsonMessage(head: unknown[]): Buffer {
  const json = Buffer.from(JSON.stringify(head));
  const out = Buffer.alloc(1 + 4 + json.length + 4);
  out.writeUInt32LE(json.length, 1);
  json.copy(out, 5);
  out.writeUInt32LE(0xffffffff, 5 + json.length);
  return out;
}
const roundTrip = (m: BusMessage): BusMessage => wire.decode(wire.encode(m));

test("envelopes keep every field and their payload across the wire", () => {
  const stanza = parseStanza(`<message type="chat" id="m1" xml:lang="de"><body>über &lt;&amp;&gt; "q"</body><x xmlns="urn:example"/></message>`);
  const env = Envelope.request({ from: "alice@localhost/pc", to: "bob@localhost", protocol: "xmpp", id: "q1", payload: stanza, ttl: 5000 }).forwarded("w1.42", 5000);
  assert.equal(env.kind, Kind.Request);
  const back = roundTrip({ op: "owner", env }) as Extract<BusMessage, { op: "owner" }>;
  assert.equal(back.op, "owner");
  assert.deepEqual(fields(back.env), fields(env));
  assert.ok(back.env.payload instanceof Element);
  assert.equal((back.env.payload as Element).toString(), stanza.toString());

  const bytes = Buffer.from([0, 1, 2, 0xff, 0x0a]);
  const err = Envelope.error({ from: "svc@localhost/a", to: "", protocol: "relay", responseFor: "w0.7", code: "timeout", payload: bytes });
  const s = roundTrip({ op: "session", address: "svc@localhost/a", serial: 2 ** 40 + 3, env: err }) as Extract<BusMessage, { op: "session" }>;
  assert.equal(s.serial, 2 ** 40 + 3);
  assert.equal(s.address, "svc@localhost/a");
  assert.deepEqual(Buffer.from(s.env.payload as Uint8Array), bytes);
  assert.equal(s.env.code, "timeout");
  const m = roundTrip({ op: "missed", address: "svc@localhost/a", serial: 7, by: "10_0_0_1-w1", env: err }) as Extract<BusMessage, { op: "missed" }>;
  assert.deepEqual([m.op, m.address, m.serial, m.by, m.env.code], ["missed", "svc@localhost/a", 7, "10_0_0_1-w1", "timeout"]);

  const none = roundTrip({ op: "answer", env: Envelope.response({ from: "a@x/r", to: "", protocol: "relay", responseFor: "w0.1", payload: null }) }) as Extract<BusMessage, { op: "answer" }>;
  assert.equal(none.env.payload, null);
  assert.equal(none.env.responseFor, "w0.1");

  const msg = Envelope.message({ from: "a@x/r", to: "b@x", protocol: "xmpp", payload: stanza, flags: Flag.BareFallback | Flag.Offline, id: "m1" });
  const back2 = roundTrip({ op: "owner", env: msg }) as Extract<BusMessage, { op: "owner" }>;
  assert.deepEqual(fields(back2.env), fields(msg));
});

test("session bookkeeping ops keep their presence payload in the session's protocol", () => {
  const presence = parseStanza(`<presence><show>away</show><priority>-1</priority></presence>`);
  const bind = roundTrip({
    op: "bind",
    ref: { address: "a@x/r", resource: "r", workerId: "h-w1", serial: 9, protocol: "xmpp", available: true, priority: -1, presence, pool: false, session: null, seq: 0, born: 0, client: "", copies: true, told: false },
  }) as Extract<BusMessage, { op: "bind" }>;
  assert.equal(bind.ref.workerId, "h-w1");
  assert.equal(bind.ref.priority, -1);
  assert.deepEqual([bind.ref.copies, bind.ref.told], [true, false]);
  assert.equal((bind.ref.presence as Element).toString(), presence.toString());
  const upd = roundTrip({ op: "presence", address: "a@x/r", serial: 9, available: false, priority: 0, protocol: "relay", presence: null, copies: true }) as Extract<BusMessage, { op: "presence" }>;
  assert.deepEqual(upd, { op: "presence", address: "a@x/r", serial: 9, available: false, priority: 0, protocol: "relay", presence: null, copies: true });
  assert.deepEqual(roundTrip({ op: "copies", address: "a@x/r", serial: 9, on: true }), { op: "copies", address: "a@x/r", serial: 9, on: true });
  assert.deepEqual(roundTrip({ op: "unbind", address: "a@x/r", serial: 9 }), { op: "unbind", address: "a@x/r", serial: 9 });
  assert.deepEqual(roundTrip({ op: "replaced", address: "a@x/r", serial: 1, by: "" }), { op: "replaced", address: "a@x/r", serial: 1, by: "" });
});

test("XEP-0386 §3.2: a bind names its client, a replaced session learns its successor; a worker from before sends neither and reads the rest as ever", { timeout: 5000 }, () => {
  const ref = { address: "a@x/phone/Xa9_3kQ2", resource: "phone/Xa9_3kQ2", workerId: "h-w1", serial: 9, protocol: "xmpp", available: false, priority: 0, presence: null, pool: false, session: null, seq: 0, born: 5, client: "Xa9_3kQ2", copies: false, told: false };
  const bind = roundTrip({ op: "bind", ref }) as Extract<BusMessage, { op: "bind" }>;
  assert.equal(bind.ref.client, "Xa9_3kQ2");
  // The field comes last: the head a worker from before reads is the one it always read.
  const headOf = (bytes: Uint8Array) => {
    const b = Buffer.from(bytes);
    return JSON.parse(b.toString("utf8", 5, 5 + b.readUInt32LE(1))) as unknown[];
  };
  const named = headOf(wire.encode({ op: "bind", ref }));
  const unnamed = headOf(wire.encode({ op: "bind", ref: { ...ref, client: "" } }));
  assert.deepEqual(named.slice(0, -1), unnamed);
  assert.equal(named.at(-1), "Xa9_3kQ2");
  // From a worker from before: no client named.
  assert.equal((wire.decode(jsonMessage(unnamed)) as Extract<BusMessage, { op: "bind" }>).ref.client, "");
  const by = "a@x/desk/Xa9_3kQ2";
  assert.deepEqual(roundTrip({ op: "replaced", address: ref.address, serial: 9, by }), { op: "replaced", address: ref.address, serial: 9, by });
  const replaced = headOf(wire.encode({ op: "replaced", address: ref.address, serial: 9, by }));
  assert.deepEqual(replaced, ["replaced", ref.address, 9, by]);
  assert.deepEqual(wire.decode(jsonMessage(replaced.slice(0, 3))), { op: "replaced", address: ref.address, serial: 9, by: "" });
  // `binds` rows keep their length (a worker from before refuses any other): no client in them.
  const binds = roundTrip({ op: "binds", refs: [ref] }) as Extract<BusMessage, { op: "binds" }>;
  assert.equal(binds.refs[0].client, "");
});

test("handover ops carry a moving session whole: the core's part, the presence in its protocol, the protocol's state", () => {
  const ask = { user: "alice", h: 3 };
  assert.deepEqual(roundTrip({ op: "claim", protocol: "xmpp", key: "id-1", ask, from: "h-w0", token: 7 }), { op: "claim", protocol: "xmpp", key: "id-1", ask, from: "h-w0", token: 7 });
  assert.deepEqual(roundTrip({ op: "claimed", token: 7, answer: { kind: "miss" }, from: "h-w1" }), { op: "claimed", token: 7, answer: { kind: "miss" }, from: "h-w1" });
  const refused = "<failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>";
  assert.deepEqual(roundTrip({ op: "claimed", token: 8, answer: { kind: "refused", reason: refused }, from: "h-w1" }), { op: "claimed", token: 8, answer: { kind: "refused", reason: refused }, from: "h-w1" });
  const presence = parseStanza(`<presence><show>dnd</show></presence>`);
  const state = { handled: 4, acked: 2, unacked: ["<message to='alice@x/r'><body>é</body></message>"], directed: ["bob@x"], rosterRequested: true };
  const handover = { protocol: "xmpp", key: "id-1", address: "alice@x/r", resource: "r", serial: 2 ** 40 + 5, available: true, priority: 5, presence, wantsCopies: true, peersWantCopies: false, inbound: [["bob@x/d\u0000q1", "h-w1.12", 2900, false]] as [string, string, number, boolean][], state };
  const ok = roundTrip({ op: "claimed", token: 9, answer: { kind: "ok", handover }, from: "h-w1" }) as Extract<BusMessage, { op: "claimed" }>;
  assert.equal(ok.answer.kind, "ok");
  const h = (ok.answer as { handover: typeof handover }).handover;
  assert.equal((h.presence as Element).toString(), presence.toString());
  assert.deepEqual({ ...h, presence: null }, { ...handover, presence: null });
  const parked = roundTrip({ op: "park", handover: { ...handover, presence: null } }) as Extract<BusMessage, { op: "park" }>;
  assert.deepEqual(parked.handover, { ...handover, presence: null });
  // The session's last messages by sender and id (Session.recent) go along; a handover without them has none.
  const recent = ["bob@x/d", "m1", "carol@x/p", "m2"];
  const withRecent = roundTrip({ op: "park", handover: { ...handover, presence: null, recent } }) as Extract<BusMessage, { op: "park" }>;
  assert.deepEqual(withRecent.handover.recent, recent);
  assert.equal("recent" in parked.handover, false);
});

test("pools: a bind says whether the session is pooled; settle notices carry their refs", { timeout: 5000 }, () => {
  const ref = { address: "gw@x/g1", resource: "g1", workerId: "h-w1", serial: 3, protocol: "relay", available: true, priority: 0, presence: null, pool: true, session: null, seq: 0, born: 0, client: "", copies: false, told: false };
  const bind = roundTrip({ op: "bind", ref }) as Extract<BusMessage, { op: "bind" }>;
  assert.equal(bind.ref.pool, true);
  assert.deepEqual(roundTrip({ op: "settled", refs: ["w0.1", "h_1-w3.42"] }), { op: "settled", refs: ["w0.1", "h_1-w3.42"] });
  // A worker from before pools sends binds without the field: not pooled.
  const old = Buffer.from(wire.encode({ op: "bind", ref }));
  const head = JSON.parse(old.toString("utf8", 5, 5 + old.readUInt32LE(1))) as unknown[];
  head.splice(10, 1);
  assert.equal((wire.decode(jsonMessage(head)) as Extract<BusMessage, { op: "bind" }>).ref.pool, false);
  assert.throws(() => wire.decode(wire.encode({ op: "settled", refs: [1 as unknown as string] })), /settled without refs/);
});

test("custody: a confirmation carries who sends it, its custodian's prefix and the receipts' numbers; a message keeps its receipt", { timeout: 5000 }, () => {
  const c: BusMessage = { op: "confirm", by: "h-w1", prefix: "h-w0.k3_", taken: [[7, "alice\u0000id", 12]], done: [5, 6, 2 ** 53 - 1] };
  assert.deepEqual(roundTrip(c), c);
  assert.deepEqual(roundTrip({ op: "barrier", from: "h-w1", token: 3 }), { op: "barrier", from: "h-w1", token: 3 });
  assert.deepEqual(roundTrip({ op: "barrierDone", token: 3 }), { op: "barrierDone", token: 3 });
  // A slow worker's probe and its answer (custody, "Slow, not lost"): monotonic ms with a fraction.
  assert.deepEqual(roundTrip({ op: "probe", from: "h-w0", at: 12345.678 }), { op: "probe", from: "h-w0", at: 12345.678 });
  assert.deepEqual(roundTrip({ op: "probed", from: "h-w1", at: 12345.678 }), { op: "probed", from: "h-w1", at: 12345.678 });
  assert.deepEqual(roundTrip({ op: "received", key: "alice\u0000id", count: 4294967295 }), { op: "received", key: "alice\u0000id", count: 4294967295 });
  const many: BusMessage = { op: "confirm", by: "h-w1", prefix: "h-w0.k3_", taken: Array.from({ length: 300 }, (_, i): Taken => [i, `u${i}\u0000k`, i]), done: Array.from({ length: 200 }, (_, i) => 1000 + i) };
  assert.deepEqual(roundTrip(many), many);
  // A count of receipts larger than the bytes left is refused before anything is allocated for it.
  const one = Buffer.from(wire.encode({ op: "confirm", by: "h-w1", prefix: "p_", taken: [[1, "k", 1]], done: [] }));
  one.writeUInt32LE(0x7fffffff, 1 + 4 + 4 + 4 + 2);
  assert.throws(() => wire.decode(one), /more receipts than bytes/);
  // Nothing taken: who confirms is not written (only Custody.takenBy needs it).
  assert.deepEqual(roundTrip({ op: "confirm", by: "h-w1", prefix: "p_", taken: [], done: [1, 2] }), { op: "confirm", by: "", prefix: "p_", taken: [], done: [1, 2] });
  const two = Buffer.from(wire.encode({ op: "confirm", by: "h-w1", prefix: "p_", taken: [], done: [1] }));
  two.writeUInt32LE(2, 1 + 4 + 4 + 2 + 4);
  assert.throws(() => wire.decode(two), /more receipts than bytes/);
  const env = Envelope.message({ from: "a@x/r", to: "b@x", protocol: "xmpp", payload: null, flags: Flag.Offline }).withReceipt("h-w0.9");
  const owner = roundTrip({ op: "owner", env }) as Extract<BusMessage, { op: "owner" }>;
  assert.equal(owner.env.ref, "h-w0.9");
});

test("bytes that are not a bus message are refused with an error, not misread", () => {
  const good = Buffer.from(wire.encode({ op: "unbind", address: "a@x/r", serial: 1 }));
  assert.throws(() => wire.decode(good.subarray(0, good.length - 3)));
  assert.throws(() => wire.decode(Buffer.from("garbage!")));
  const noCodec = new BusWire({});
  assert.throws(() => noCodec.encode({ op: "owner", env: Envelope.message({ from: "a@x/r", to: "b@x", protocol: "xmpp", payload: parseStanza("<message/>") }) }), /no payload codec/);
});

test("resume records: kept, copied, counted, acknowledged and dropped in one message; a recall and its answer; a client's count after a rebuild", { timeout: 5000 }, () => {
  const rec = { protocol: "xmpp", key: "Zm9vYmFy", user: "alice", address: "alice@x/phone", count: 4294967295, windowMs: 300000, state: { presence: "<presence><show>away</show></presence>", available: true, priority: -1, copies: false, roster: true, directed: ["bob@x"] } };
  const records: BusMessage = { op: "records", from: "h-w0", reset: true, keep: [rec], counts: [["k2", 7]], drop: ["k3"], held: [["Zm9vYmFy", 4, "<message to='alice@x/phone'><body>é</body></message>"]], acks: [["k2", 3]] };
  assert.deepEqual(roundTrip(records), records);
  const recall: BusMessage = { op: "recall", protocol: "xmpp", key: "Zm9vYmFy", user: "alice", from: "h-w1", token: 9, h: 4294967295 };
  assert.deepEqual(roundTrip(recall), recall);
  const take: BusMessage = { ...recall, gone: "h-w0" };
  assert.deepEqual(roundTrip(take), take, "a recall that tells the keeper its holder is gone");
  assert.throws(() => wire.decode(wire.encode({ ...take, gone: 3 as unknown as string })), /recall with a bad holder/);
  for (const found of [null, { record: rec, holder: "", held: [[0, "<message><body>x</body></message>"]] as [number, string][] }, { record: rec, holder: "h-w0", held: [] }]) {
    const m: BusMessage = { op: "recalled", token: 9, from: "g-w0", found };
    assert.deepEqual(roundTrip(m), m);
  }
  const received: BusMessage = { op: "received", key: "alice\u0000id", count: 12, resumedOn: "h-w1" };
  assert.deepEqual(roundTrip(received), received);
  const copied: BusMessage = { op: "received", key: "alice\u0000id", count: 12, resumedOn: "h-w1", copied: 15 };
  assert.deepEqual(roundTrip(copied), copied);
  assert.throws(() => wire.decode(wire.encode({ ...records, keep: [{ ...rec, count: "x" as unknown as number }] })), /resume record without its counts/);
  assert.throws(() => wire.decode(wire.encode({ ...records, counts: [["k", "7" as unknown as number]] })), /records with bad counts/);
  assert.throws(() => wire.decode(wire.encode({ ...records, acks: [["k", null as unknown as number]] })), /records with bad counts/);
  assert.throws(() => wire.decode(wire.encode({ ...records, held: [["k", 1, 2 as unknown as string]] })), /records with bad held copies/);
  assert.throws(() => wire.decode(wire.encode({ ...recall, token: "9" as unknown as number })), /recall without a key/);
});

test("moves: a service's states go whole to their new owner, with the ring they were judged by; bad ones are refused", { timeout: 5000 }, () => {
  const m: BusMessage = { op: "moved", from: "h-w0", ring: "10.0.0.1=h-w0,h-w1", states: [["room@conference.x", '{"v":1,"subject":"é \u0000 <x/>"}'], ["other@conference.x", "{}"]], done: false, placed: [["room@conference.x", "h-w1"]] };
  assert.deepEqual(roundTrip(m), m);
  const done: BusMessage = { op: "moved", from: "h-w0", ring: "k", states: [], done: true, placed: [] };
  assert.deepEqual(roundTrip(done), done);
  assert.throws(() => wire.decode(wire.encode({ op: "moved", from: "h-w0", ring: "k", states: [["a", 1 as unknown as string]], done: true, placed: [] })), /moved with bad states/);
  assert.throws(() => wire.decode(wire.encode({ op: "moved", from: "h-w0", ring: "k", states: [], done: true, placed: [["a"]] as unknown as [string, string][] })), /moved with bad places/);
  assert.throws(() => wire.decode(wire.encode({ op: "moved", from: "h-w0", ring: "k", states: [], done: "yes" as unknown as boolean, placed: [] })), /moved without a sender/);
});

test("stale: a protocol's topic and key (XEP-0313 preferences changed); anything else refused", { timeout: 5000 }, () => {
  const m: BusMessage = { op: "stale", topic: "mam-prefs", key: "alice" };
  assert.deepEqual(roundTrip(m), m);
  assert.throws(() => wire.decode(jsonMessage(["stale", "mam-prefs", 3])), /stale without a topic and key/);
});
