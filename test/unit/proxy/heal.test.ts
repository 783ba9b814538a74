import { defaults } from "../../../src/config/config.js";
import { test } from "node:test";
import assert from "node:assert/strict";
import { LocalHub, type LocalBus } from "../../../src/cluster/local-bus.js";
import { ProxyDaemon, type ProxyOptions } from "../../../src/proxy/proxy-daemon.js";
import { Session } from "../../../src/session/session.js";
import { Envelope, ErrorCode, Kind } from "../../../src/envelope/envelope.js";
import { Router } from "../../../src/router/router.js";

// Membership changes as the core sees them (docs/architecture.md, "Healing"): requests to sessions
// that died with their worker fail at once; a worker that lost touch (resynced) is bound again
// without its sessions counting as gone. Workers of one process on the local bus.

class Recorder extends Session {
  readonly protocol = "relay";
  readonly idPassThrough = false;
  readonly got: Envelope[] = [];
  constructor(readonly proxy: ProxyDaemon, address: string) {
    super();
    this.address = address;
    this.bare = address.slice(0, address.indexOf("/"));
    this.resource = address.slice(address.indexOf("/") + 1);
    this.available = true;
  }
  deliver(env: Envelope): boolean {
    this.got.push(env);
    return true;
  }
  replaced(): void {}
  request(id: string, to: string): void {
    this.proxy.submit(this, Envelope.request({ from: this.address, to, protocol: "relay", id, payload: Buffer.from(id), ttl: 60_000 }));
  }
}

const OPTS: ProxyOptions = {
  timeouts: { relay: { defaultMs: 60_000, minMs: 100, maxMs: 120_000 } },
  sweepIntervalMs: 50,
  maxPendingPerSession: 10,
  maxInboundPerSession: 100,
  custody: defaults().cluster.custody,
};

function cluster(ids: string[]) {
  const hub = new LocalHub(64);
  const buses = new Map<string, LocalBus>(ids.map((id) => [id, hub.join(id, "h")]));
  const proxies = new Map([...buses].map(([id, b]) => [id, new ProxyDaemon(b, OPTS)]));
  const router = new Router(hub.membership());
  let n = 0;
  const userOwnedBy = (owner: string): string => {
    for (;;) {
      const bare = `u${n++}@localhost`;
      if (router.ownerOf(bare) === owner) return bare;
    }
  };
  const connect = (worker: string, address: string): Recorder => {
    const p = proxies.get(worker)!;
    const s = new Recorder(p, address);
    p.attach(s);
    return s;
  };
  return { hub, buses, proxies, userOwnedBy, connect };
}

test("a request to a session whose worker died fails at once with unavailable, full or bare address", { timeout: 5000 }, () => {
  const c = cluster(["w0", "w1", "w2"]);
  const alice = c.connect("w0", `${c.userOwnedBy("w0")}/a`);
  // Owned by a survivor (w2), connected to the worker that dies (w1).
  const bobBare = c.userOwnedBy("w2");
  const bob = c.connect("w1", `${bobBare}/b`);
  const carol = c.connect("w1", `${c.userOwnedBy("w0")}/c`);
  alice.request("1", bob.address);
  alice.request("2", bobBare);
  alice.request("3", carol.address);
  assert.equal(bob.got.length, 2);
  assert.equal(alice.got.length, 0);
  // w1 dies: its bus leaves the hub (the way a NATS peer expires).
  c.hub.leave("w1");
  const errs = alice.got.filter((e) => e.kind === Kind.Error);
  assert.deepEqual(errs.map((e) => [e.responseFor, e.code]).sort(), [["1", ErrorCode.Unavailable], ["2", ErrorCode.Unavailable], ["3", ErrorCode.Unavailable]]);
  assert.equal(c.proxies.get("w0")!.pending.size, 0);
});

test("a request to a user with another session left, by its bare address, is not failed; to the dead session's full address it is", { timeout: 5000 }, () => {
  const c = cluster(["w0", "w1", "w2"]);
  const alice = c.connect("w0", `${c.userOwnedBy("w0")}/a`);
  const bobBare = c.userOwnedBy("w2");
  const dead = c.connect("w1", `${bobBare}/dead`);
  c.connect("w2", `${bobBare}/alive`);
  alice.request("1", dead.address);
  alice.request("2", bobBare);
  c.hub.leave("w1");
  assert.deepEqual(alice.got.map((e) => e.responseFor), ["1"]);
  assert.equal(c.proxies.get("w0")!.pending.size, 1);
});

test("a worker that lost touch (resynced) is bound again; requests to its sessions are not failed", { timeout: 5000 }, () => {
  const c = cluster(["w0", "w1"]);
  const alice = c.connect("w0", `${c.userOwnedBy("w0")}/a`);
  const bobBare = c.userOwnedBy("w0");
  const bob = c.connect("w1", `${bobBare}/b`);
  alice.request("1", bob.address);
  const owner = c.proxies.get("w0")!.owner;
  assert.ok(owner.channels.has(bobBare));
  // w0 hears that w1 lost its view of w0 (a welcome): it drops w1's bindings; w1, told the same of w0, binds again.
  const m = c.hub.membership();
  for (const cb of c.buses.get("w0")!.listeners) cb(m, [], ["w1"]);
  assert.ok(!owner.channels.has(bobBare), "w1's binding dropped at w0");
  for (const cb of c.buses.get("w1")!.listeners) cb(m, [], ["w0"]);
  assert.ok(owner.channels.get(bobBare)?.resources.has("b"), "bound again");
  assert.equal(alice.got.length, 0, "nothing failed");
  for (const p of c.proxies.values()) p.owner.hold.stop();
});
