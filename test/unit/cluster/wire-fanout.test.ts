import { test } from "node:test";
import assert from "node:assert/strict";
import { Element } from "ltx";
import { BusWire } from "../../../src/cluster/wire.js";
import { WireWriter } from "../../../src/cluster/wire-buf.js";
import type { BusMessage } from "../../../src/cluster/bus.js";
import { Envelope, Flag, Kind } from "../../../src/envelope/envelope.js";
import { xmppPayloadCodec } from "../../../src/xmpp/payload-codec.js";
import { relayPayloadCodec } from "../../../src/relay/payload-codec.js";
import { parseStanza } from "../../../src/xmpp/stream/xml.js";
import { toWire } from "../../../src/xmpp/outbound.js";

// The service ops (src/cluster/wire-fanout.ts): `service` to a room's owner with the sender's worker,
// `fanout` with one payload and the recipients on one worker.

const wire = new BusWire({ xmpp: xmppPayloadCodec, relay: relayPayloadCodec });
const fields = (e: Envelope) => ({ kind: e.kind, id: e.id, ref: e.ref, responseFor: e.responseFor, from: e.from, to: e.to, protocol: e.protocol, ttl: e.ttl, flags: e.flags, code: e.code });

test("service and fanout ops round-trip, the payload written once, read as text and written to each recipient", { timeout: 5000 }, () => {
  const stanza = parseStanza(`<message type="groupchat" id="g1"><body>h\u00e9llo ${"x".repeat(300)}</body></message>`);
  const svc = Envelope.message({ from: "alice@localhost/r", to: "room@conference.localhost", protocol: "xmpp", payload: stanza, flags: Flag.Service, id: "g1" });
  const back = wire.decode(wire.encode({ op: "service", via: "h-w0", env: svc })) as Extract<BusMessage, { op: "service" }>;
  assert.equal(back.op, "service");
  assert.equal(back.via, "h-w0");
  assert.deepEqual(fields(back.env), fields(svc));
  assert.equal((back.env.payload as Element).getChildText("body"), stanza.getChildText("body"));

  const out = Envelope.message({ from: "room@conference.localhost/Alice", to: "", protocol: "xmpp", payload: stanza });
  const to = Array.from({ length: 500 }, (_, i) => `user${i}@localhost/r\u00fc`);
  const bytes = wire.encode({ op: "fanout", envs: [out], to });
  assert.ok(bytes.length < 500 * 30 + 1000, `the payload once, not once per recipient (${bytes.length} bytes)`);
  const f = wire.decode(bytes) as Extract<BusMessage, { op: "fanout" }>;
  assert.deepEqual(f.to, to);
  assert.equal(f.envs.length, 1);
  assert.deepEqual(fields(f.envs[0]), fields(out));
  // Passed on unread: each recipient's copy is the text stamped with its own address.
  assert.ok(f.envs[0].wireText !== null);
  const one = toWire({ address: to[7], bare: "user7@localhost", rosterRequested: false, blocklistRequested: false, wantsCopies: false }, f.envs[0].readdressed(to[7]))!;
  assert.match(one, /to="user7@localhost\/rü"/);
  assert.match(one, /from="room@conference.localhost\/Alice"/);

  // Presence and iq results, and a relay payload (bytes).
  for (const env of [
    Envelope.presence({ from: "r@c/n", to: "", protocol: "xmpp", payload: parseStanza("<presence/>") }),
    Envelope.response({ from: "r@c", to: "a@l/r", protocol: "xmpp", responseFor: "w1.5", payload: parseStanza("<iq type='result'/>") }),
    Envelope.message({ from: "r@c", to: "", protocol: "relay", payload: Buffer.from([0, 1, 2, 255]) }),
    Envelope.presence({ from: "r@c/n", to: "", protocol: "xmpp", payload: null }),
  ]) {
    const m = wire.decode(wire.encode({ op: "fanout", envs: [env], to: ["x@l/1"] })) as Extract<BusMessage, { op: "fanout" }>;
    assert.deepEqual(fields(m.envs[0]), fields(env));
    if (env.protocol === "relay") assert.deepEqual(Buffer.from(m.envs[0].payload as Uint8Array), env.payload);
    if (env.payload === null) assert.equal(m.envs[0].payload, null);
  }
  assert.equal(Kind.Message, 0);
});

test("a service op that does not add up is refused, costing only itself", { timeout: 5000 }, () => {
  const env = Envelope.presence({ from: "r@c/n", to: "", protocol: "xmpp", payload: parseStanza("<presence/>") });
  const good = wire.encode({ op: "fanout", envs: [env, env], to: ["a@l/1", "b@l/2"] });
  for (let cut = 1; cut < good.length; cut += 3) assert.throws(() => wire.decode(good.subarray(0, cut)));
  // A count of recipients far past the bytes.
  const w = new WireWriter();
  wire.encodeInto(w, { op: "fanout", envs: [env], to: ["a@l/1"] });
  const b = w.take().subarray(4);
  const bad = Buffer.from(b);
  const countAt = bad.indexOf(Buffer.from([1, 0, 0, 0, 5, 0, 0, 0]));
  assert.ok(countAt > 0);
  bad.writeUInt32LE(0x7fffffff, countAt);
  assert.throws(() => wire.decode(bad), /recipient count/);
  // A count of envelopes far past the bytes, and none.
  for (const m of [0x7fffffff, 0]) {
    const e = Buffer.from(b);
    e.writeUInt32LE(m, countAt + 4 + 4 + 5);
    assert.throws(() => wire.decode(e), /envelope count/);
  }
  // A fanout is not a service op: read as one, it does not add up.
  const two = Buffer.from(good);
  two[0] = good[0] - 1; // the service tag: the one before fanout's (src/cluster/wire.ts)
  assert.throws(() => wire.decode(two));
});

test("a fanout of several envelopes: each once, in order, to the same recipients", { timeout: 5000 }, () => {
  const envs = Array.from({ length: 999 }, (_, i) => Envelope.presence({ from: `room@conference.localhost/n${i}`, to: "", protocol: "xmpp", payload: parseStanza(`<presence><x xmlns="http://jabber.org/protocol/muc#user"><item affiliation="none" role="participant"/></x></presence>`) }));
  const m = wire.decode(wire.encode({ op: "fanout", envs, to: ["new@localhost/r"] })) as Extract<BusMessage, { op: "fanout" }>;
  assert.deepEqual(m.to, ["new@localhost/r"]);
  assert.deepEqual(m.envs.map(fields), envs.map(fields));
  assert.equal((m.envs[998].payload as Element).getChild("x")?.getChild("item")?.attrs.role, "participant");
});
