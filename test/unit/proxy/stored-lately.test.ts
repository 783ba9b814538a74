import { test } from "node:test";
import assert from "node:assert/strict";
import { LocalHub } from "../../../src/cluster/local-bus.js";
import { ProxyDaemon } from "../../../src/proxy/proxy-daemon.js";
import { Recorder, proxyOptions } from "./fixtures.js";
import { StoredLately } from "../../../src/proxy/stored-lately.js";
import { Session } from "../../../src/session/session.js";
import { Envelope, Flag } from "../../../src/envelope/envelope.js";
import { Router } from "../../../src/router/router.js";

// A live session that binds at its owner after the owner stored messages for its user (its worker was
// cut off, stopped, or slow to bind again after a ring change) is told to take them (Session.storedWhileAway).

class Taker extends Recorder {
  told = 0;
  constructor(address: string, available: boolean) {
    super(address, "xmpp", available);
  }
  override storedWhileAway(): void {
    this.told++;
  }
}


test("a session binding after its owner stored for its user takes them: online ones only, on any worker, once per bind", { timeout: 5000 }, () => {
  const hub = new LocalHub(64);
  const ids = ["w0", "w1"];
  const proxies = new Map(ids.map((id) => [id, new ProxyDaemon(hub.join(id, "h"), proxyOptions({ maxPendingPerSession: 10 }))]));
  const stored: string[] = [];
  for (const p of proxies.values()) {
    p.offline = (env, settle) => {
      stored.push(env.to);
      settle(null);
      return null;
    };
  }
  const router = new Router(hub.membership());
  const owned = (owner: string, from: number): string => {
    for (let n = from; ; n++) if (router.ownerOf(`u${n}@localhost`) === owner) return `u${n}@localhost`;
  };
  const bob = owned("w0", 0);
  const carol = owned("w0", Number(bob.slice(1, bob.indexOf("@"))) + 1);
  const w0 = proxies.get("w0")!;
  const w1 = proxies.get("w1")!;
  const alice = new Taker(`${owned("w1", 0)}/a`, true);
  w1.attach(alice);
  // Nobody of bob's bound at his owner w0: stored.
  w1.submit(alice, Envelope.message({ from: alice.address, to: bob, protocol: "xmpp", payload: null, flags: Flag.Offline | Flag.BareFallback, id: "m1" }));
  assert.deepEqual(stored, [bob]);
  // A session of bob's that is online binds from w1: told; one that is not online yet (before its initial presence, which takes them itself): not.
  const phone = new Taker(`${bob}/phone`, true);
  const laptop = new Taker(`${bob}/laptop`, false);
  w1.attach(phone);
  w1.attach(laptop);
  assert.equal(phone.told, 1);
  assert.equal(laptop.told, 0);
  // On the owner's own worker too; and a user nothing was stored for: nobody is told.
  const tablet = new Taker(`${bob}/tablet`, true);
  w0.attach(tablet);
  assert.equal(tablet.told, 1);
  const other = new Taker(`${carol}/x`, true);
  w1.attach(other);
  assert.equal(other.told, 0);
  assert.equal(w0.stats.storedRetaken, 2);
  for (const p of proxies.values()) p.stop();
});

test("StoredLately forgets after its window, oldest first, and stays bounded", { timeout: 5000 }, () => {
  const s = new StoredLately();
  s.note("a@x", 0);
  s.note("b@x", 1000);
  assert.equal(s.has("a@x", 100_000), true);
  s.expire(121_000);
  assert.equal(s.has("a@x", 121_000), false, "past the window");
  assert.equal(s.has("b@x", 121_000), true);
  for (let i = 0; i < 100_010; i++) s.note(`u${i}@x`, 200_000);
  assert.equal(s.has("b@x", 200_000), false, "the oldest went first");
  assert.equal(s.has("u100009@x", 200_000), true);
});
