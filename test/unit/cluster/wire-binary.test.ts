import { test } from "node:test";
import assert from "node:assert/strict";
import { Element } from "ltx";
import { BusWire } from "../../../src/cluster/wire.js";
import { WireWriter } from "../../../src/cluster/wire-buf.js";
import type { BusMessage } from "../../../src/cluster/bus.js";
import { Envelope, Flag, Kind, WireText } from "../../../src/envelope/envelope.js";
import { serialize } from "../../../src/xmpp/stanza.js";
import { toWire } from "../../../src/xmpp/outbound.js";
import { xmppPayloadCodec } from "../../../src/xmpp/payload-codec.js";
import { relayPayloadCodec } from "../../../src/relay/payload-codec.js";
import { parseStanza } from "../../../src/xmpp/stream/xml.js";

// Bus protocol 3's binary messages (src/cluster/wire.ts, wire-buf.ts): batches written in place, and bytes
// that are not such a message refused with an error that costs only that message.

const wire = new BusWire({ xmpp: xmppPayloadCodec, relay: relayPayloadCodec });

/** The messages of one batch, as NatsBus.onMessage and HostLinks split them. */
function split(batch: Uint8Array): Uint8Array[] {
  const b = Buffer.from(batch.buffer, batch.byteOffset, batch.byteLength);
  const out: Uint8Array[] = [];
  for (let at = 0; at < b.length; ) {
    const len = b.readUInt32BE(at);
    out.push(b.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return out;
}

const fields = (e: Envelope) => ({ kind: e.kind, id: e.id, ref: e.ref, responseFor: e.responseFor, from: e.from, to: e.to, protocol: e.protocol, ttl: e.ttl, flags: e.flags, code: e.code });

test("strings of any length and script, every number, each envelope op", { timeout: 5000 }, () => {
  const long = "ü".repeat(70) + "x".repeat(5000);
  const stanza = parseStanza(`<message type="chat" id="${long}"><body>𝄞 ${"b".repeat(3000)}</body></message>`);
  const env = new Envelope(4, long, "h-w0.1", "λ", "ålice@x/ü", "bob@x/" + "r".repeat(65), "xmpp", stanza, 2 ** 40 + 0.5, Flag.Copies | Flag.Pool, "códe");
  for (const m of [
    { op: "owner", env },
    { op: "answer", env },
    { op: "session", address: "bob@x/ü", serial: 2 ** 52, env },
    { op: "missed", address: "", serial: 0, by: "10_0_0_1-w3", env },
  ] as BusMessage[]) {
    const back = wire.decode(wire.encode(m)) as Extract<BusMessage, { env: Envelope }>;
    assert.deepEqual({ ...back, env: fields(back.env) }, { ...m, env: fields(env) });
    assert.ok(back.env.payload instanceof Element);
    assert.equal((back.env.payload as Element).toString(), stanza.toString());
  }
  const empty = Envelope.message({ from: "", to: "", protocol: "relay", payload: new Uint8Array(0) });
  assert.equal((wire.decode(wire.encode({ op: "owner", env: empty })) as Extract<BusMessage, { op: "owner" }>).env.payload instanceof Uint8Array, true);
});

test("resume-record copies go in binary, each stanza as its text; any other records message as JSON", { timeout: 5000 }, () => {
  const held: [string, number, string][] = [
    ["K1", 1, `<message to="b@x" id="1"><body>"quoted" & 𝄞 ${"ü".repeat(80)}</body></message>`],
    ["K2", 2 ** 32 - 1, ""],
  ];
  const copies: BusMessage = { op: "records", from: "h-w0", reset: false, keep: [], counts: [], drop: [], held, acks: [] };
  const bytes = wire.encode(copies);
  assert.equal(bytes[0], 6, "tag Held");
  assert.deepEqual(wire.decode(bytes), copies);
  for (let cut = 0; cut < bytes.length; cut++) assert.throws(() => wire.decode(bytes.subarray(0, cut)), Error, `cut at ${cut}`);
  const lie = Buffer.from(bytes);
  lie.writeUInt32LE(0x0fffffff, 1 + 4 + 4);
  assert.throws(() => wire.decode(lie), /more copies than bytes/);
  const withCounts: BusMessage = { ...copies, counts: [["K1", 3]] };
  const j = wire.encode(withCounts);
  assert.equal(j[0], 0, "tag Json");
  assert.deepEqual(wire.decode(j), withCounts);
});

test("a batch is written in place: its views stay whole while later messages fill this slab and the next", { timeout: 5000 }, () => {
  const w = new WireWriter();
  const batches: Uint8Array[] = [];
  const sent: BusMessage[] = [];
  for (let i = 0; i < 2000; i++) {
    const payload = Buffer.alloc(i % 7 === 0 ? 20_000 : 50, i & 0xff);
    const m: BusMessage = { op: "session", address: `u${i}@x/r`, serial: i, env: Envelope.message({ from: `a${i}@x/r`, to: `u${i}@x/r`, protocol: "relay", payload, id: `m${i}` }) };
    wire.encodeInto(w, m);
    sent.push(m);
    // Taken now and then, as NatsBus publishes at the end of a turn or at BATCH_BYTES.
    if (i % 13 === 12) batches.push(w.take());
  }
  batches.push(w.take());
  assert.equal(w.pending, 0);
  const got = batches.flatMap(split).map((b) => wire.decode(b) as Extract<BusMessage, { op: "session" }>);
  assert.equal(got.length, sent.length);
  got.forEach((m, i) => {
    const s = sent[i] as Extract<BusMessage, { op: "session" }>;
    assert.deepEqual([m.address, m.serial, m.env.id], [s.address, s.serial, s.env.id]);
    assert.deepEqual(Buffer.from(m.env.payload as Uint8Array), s.env.payload);
  });
});

test("a payload its codec refuses throws at the sender and leaves the batch as it was", { timeout: 5000 }, () => {
  const w = new WireWriter();
  wire.encodeInto(w, { op: "unbind", address: "a@x/r", serial: 1 });
  const before = w.pending;
  const bad = Envelope.message({ from: "a@x/r", to: "b@x", protocol: "xmpp", payload: "not a stanza" });
  assert.throws(() => wire.encodeInto(w, { op: "owner", env: bad }), /not a stanza/);
  assert.equal(w.pending, before);
  assert.deepEqual(split(w.take()).map((b) => wire.decode(b)), [{ op: "unbind", address: "a@x/r", serial: 1 }]);
});

test("every cut of a message, a foreign tag or kind, bytes after the end, and noise: an error, never a misread", { timeout: 20_000 }, () => {
  const env = Envelope.message({ from: "a@x/r", to: "b@x", protocol: "xmpp", payload: parseStanza("<message><body>hi</body></message>"), id: "m1" }).withReceipt("h-w0.3");
  const msgs: BusMessage[] = [
    { op: "owner", env },
    { op: "missed", address: "b@x/r", serial: 3, by: "h-w1", env },
    { op: "confirm", by: "h-w1", prefix: "h-w0.k_", taken: [[3, "k", 2]], done: [4] },
    { op: "presence", address: "a@x/r", serial: 9, available: true, priority: 0, protocol: "xmpp", presence: parseStanza("<presence/>"), copies: false },
  ];
  for (const m of msgs) {
    const good = Buffer.from(wire.encode(m));
    for (let cut = 0; cut < good.length; cut++) assert.throws(() => wire.decode(good.subarray(0, cut)), Error, `${m.op} cut at ${cut}`);
    assert.throws(() => wire.decode(Buffer.concat([good, Buffer.from([0])])), /bytes after its end/);
  }
  const owner = Buffer.from(wire.encode(msgs[0]));
  assert.throws(() => wire.decode(Buffer.concat([Buffer.from([99]), owner.subarray(1)])), /unknown bus message tag 99/);
  const kind = Buffer.from(owner);
  kind[1] = 9;
  assert.throws(() => wire.decode(kind), /unknown envelope kind 9/);
  // The strings' byte length past the end: refused before they are read. Their lengths not adding up: refused.
  const long = Buffer.from(owner);
  long.writeUInt32LE(0xfffffff0, 1 + 1 + 8 + 4 + 7 * 4 + 1 + 4);
  assert.throws(() => wire.decode(long), /truncated/);
  const lens = Buffer.from(owner);
  lens.writeUInt32LE(lens.readUInt32LE(14) + 1, 14);
  assert.throws(() => wire.decode(lens), /do not add up/);

  // Noise: each answer is a message or an Error, in bounded time.
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  for (let i = 0; i < 20_000; i++) {
    const noise = Buffer.alloc(1 + (rnd() % 80));
    for (let j = 0; j < noise.length; j++) noise[j] = rnd() & 0xff;
    if (i % 2 === 0) noise[0] = rnd() % 6;
    try {
      wire.decode(noise);
    } catch (e) {
      assert.ok(e instanceof Error);
    }
  }
});

test("a stanza is parsed where it is first read, once for every envelope made from it; passed on unread, it goes on as its text", { timeout: 5000 }, () => {
  const bad: Error[] = [];
  const lazy = new BusWire({ xmpp: xmppPayloadCodec }, (e) => bad.push(e));
  const stanza = parseStanza(`<message type="chat" id="m1" from="a@x/r" to="b@x"><body>hi &amp; bye</body></message>`);
  const env = Envelope.message({ from: "a@x/r", to: "b@x", protocol: "xmpp", payload: stanza, flags: Flag.Copies });
  const text = serialize(stanza);
  const at = (m: BusMessage) => (m as Extract<BusMessage, { env: Envelope }>).env;
  // Owner hop: read nowhere, sent on to the session's worker as the same text.
  const owner = at(lazy.decode(lazy.encode({ op: "owner", env })));
  assert.equal(owner.wireText, text);
  const onward = owner.withReceipt("h-w0.1");
  const session = at(lazy.decode(lazy.encode({ op: "session", address: "b@x/r", serial: 1, env: onward })));
  assert.equal(owner.wireText, text, "not parsed by passing it on");
  assert.equal(session.wireText, text);
  // Read: parsed once, shared by the envelopes made from it; no longer passed on as text.
  const copy = session.copy(Flag.Copy);
  const el = session.payload as Element;
  assert.ok(el instanceof Element);
  assert.equal(copy.payload, el);
  assert.equal(session.wireText, null);
  assert.equal(serialize(el), text);
  // A text that does not parse (a foreign publisher): read, it is told once and is null; nothing is thrown at the reader.
  const textCodec = { encode: () => new Uint8Array(0), decode: () => null, encodeText: (p: unknown) => p as string, decodeText: parseStanza };
  const foreign = new BusWire({ t: textCodec }, (e) => bad.push(e));
  const broken = at(foreign.decode(foreign.encode({ op: "owner", env: Envelope.message({ from: "a@x/r", to: "b@x", protocol: "t", payload: "<message><body>" }) })));
  assert.equal(broken.payload, null);
  assert.equal(broken.payload, null);
  assert.equal(bad.length, 1);
  const direct = new Envelope(Kind.Message, "", "", "", "a@x/r", "b@x", "xmpp", new WireText("<message><b>x</b></message>", parseStanza, (e) => bad.push(e)), 0, 0, "");
  assert.equal((direct.payload as Element).getChildText("b"), "x");
});

test("a message that came unread is written to its client as its text, stamped, as the parsed one would be", { timeout: 5000 }, () => {
  const s = { address: "b@x/r", bare: "b@x", rosterRequested: true, blocklistRequested: false, wantsCopies: true };
  for (const xml of [
    `<message type="chat" id="m1" from="a@x/r" to="b@x"><body>hi &amp; "bye"</body></message>`,
    `<message from="a@x/r" to="b@x"><body>secret</body><private xmlns="urn:xmpp:carbons:2"/></message>`,
    `<message to="b@x"/>`,
  ]) {
    const env = Envelope.message({ from: "a@x/r", to: "b@x/r", protocol: "xmpp", payload: parseStanza(xml), flags: Flag.Copies });
    const came = (wire.decode(wire.encode({ op: "session", address: "b@x/r", serial: 1, env })) as Extract<BusMessage, { op: "session" }>).env;
    const carbons = xml.includes("carbons");
    assert.equal(toWire(s, came), toWire(s, env), xml);
    assert.equal(came.wireText === null, carbons, "parsed only where a <private/> may have to go");
    for (const flag of [Flag.Copy, Flag.SentCopy] as const) {
      const copy = (wire.decode(wire.encode({ op: "session", address: "b@x/r", serial: 1, env: env.copy(flag) })) as Extract<BusMessage, { op: "session" }>).env;
      assert.equal(toWire(s, copy), toWire(s, env.copy(flag)), "a carbon is wrapped as ever");
    }
  }
});
