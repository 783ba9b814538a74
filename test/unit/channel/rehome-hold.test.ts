import { test } from "node:test";
import assert from "node:assert/strict";
import { ChannelOwner, type Delivery } from "../../../src/channel/channel-owner.js";
import type { SessionRef } from "../../../src/channel/user-channel.js";
import { RehomeHold } from "../../../src/channel/rehome-hold.js";
import { Envelope } from "../../../src/envelope/envelope.js";
import { waitUntil } from "../../helpers.js";

// After a membership change an owner holds what comes for users it has no binding for, while their
// sessions' binds are on their way (docs/architecture.md, "Healing"); told to a recording Delivery.

interface Said {
  to: string[];
  undeliverable: string[];
  routed: string[];
}

function owner(): { o: ChannelOwner; said: Said } {
  const said: Said = { to: [], undeliverable: [], routed: [] };
  const body = (env: Envelope) => Buffer.from(env.payload as Uint8Array).toString();
  const d: Delivery = {
    workerId: "w0",
    toSession: (ref, env) => void said.to.push(`${ref.resource} ${body(env)}`),
    undeliverable: (env) => void said.undeliverable.push(body(env)),
    route: (env) => void said.routed.push(body(env)),
    replaced: () => {},
    local: () => undefined,
    peersWantCopies: () => {},
  };
  return { o: new ChannelOwner(d), said };
}

let serial = 0;
function ref(bare: string, resource: string, workerId: string): SessionRef {
  return { address: `${bare}/${resource}`, resource, workerId, serial: ++serial, protocol: "relay", available: true, priority: 0, presence: null, pool: false, session: null, seq: 0, born: 0, client: "", copies: false, told: false };
}
const msg = (to: string, body: string) => Envelope.message({ from: "alice@localhost/a", to, protocol: "relay", payload: Buffer.from(body) });
const req = (to: string, body: string) => Envelope.request({ from: "alice@localhost/a", to, protocol: "relay", id: body, payload: Buffer.from(body), ttl: 5000 }).forwarded("w9.1", 5000);

test("without a membership change nothing is held: a message for a user with no binding is undeliverable at once", { timeout: 5000 }, () => {
  const { o, said } = owner();
  o.deliver(msg("bob@localhost", "m1"));
  assert.deepEqual(said.undeliverable, ["m1"]);
});

test("after a change, a message and a request for an unbound user wait for its bind, then go to its session in order", { timeout: 5000 }, () => {
  const { o, said } = owner();
  o.rehome(() => true, () => false, 10_000);
  o.deliver(msg("bob@localhost", "m1"));
  o.deliver(msg("bob@localhost/r", "m2"));
  o.deliver(req("bob@localhost", "q3"));
  assert.deepEqual(said.undeliverable, []);
  assert.equal(o.hold.size, 3);
  o.bind(ref("bob@localhost", "r", "w1"));
  assert.deepEqual(said.to, ["r m1", "r m2", "r q3"]);
  assert.equal(o.hold.size, 0);
  assert.equal(o.hold.stats.released, 3);
  o.hold.stop();
});

test("a full address whose resource is not bound yet stays held when another resource of the user binds first", { timeout: 5000 }, () => {
  const { o, said } = owner();
  o.rehome(() => true, () => false, 10_000);
  o.deliver(msg("bob@localhost/two", "m1"));
  o.bind(ref("bob@localhost", "one", "w1"));
  assert.deepEqual(said.to, []);
  o.bind(ref("bob@localhost", "two", "w2"));
  assert.deepEqual(said.to, ["two m1"]);
  o.hold.stop();
});

test("when the window closes with no bind, what is held is undeliverable (stored offline, or failed) as before", { timeout: 5000 }, async () => {
  const { o, said } = owner();
  o.rehome(() => true, () => false, 100);
  o.deliver(msg("bob@localhost", "m1"));
  o.deliver(req("carol@localhost/x", "q2"));
  assert.deepEqual(said.undeliverable, []);
  await waitUntil(() => said.undeliverable.length === 2, 2000, "the window to close");
  assert.deepEqual(said.undeliverable, ["m1", "q2"]);
  assert.equal(o.hold.stats.expired, 2);
  // Closed: the next one is undeliverable at once.
  o.deliver(msg("bob@localhost", "m3"));
  assert.deepEqual(said.undeliverable, ["m1", "q2", "m3"]);
});

test("another change moves what is held for users owned elsewhere now to their new owner (route)", { timeout: 5000 }, () => {
  const { o, said } = owner();
  o.rehome(() => true, () => false, 10_000);
  o.deliver(msg("bob@localhost", "m1"));
  o.deliver(msg("carol@localhost", "m2"));
  o.rehome((bare) => bare !== "bob@localhost", () => false, 10_000);
  assert.deepEqual(said.routed, ["m1"]);
  assert.equal(o.hold.size, 1);
  assert.equal(o.hold.stats.rerouted, 1);
  o.hold.stop();
});

test("a user with a binding is not held for: a message to its bare address with no available session is undeliverable", { timeout: 5000 }, () => {
  const { o, said } = owner();
  o.bind({ ...ref("bob@localhost", "r", "w1"), available: false });
  o.rehome(() => true, () => false, 10_000);
  o.deliver(msg("bob@localhost", "m1"));
  assert.deepEqual(said.undeliverable, ["m1"]);
  o.hold.stop();
});

test("rehome drops the sessions of lost workers from the channels it keeps and returns them", { timeout: 5000 }, () => {
  const { o } = owner();
  o.bind(ref("bob@localhost", "a", "w1"));
  o.bind(ref("bob@localhost", "b", "w2"));
  const dropped = o.rehome(() => true, (w) => w === "w1");
  assert.deepEqual(dropped.map((r) => r.address), ["bob@localhost/a"]);
  assert.deepEqual([...o.channels.get("bob@localhost")!.resources.keys()], ["b"]);
});

test("the hold is bounded in count and bytes: past either, an envelope is undeliverable at once", { timeout: 5000 }, () => {
  const closed: Envelope[] = [];
  const byCount = new RehomeHold((e) => closed.push(...e), { maxCount: 2, maxBytes: 1 << 20 });
  byCount.open(10_000);
  assert.equal(byCount.take(msg("a@x", "1")), true);
  assert.equal(byCount.take(msg("a@x", "2")), true);
  assert.equal(byCount.take(msg("a@x", "3")), false);
  assert.equal(byCount.stats.overflow, 1);
  byCount.stop();
  const byBytes = new RehomeHold((e) => closed.push(...e), { maxCount: 100, maxBytes: 1000 });
  byBytes.open(10_000);
  assert.equal(byBytes.take(msg("a@x", "x".repeat(600))), true);
  assert.equal(byBytes.take(msg("a@x", "x".repeat(600))), false);
  // What left the hold frees its room.
  assert.equal(byBytes.release("a@x")?.length, 1);
  assert.equal(byBytes.take(msg("a@x", "x".repeat(600))), true);
  byBytes.stop();
});

test("a held message routed again by its custodian (same receipt) while still held is held once, delivered once", { timeout: 5000 }, () => {
  const { o, said } = owner();
  o.rehome(() => true, () => false, 10_000);
  const first = msg("bob@localhost", "m1").withReceipt("w9.7");
  o.deliver(first);
  o.deliver(msg("bob@localhost", "m1").withReceipt("w9.7"));
  o.deliver(msg("bob@localhost", "m2").withReceipt("w9.8"));
  // No receipt (not in custody): never taken for a copy of another.
  o.deliver(msg("bob@localhost", "m3"));
  o.deliver(msg("bob@localhost", "m3"));
  assert.equal(o.hold.size, 4);
  o.bind(ref("bob@localhost", "b", "w1"));
  assert.deepEqual(said.to, ["b m1", "b m2", "b m3", "b m3"]);
  assert.deepEqual(said.undeliverable, []);
  o.hold.stop();
});
