import { test } from "node:test";
import assert from "node:assert/strict";
import { Element } from "ltx";
import { BusWire } from "../../../src/cluster/wire.js";
import type { BusMessage } from "../../../src/cluster/bus.js";
import type { SessionRef } from "../../../src/channel/user-channel.js";
import { PeerView } from "../../../src/cluster/peer-view.js";
import { xmppPayloadCodec } from "../../../src/xmpp/payload-codec.js";
import { relayPayloadCodec } from "../../../src/relay/payload-codec.js";
import { parseStanza } from "../../../src/xmpp/stream/xml.js";

// Healing's own parts of the bus: `binds` (many refs in one message) and PeerView (what peers' beats say they hold).

const wire = new BusWire({ xmpp: xmppPayloadCodec, relay: relayPayloadCodec });

const ref = (address: string, protocol: string, presence: unknown, over: Partial<SessionRef> = {}): SessionRef => ({
  address,
  resource: address.slice(address.indexOf("/") + 1),
  workerId: "h-w1",
  serial: 7,
  protocol,
  available: true,
  priority: 0,
  presence,
  pool: false,
  session: null,
  seq: 0,
  born: 1_700_000_000_000,
  client: "",
  copies: false,
  told: false,
  ...over,
});

test("binds: many refs in one message, each with its own presence (or none), in its protocol", { timeout: 5000 }, () => {
  const p1 = parseStanza(`<presence><show>away</show><status>über</status></presence>`);
  const p2 = parseStanza(`<presence><priority>-1</priority></presence>`);
  const refs = [
    ref("a@x/r1", "xmpp", p1, { copies: true, told: true, priority: 5 }),
    ref("b@x/r2", "xmpp", null, { available: false }),
    ref("c@x/svc", "relay", null, { pool: true, serial: 2 ** 40 }),
    ref("d@x/r3", "xmpp", p2, { priority: -1 }),
  ];
  const back = wire.decode(wire.encode({ op: "binds", refs })) as Extract<BusMessage, { op: "binds" }>;
  assert.equal(back.op, "binds");
  assert.deepEqual(
    back.refs.map((r) => ({ ...r, presence: null })),
    refs.map((r) => ({ ...r, presence: null })),
  );
  assert.equal((back.refs[0].presence as Element).toString(), p1.toString());
  assert.equal(back.refs[1].presence, null);
  assert.equal((back.refs[3].presence as Element).toString(), p2.toString());
  // Empty: no presence bytes at all.
  assert.deepEqual(wire.decode(wire.encode({ op: "binds", refs: [] })), { op: "binds", refs: [] });
});

test("binds whose presence lengths do not add up are refused", { timeout: 5000 }, () => {
  const bytes = Buffer.from(wire.encode({ op: "binds", refs: [ref("a@x/r", "xmpp", parseStanza("<presence/>"))] }));
  // Drop the last byte of the presence: the row's length no longer fits.
  const cut = Buffer.concat([bytes.subarray(0, bytes.length - 1)]);
  assert.throws(() => wire.decode(cut));
});

test("PeerView: a peer that holds this worker as it is says so; one that does not, for three beats after it could have heard it, gets one resync", { timeout: 5000 }, () => {
  const W = 3000;
  const v = new PeerView(W);
  const mine = PeerView.token("0123456789ab", 0);
  v.unsettled(0);
  // Before the window: beats made before the peer heard us prove nothing, however many.
  for (let t = 0; t < W; t += 500) assert.equal(v.heard("p", {}, "me", mine, t), false);
  // Holding us: never.
  for (let t = W; t < 2 * W; t += 1000) assert.equal(v.heard("p", { me: mine }, "me", mine, t), false);
  // An older generation, or absent: the third beat in a row asks for a resync, once.
  assert.equal(v.heard("p", { me: PeerView.token("0123456789ab", 1) }, "me", mine, 7000), false);
  assert.equal(v.heard("p", {}, "me", mine, 8000), false);
  assert.equal(v.heard("p", {}, "me", mine, 9000), true);
  // Then quiet for two windows: the resync needs a while to show in its beats.
  assert.equal(v.heard("p", {}, "me", mine, 10_000), false);
  assert.equal(v.heard("p", {}, "me", mine, 14_000), false);
  // A beat that holds us in between resets the count.
  assert.equal(v.heard("p", {}, "me", mine, 15_100), false);
  assert.equal(v.heard("p", { me: mine }, "me", mine, 16_000), false);
  assert.equal(v.heard("p", {}, "me", mine, 17_000), false);
  assert.equal(v.heard("p", {}, "me", mine, 18_000), false);
  // A worker from before the field says nothing: never a resync.
  for (let t = 20_000; t < 30_000; t += 1000) assert.equal(v.heard("old", undefined, "me", mine, t), false);
  // Our own stall (unsettled) forgets the misses counted so far and waits a window again.
  assert.equal(v.heard("q", {}, "me", mine, 30_000), false);
  assert.equal(v.heard("q", {}, "me", mine, 31_000), false);
  v.unsettled(31_500);
  assert.equal(v.heard("q", {}, "me", mine, 32_000), false);
  assert.equal(v.heard("q", {}, "me", mine, 34_600), false);
  assert.equal(v.heard("q", {}, "me", mine, 36_000), false);
  assert.equal(v.heard("q", {}, "me", mine, 37_000), true);
});
