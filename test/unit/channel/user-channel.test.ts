import { test } from "node:test";
import assert from "node:assert/strict";
import { UserChannel, type SessionRef } from "../../../src/channel/user-channel.js";
import { Flag, Kind } from "../../../src/envelope/envelope.js";

let serial = 1000;
function ref(resource: string, available: boolean, priority: number, copies = false): SessionRef {
  return {
    address: `alice@localhost/${resource}`,
    resource,
    workerId: "w0",
    serial: ++serial,
    protocol: "xmpp",
    available,
    priority,
    presence: null,
    pool: false,
    session: null,
    seq: 0, born: 0, client: "",
    copies,
    told: false,
  };
}

const names = (refs: SessionRef[]) => refs.map((r) => r.resource).sort();

test("pickOne: available before unavailable, whatever the priority", () => {
  const ch = new UserChannel("alice@localhost");
  ch.bind(ref("away", false, 100));
  ch.bind(ref("here", true, -5));
  assert.equal(ch.pickOne()!.resource, "here");
});

test("pickOne: then the highest priority", () => {
  const ch = new UserChannel("alice@localhost");
  ch.bind(ref("low", true, 1));
  ch.bind(ref("high", true, 10));
  ch.bind(ref("mid", true, 5));
  assert.equal(ch.pickOne()!.resource, "high");
});

test("pickOne: ties in priority go to the newest session", () => {
  const ch = new UserChannel("alice@localhost");
  ch.bind(ref("old", true, 5));
  ch.bind(ref("new", true, 5));
  assert.equal(ch.pickOne()!.resource, "new");
  // A rebind of the old resource makes it the newest.
  ch.bind(ref("old", true, 5));
  assert.equal(ch.pickOne()!.resource, "old");
  assert.equal(new UserChannel("x@y").pickOne(), undefined);
});

test("targets: messages go to available sessions with priority >= 0", () => {
  const ch = new UserChannel("alice@localhost");
  ch.bind(ref("a", true, 0));
  ch.bind(ref("b", true, 7));
  ch.bind(ref("neg", true, -1));
  ch.bind(ref("off", false, 3));
  assert.deepEqual(names(ch.targets(Kind.Message, Flag.None)), ["a", "b"]);
  // Flag.EveryResource: every bound session, available or not, whatever its priority (roster pushes).
  assert.deepEqual(names(ch.targets(Kind.Message, Flag.EveryResource)), ["a", "b", "neg", "off"]);
});

test("targets: presence goes to every available session", () => {
  const ch = new UserChannel("alice@localhost");
  ch.bind(ref("a", true, 0));
  ch.bind(ref("neg", true, -1));
  ch.bind(ref("off", false, 3));
  assert.deepEqual(names(ch.targets(Kind.Presence, Flag.None)), ["a", "neg"]);
});

test("bind returns the replaced ref; unbind and update need the current serial", () => {
  const ch = new UserChannel("alice@localhost");
  const first = ref("r", true, 0);
  assert.equal(ch.bind(first), undefined);
  const second = ref("r", true, 0);
  assert.equal(ch.bind(second), first);
  // The old session's late unbind or presence must not touch the new one.
  assert.equal(ch.unbind("r", first.serial), false);
  assert.equal(ch.update("r", first.serial, false, -1, "x", false), undefined);
  assert.equal(ch.resources.get("r"), second);
  assert.equal(ch.update("r", second.serial, false, 4, "p", false), second);
  assert.deepEqual([second.available, second.priority, second.presence], [false, 4, "p"]);
  assert.equal(ch.unbind("r", second.serial), true);
  assert.equal(ch.empty, true);
  assert.equal(ch.unbind("nope", 1), false);
});

test("copiers: counted through bind, replacement, update and unbind; copyTargets leaves out who got the original", () => {
  const ch = new UserChannel("alice@localhost");
  const a = ref("a", true, 0, true);
  const b = ref("b", true, -1, false);
  ch.bind(a);
  ch.bind(b);
  assert.equal(ch.copiers, 1);
  assert.deepEqual(ch.copyTargets([a]), []);
  assert.deepEqual(ch.copyTargets([]), [a]);
  assert.equal(ch.update("b", b.serial, true, -1, null, true), b);
  assert.equal(ch.copiers, 2);
  // The same value again changes nothing.
  ch.update("b", b.serial, true, -1, null, true);
  assert.equal(ch.copiers, 2);
  assert.deepEqual(ch.copyTargets([a]), [b]);
  // A new session at a's resource that does not want copies replaces one that did.
  const a2 = ref("a", true, 0, false);
  ch.bind(a2);
  assert.equal(ch.copiers, 1);
  assert.equal(ch.unbind("a", a.serial), false, "a stale unbind");
  assert.equal(ch.copiers, 1);
  ch.unbind("b", b.serial);
  assert.equal(ch.copiers, 0);
  assert.deepEqual(ch.copyTargets([]), []);
});
