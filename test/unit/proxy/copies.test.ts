import { test } from "node:test";
import assert from "node:assert/strict";
import { LocalHub } from "../../../src/cluster/local-bus.js";
import { ProxyDaemon } from "../../../src/proxy/proxy-daemon.js";
import { Recorder, proxyOptions } from "./fixtures.js";
import { Session } from "../../../src/session/session.js";
import { Envelope, Flag } from "../../../src/envelope/envelope.js";
import { Router } from "../../../src/router/router.js";

// Copies (Flag.Copies; XEP-0280 carbons in neutral terms) through the whole
// core: three workers on the synchronous local bus, the user's owner on a
// worker where none of its sessions is, so every hop is a bus message.

class Rec extends Recorder {
  /** What each session got, as "original" or "copy"/"sent copy", by message id. */
  seen(): string[] {
    return this.got.map((e) => `${e.id} ${e.flags & Flag.SentCopy ? "sent copy" : e.flags & Flag.Copy ? "copy" : "original"}`);
  }
}


function setup() {
  const hub = new LocalHub(64);
  const proxies = new Map(["w0", "w1", "w2"].map((id) => [id, new ProxyDaemon(hub.join(id, "10.0.0.1"), proxyOptions())]));
  const router = new Router(hub.membership());
  const userOwnedBy = (w: string, skip = "") => {
    for (let i = 0; ; i++) if (`u${i}` !== skip && router.ownerOf(`u${i}@x`) === w) return `u${i}@x`;
  };
  const alice = userOwnedBy("w2");
  const bob = userOwnedBy("w0");
  const at = (w: string, address: string) => {
    const s = new Rec(address);
    proxies.get(w)!.attach(s);
    return s;
  };
  // a shares w0 with bob: bob's messages to alice/a take the shortcut past the owner.
  const a = at("w0", `${alice}/a`);
  const b = at("w1", `${alice}/b`);
  const bobS = at("w0", `${bob}/r`);
  const copies = () => [...proxies.values()].reduce((n, p) => n + p.stats.copies, 0);
  const send = (from: Session, to: string, id: string, flags = Flag.Copies | Flag.Offline) =>
    proxies.get(from === b ? "w1" : "w0")!.submit(from, Envelope.message({ from: from.address, to, protocol: "xmpp", payload: null, flags, id }));
  const want = (s: Session, on: boolean, w: string) => {
    s.wantsCopies = on;
    proxies.get(w)!.presenceChanged(s);
  };
  return { alice, bob, a, b, bobS, copies, send, want };
}

test("nobody else wants copies: no copy is made, whichever way the message goes", { timeout: 5000 }, () => {
  const { alice, bob, a, b, bobS, copies, send, want } = setup();
  // a wants copies itself: that is not "another session" for a.
  want(a, true, "w0");
  assert.equal(a.peersWantCopies, false);
  assert.equal(b.peersWantCopies, true, "the owner told b's worker");
  send(bobS, a.address, "full-shortcut");
  send(a, `${bob}`, "sent");
  want(a, false, "w0");
  assert.equal(b.peersWantCopies, false);
  send(bobS, alice, "bare");
  send(bobS, b.address, "full-via-owner");
  send(b, bob, "sent-b");
  assert.equal(copies(), 0);
  assert.deepEqual(a.seen(), ["full-shortcut original", "bare original"]);
  assert.deepEqual(b.seen(), ["bare original", "full-via-owner original"]);
});

test("b wants copies: one copy of each message a sends or receives, none of what b has itself", { timeout: 5000 }, () => {
  const { alice, bob, a, b, bobS, copies, send, want } = setup();
  want(b, true, "w1");
  assert.deepEqual([a.peersWantCopies, b.peersWantCopies], [true, false]);
  send(bobS, a.address, "r1"); // shortcut on w0: the copy goes to the owner (w2), then to b
  send(a, bob, "s1"); // sent by a: a sent copy for b
  send(bobS, alice, "bare1"); // both are targets: no copy
  send(b, bob, "s2"); // b is the only one that wants copies: nothing for a
  send(bobS, b.address, "r2"); // to b itself: nothing for a
  send(a, bob, "nc", Flag.Offline); // no Flag.Copies (a <private/> message): not copied
  assert.deepEqual(b.seen(), ["r1 copy", "s1 sent copy", "bare1 original", "r2 original"]);
  assert.deepEqual(a.seen(), ["r1 original", "bare1 original"]);
  assert.equal(copies(), 2);
  // b with a negative priority is no target of a bare-JID message: it gets a copy instead (XEP-0280 §7).
  b.priority = -1;
  want(b, true, "w1");
  send(bobS, alice, "bare2");
  assert.deepEqual(b.seen().slice(4), ["bare2 copy"]);
  assert.deepEqual(a.seen().slice(2), ["bare2 original"]);
  assert.equal(copies(), 3);
});
