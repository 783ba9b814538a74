import { test } from "node:test";
import assert from "node:assert/strict";
import { Recorder, servedPair as setup } from "./fixtures.js";
import { Envelope, ErrorCode, Kind } from "../../../src/envelope/envelope.js";
import type { ServiceLink } from "../../../src/session/service.js";
import { waitUntil } from "../../helpers.js";

// ServiceLink.request (src/session/service.ts): a request a served address (a room) makes of a session,
// pending on the service's worker like a session's request: answered, timed out, failed when the
// recipient leaves or cannot be found, checked to come from the recipient, forgotten on cancel.

/** One request from the service on w0 to `s` (on worker `at`), answers collected. */
function ask(link: ServiceLink, s: Recorder, at: string, ttl = 0): { answers: Envelope[]; cancel: () => void } {
  const answers: Envelope[] = [];
  const env = Envelope.request({ from: "room@rooms.localhost/asker", to: s.address, protocol: "relay", id: "q1", payload: Buffer.from("q"), ttl });
  const cancel = link.request(env, { address: s.address, at }, (a) => answers.push(a));
  return { answers, cancel };
}

for (const where of ["w0", "w1"]) {
  test(`answered by the recipient (its session on ${where}): the answer reaches the service once, by its ref`, { timeout: 5000 }, async () => {
    const { proxies, links, stop } = setup();
    try {
      const bob = new Recorder("bob@localhost/b", "relay");
      proxies[where === "w0" ? 0 : 1].attach(bob);
      const { answers } = ask(links[0], bob, where);
      await waitUntil(() => bob.got.length === 1, 2000, "the request delivered");
      const req = bob.got[0];
      assert.equal(req.kind, Kind.Request);
      assert.equal(req.from, "room@rooms.localhost/asker");
      assert.match(req.ref, /^w0\.\d+$/, "the ref names the service's worker");
      proxies[where === "w0" ? 0 : 1].submit(bob, Envelope.response({ from: bob.address, to: req.from, protocol: "relay", responseFor: req.ref, payload: Buffer.from("ok") }));
      await waitUntil(() => answers.length === 1, 2000, "the answer");
      assert.equal(answers[0].kind, Kind.Response);
      assert.equal(answers[0].from, bob.address);
      assert.equal(proxies[0].pending.size, 0);
    } finally {
      stop();
    }
  });
}

test("no answer: a timeout error (the protocol's bounds apply); cancel: nothing, and the answer is late", { timeout: 5000 }, async () => {
  const { proxies, links, stop } = setup();
  try {
    const bob = new Recorder("bob@localhost/b", "relay");
    proxies[1].attach(bob);
    const slow = ask(links[0], bob, "w1", 150);
    await waitUntil(() => slow.answers.length === 1, 3000, "the timeout");
    assert.equal(slow.answers[0].kind, Kind.Error);
    assert.equal(slow.answers[0].code, ErrorCode.Timeout);
    assert.equal(slow.answers[0].from, bob.address);
    const cancelled = ask(links[0], bob, "w1");
    await waitUntil(() => bob.got.length === 2, 2000, "the second request");
    cancelled.cancel();
    assert.equal(proxies[0].pending.size, 0);
    const late = proxies[0].stats.late;
    proxies[1].submit(bob, Envelope.response({ from: bob.address, to: "", protocol: "relay", responseFor: bob.got[1].ref, payload: null }));
    await waitUntil(() => proxies[0].stats.late === late + 1, 2000, "counted late");
    assert.equal(cancelled.answers.length, 0);
  } finally {
    stop();
  }
});

test("the recipient leaves, or is not where said and nowhere else: unavailable at once; another's answer is not taken", { timeout: 5000 }, async () => {
  const { proxies, links, stop } = setup();
  try {
    const bob = new Recorder("bob@localhost/b", "relay");
    proxies[1].attach(bob);
    const r = ask(links[0], bob, "w1");
    await waitUntil(() => bob.got.length === 1, 2000, "the request");
    // Answered by someone else with its ref: forged, not taken.
    const eve = new Recorder("eve@localhost/e", "relay");
    proxies[1].attach(eve);
    const forged = proxies[0].stats.forged;
    proxies[1].submit(eve, Envelope.response({ from: eve.address, to: "", protocol: "relay", responseFor: bob.got[0].ref, payload: null }));
    await waitUntil(() => proxies[0].stats.forged === forged + 1, 2000, "the forged answer refused");
    assert.equal(r.answers.length, 0);
    proxies[1].detach(bob);
    await waitUntil(() => r.answers.length === 1, 2000, "unavailable");
    assert.equal(r.answers[0].code, ErrorCode.Unavailable);
    // Nobody at that address any more.
    const gone = ask(links[0], bob, "w1");
    await waitUntil(() => gone.answers.length === 1, 2000, "unavailable at once");
    assert.equal(gone.answers[0].code, ErrorCode.Unavailable);
    assert.equal(proxies[0].pending.size, 0);
  } finally {
    stop();
  }
});
