import { test } from "node:test";
import assert from "node:assert/strict";
import { Recorder, servedPair as setup } from "./fixtures.js";
import { MAX_FANOUT_CHARS, fanoutMessages } from "../../../src/proxy/services.js";
import { Envelope, WireText } from "../../../src/envelope/envelope.js";
import type { BusMessage } from "../../../src/cluster/bus.js";
import { BusWire } from "../../../src/cluster/wire.js";
import { xmppPayloadCodec } from "../../../src/xmpp/payload-codec.js";
import { waitUntil } from "../../helpers.js";

// A service's fan-out (src/proxy/services.ts) to sessions on another worker: what it sends the same sessions in
// a row (a newcomer's occupant list, a room's messages of one turn) crosses the bus as one `fanout` message per
// worker, split only below MAX_FANOUT_CHARS; each session takes each envelope once, in order.

/** An occupant's presence as a room sends it: serialized once (src/xmpp/muc/broadcast.ts). */
const presence = (nick: string, pad = 0): Envelope =>
  Envelope.presence({
    from: `room@rooms.localhost/${nick}`,
    to: "",
    protocol: "xmpp",
    payload: new WireText(`<presence><x xmlns="http://jabber.org/protocol/muc#user"><item affiliation="none" role="participant"/></x>${"<status>" + "s".repeat(pad) + "</status>"}</presence>`, () => null, () => {}),
  });

test("a newcomer's occupant list (999 presences to one session on the other worker): one bus message, each presence once, in order", { timeout: 5000 }, async () => {
  const { proxies, links, stop } = setup();
  try {
    const late = new Recorder("late@localhost/r");
    proxies[1].attach(late);
    const svc = proxies[0].services;
    const before = svc.fanoutMessages;
    for (let i = 0; i < 999; i++) links[0].fanout(presence(`n${i}`), [{ address: late.address, at: "w1" }]);
    await waitUntil(() => late.got.length >= 999, 3000, () => `${late.got.length} of 999`);
    await new Promise((r) => setImmediate(r));
    assert.equal(svc.fanoutMessages - before, 1, "one bus message for the whole list");
    assert.equal(late.got.length, 999);
    assert.deepEqual(
      late.got.map((e) => e.from),
      Array.from({ length: 999 }, (_, i) => `room@rooms.localhost/n${i}`),
    );
    assert.ok(late.got.every((e) => e.to === late.address));
  } finally {
    stop();
  }
});

test("a presence broadcast to occupants on both workers: one bus message for the other worker, each occupant takes it once", { timeout: 5000 }, async () => {
  const { proxies, links, stop } = setup();
  try {
    const here = Array.from({ length: 150 }, (_, i) => new Recorder(`h${i}@localhost/r`));
    const there = Array.from({ length: 150 }, (_, i) => new Recorder(`t${i}@localhost/r`));
    for (const s of here) proxies[0].attach(s);
    for (const s of there) proxies[1].attach(s);
    const to = [...here.map((s) => ({ address: s.address, at: "w0" })), ...there.map((s) => ({ address: s.address, at: "w1" }))];
    const before = proxies[0].services.fanoutMessages;
    // Three joins' broadcasts in one turn, each to everyone: still one bus message (a run to the same sessions).
    for (const n of ["a", "b", "c"]) links[0].fanout(presence(n), to);
    await waitUntil(() => [...here, ...there].every((s) => s.got.length >= 3), 3000, "every occupant's three presences");
    await new Promise((r) => setImmediate(r));
    assert.equal(proxies[0].services.fanoutMessages - before, 1);
    for (const s of [...here, ...there]) assert.deepEqual(s.got.map((e) => e.from), ["a", "b", "c"].map((n) => `room@rooms.localhost/${n}`));
  } finally {
    stop();
  }
});

test("fanoutMessages: split below MAX_FANOUT_CHARS (encoded below NATS's 1 MiB), each envelope to each address once, in order", { timeout: 10_000 }, () => {
  const wire = new BusWire({ xmpp: xmppPayloadCodec });
  const check = (envs: Envelope[], to: string[], most: number) => {
    const msgs = fanoutMessages(envs, to);
    assert.ok(msgs.length <= most, `${msgs.length} messages, at most ${most}`);
    const got = new Map<string, string[]>();
    for (const m of msgs as Extract<BusMessage, { op: "fanout" }>[]) {
      assert.equal(m.op, "fanout");
      assert.ok(wire.encode(m).length < 1024 * 1024, "below NATS's max_payload");
      for (const a of m.to) for (const e of m.envs) (got.get(a) ?? got.set(a, []).get(a)!).push(e.from);
    }
    assert.equal(got.size, to.length);
    for (const a of to) assert.deepEqual(got.get(a), envs.map((e) => e.from), a);
    return msgs.length;
  };
  // A room's list of 5,000 to one newcomer (≈ 1 M characters with the estimate's overhead): a few messages.
  assert.ok(check(Array.from({ length: 5000 }, (_, i) => presence(`n${i}`)), ["new@localhost/r"], 6) >= 2);
  // 999 presences: one.
  check(Array.from({ length: 999 }, (_, i) => presence(`n${i}`)), ["new@localhost/r"], 1);
  // One presence to 20,000 sessions with long addresses (≈ 1.2 M characters): the addresses in slices.
  const to = Array.from({ length: 20_000 }, (_, i) => `user${i}-${"x".repeat(50)}@localhost/resource`);
  assert.ok(check([presence("a")], to, 12) > 1);
  // Big payloads and many addresses at once: every slice of addresses takes every run of envelopes.
  check(Array.from({ length: 40 }, (_, i) => presence(`big${i}`, 20_000)), to.slice(0, 5000), 40);
  // A payload past the limit alone still goes, alone (a stanza's own limit bounds it: xmpp.maxStanzaBytes).
  assert.equal(fanoutMessages([presence("huge", MAX_FANOUT_CHARS + 10)], ["x@l/r"]).length, 1);
});
