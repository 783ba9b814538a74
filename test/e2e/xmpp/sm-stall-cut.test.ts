import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { startXmppServer, waitUntil, type TestServer } from "../../helpers.js";
import { rawAuth, rawLogin, rawResumable, chatTo as msg, bodiesIn as bodies, pingOk } from "./util.js";
import type { XmppSession } from "../../../src/xmpp/xmpp-session.js";

// A worker back from a stall drops a resumable session's connection with stanzas it does not count (XEP-0198 §4:
// not handled; the client sends them again from where <resumed h/> says): read while justStalled, or rolled back
// by stalledBack. Nothing more read from that connection may be counted then — the rest of the chunk being parsed,
// input held meanwhile — or h counts a later stanza in the place of a refused one: the client, resumed, takes the
// refused one as handled and forgets it (lost), and sends again the later one (twice). stall-heal lost all:hN:8 so,
// when the stall's window closed while a worker parsed a client's chunk. One worker here, the stall told by hand.

let ts: TestServer;
let port: number;
const SM = "urn:xmpp:sm:3";

before(async () => {
  ts = await startXmppServer(
    { xmpp: { allowPlainWithoutTls: true, sm: { ackEveryStanzas: 0, ackEveryMs: 0, maxUnacked: 100, resumeTimeoutMs: 10_000 } } },
    { alice: "a-pass", bob: "b-pass" },
  );
  port = ts.port("xmpp", "tcp");
}, { timeout: 15_000 });
after(() => ts.stop());

const session = (address: string) => ts.server.proxy.sessions.get(address) as unknown as XmppSession | undefined;
const suspended = (address: string) => waitUntil(() => session(address)?.suspended === true, 5000, `${address} suspended`);

/** `n` calls of the core's justStalled answer true (the stall noticed), then it is asked as before. */
function stallFor(n: number): () => void {
  const core = ts.server.proxy as unknown as { justStalled(): boolean };
  const real = core.justStalled;
  core.justStalled = function (this: unknown) {
    return n-- > 0 ? true : real.call(this);
  };
  return () => void (core.justStalled = real);
}

test("the stall's window closing within one chunk: the stanzas after the refused one are not counted either", { timeout: 15_000 }, async () => {
  const { r: a1, id } = await resumable("alice", "phone");
  const bob = await rawLogin(port, "bob", "b-pass", "desk");
  try {
    await pingOk(a1); // handled: 1
    const restore = stallFor(1);
    try {
      // One write, one chunk: the first message is read in the window, the two behind it after it closed.
      a1.send(msg("bob@localhost/desk", 0) + msg("bob@localhost/desk", 1) + msg("bob@localhost/desk", 2));
      await suspended("alice@localhost/phone");
    } finally {
      restore();
    }
    await pingOk(bob);
    assert.deepEqual(bodies(bob.text), [], "nothing read after the refused stanza was handled");
    a1.destroy();
    const a2 = await rawAuth(port, "alice", "a-pass");
    try {
      a2.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
      // The ping only: the client sends the three again, in order (§5), each once.
      assert.match(await a2.until(/<resumed [^>]*\/>/), /h=["']1["']/);
      a2.send(msg("bob@localhost/desk", 0) + msg("bob@localhost/desk", 1) + msg("bob@localhost/desk", 2));
      await bob.until(/<body>2<\/body>/);
      await pingOk(bob);
      assert.deepEqual(bodies(bob.text), ["0", "1", "2"]);
      a2.send(`<r xmlns='${SM}'/>`);
      assert.match(await a2.until(/<a [^>]*\/>/), /h=["']4["']/);
    } finally {
      a2.destroy();
    }
  } finally {
    a1.destroy();
    bob.destroy();
  }
});

test("stalledBack while input is held: what the hold kept is not counted on top of the count it went back to", { timeout: 15_000 }, async () => {
  const { r: a1, id } = await resumable("alice", "tablet");
  const bob = await rawLogin(port, "bob", "b-pass", "desk2");
  try {
    await pingOk(a1); // handled: 1
    const s = session("alice@localhost/tablet")!;
    // Something asynchronous holds the input (a store read), and this message waits behind it.
    s.hold();
    a1.send(msg("bob@localhost/desk2", "held"));
    await waitUntil(() => (s as unknown as { held: unknown[] | null }).held?.length === 1, 5000, "the chunk held");
    // The bus then publishes a batch gathered before a stall: the session's count goes back to 1 and its connection is dropped.
    assert.equal(s.stalledBack(1), true);
    await suspended("alice@localhost/tablet");
    s.release();
    await pingOk(bob);
    assert.deepEqual(bodies(bob.text), [], "the held message was not handled");
    a1.destroy();
    const a2 = await rawAuth(port, "alice", "a-pass");
    try {
      a2.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
      assert.match(await a2.until(/<resumed [^>]*\/>/), /h=["']1["']/, "the count stalledBack went to, nothing after it");
      a2.send(msg("bob@localhost/desk2", "held"));
      await bob.until(/<body>held<\/body>/);
      await pingOk(bob);
      assert.deepEqual(bodies(bob.text), ["held"]);
    } finally {
      a2.destroy();
    }
  } finally {
    a1.destroy();
    bob.destroy();
  }
});

test("a resumption while the old connection's input is held: what that connection brought is not replayed into the new stream", { timeout: 15_000 }, async () => {
  const { r: a1, id } = await resumable("alice", "phone3");
  const bob = await rawLogin(port, "bob", "b-pass", "desk3");
  try {
    await pingOk(a1); // handled: 1
    const s = session("alice@localhost/phone3")!;
    // A store read holds the input (takeStored does), and this message waits behind it, not counted.
    s.hold();
    a1.send(msg("bob@localhost/desk3", "x"));
    await waitUntil(() => (s as unknown as { held: unknown[] | null }).held?.length === 1, 5000, "the chunk held");
    a1.destroy();
    await suspended("alice@localhost/phone3");
    const a2 = await rawAuth(port, "alice", "a-pass");
    try {
      a2.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
      assert.match(await a2.until(/<resumed [^>]*\/>/), /h=["']1["']/, "x was not counted: its client sends it again");
      a2.send(msg("bob@localhost/desk3", "x"));
      // The read ends now, on the resumed session.
      s.release();
      await bob.until(/<body>x<\/body>/);
      await pingOk(a2);
      await pingOk(bob);
      assert.deepEqual(bodies(bob.text), ["x"], "once: the resend, not also the old connection's held copy");
      a2.send(`<r xmlns='${SM}'/>`);
      assert.match(await a2.until(/<a [^>]*\/>/), /h=["']3["']/, "x and the ping sent after resuming, on the first ping's count: the held copy not counted");
    } finally {
      a2.destroy();
    }
  } finally {
    a1.destroy();
    bob.destroy();
  }
});

function resumable(user: string, resource: string) {
  return rawResumable(port, user, `${user[0]}-pass`, resource);
}
