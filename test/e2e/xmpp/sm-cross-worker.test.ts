import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validate } from "../../../src/config/config.js";
import { Server } from "../../../src/server/server.js";
import { LocalHub } from "../../../src/cluster/local-bus.js";
import { silentLogger } from "../../../src/log/logger.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { waitUntil, within } from "../../helpers.js";
import { rawAuth, rawLogin, rawResumable as resumable, chatTo as msg, bodiesIn as bodies, pingOk } from "./util.js";

// XEP-0198 resumption on another worker of the host: two workers in one
// process on a LocalHub (the NATS host test covers the bus between processes),
// each with its own listener, one SQLite file. A client's session lives on the
// worker that accepted its connection; its <resume/> may arrive at the other.

const SM = "urn:xmpp:sm:3";
let dir: string;
let a: Server;
let b: Server;
let portA: number;
let portB: number;

function config(drainTimeoutMs = 3000) {
  return validate({
    storage: { type: "sqlite", path: join(dir, "db.sqlite") },
    listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 }],
    xmpp: { allowPlainWithoutTls: true, sm: { ackEveryStanzas: 0, ackEveryMs: 0, maxUnacked: 100, resumeTimeoutMs: 5000 } },
    drainTimeoutMs,
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "switchboard-smx-"));
  const hub = new LocalHub(64);
  const c = config();
  a = await Server.start(c, { log: silentLogger(), hub, workerId: "w0" });
  b = await Server.start(c, { log: silentLogger(), hub, workerId: "w1" });
  for (const [u, p] of [["alice", "a-pass"], ["bob", "b-pass"], ["carol", "c-pass"], ["dave", "d-pass"]]) a.store.putUser(u, await deriveCredentials(p, c.auth.scramIterations));
  portA = a.port("xmpp", "tcp");
  portB = b.port("xmpp", "tcp");
}, { timeout: 15_000 });

after(async () => {
  await a.stop();
  await b.stop();
  rmSync(dir, { recursive: true, force: true });
});


test("a session on worker A is resumed on worker B: unacknowledged stanzas once and in order, the same full JID, its requests both ways", { timeout: 20_000 }, async () => {
  const { r: a1, id } = await resumable(portA, "alice", "a-pass", "phone");
  const bob = await rawLogin(portB, "bob", "b-pass", "desk");
  const movedOutA = a.proxy.handovers.stats.movedOut;
  const movedInB = b.proxy.handovers.stats.movedIn;
  try {
    for (let i = 0; i < 3; i++) bob.send(msg("alice@localhost/phone", i));
    await a1.until(/<body>2<\/body>/);
    a1.send(`<a xmlns='${SM}' h='1'/>`); // message 0
    // A request alice makes (bob answers only after she moved) and one asked of her (she answers from worker B).
    a1.send(`<iq type='get' id='to-bob' to='bob@localhost/desk'><query xmlns='jabber:iq:version'/></iq>`);
    await bob.until(/id=["']to-bob["']/);
    bob.send(`<iq type='get' id='to-alice' to='alice@localhost/phone'><query xmlns='jabber:iq:version'/></iq>`);
    await a1.until(/id=["']to-alice["']/);
    a1.destroy();
    await waitUntil(() => a.proxy.sessions.get("alice@localhost/phone") !== undefined && (a.proxy.sessions.get("alice@localhost/phone") as any).suspended, 5000, "alice's session suspended on A");
    for (let i = 3; i < 5; i++) bob.send(msg("alice@localhost/phone", i));
    await pingOk(bob);

    const a2 = await rawAuth(portB, "alice", "a-pass");
    try {
      // She handled one stanza before the drop (bob's iq) and acknowledges messages 0 and 1 now.
      a2.send(`<resume xmlns='${SM}' previd='${id}' h='2'/>`);
      const text = await a2.until(/<body>4<\/body>/);
      assert.match(text, new RegExp(`<resumed xmlns=["']urn:xmpp:sm:3["'] h=["']1["'] previd=["']${id}["']\\/>`));
      assert.deepEqual(bodies(text), ["2", "3", "4"], "exactly the unacknowledged ones, once, in order");
      assert.equal(a.proxy.handovers.stats.movedOut, movedOutA + 1, "the session left worker A");
      assert.equal(b.proxy.handovers.stats.movedIn, movedInB + 1, "and arrived on worker B");
      // The unacked gauge follows the stanzas: gone from A, on B until she acknowledges them.
      assert.equal(a.metrics.sm.unacked, 0, "worker A holds nothing of a session that left");
      assert.ok(b.metrics.sm.unacked >= 4, `worker B holds the resent stanzas (${b.metrics.sm.unacked})`);
      assert.equal(b.proxy.sessions.get("alice@localhost/phone")?.serial !== undefined, true);
      // Her request: bob's answer reaches her through A's pending list, then on to B.
      bob.send(`<iq type='result' id='to-bob' to='alice@localhost/phone'><query xmlns='jabber:iq:version'><name>bob</name></query></iq>`);
      await a2.until(/<iq[^>]*id=["']to-bob["'][^>]*type=["']result["']|<iq[^>]*type=["']result["'][^>]*id=["']to-bob["']/);
      // The request asked of her: answered from B, it reaches bob with his own id.
      a2.send(`<iq type='result' id='to-alice' to='bob@localhost/desk'><query xmlns='jabber:iq:version'><name>alice</name></query></iq>`);
      await bob.until(/<name>alice<\/name>/);
      // The same session: full JID, counters going on (bob's iq, now her answer and this ping).
      assert.match(await pingOk(a2), /to=["']alice@localhost\/phone["']/);
      a2.send(`<r xmlns='${SM}'/>`);
      assert.match(await a2.until(/<a [^>]*\/>/), /h=["']3["']/);
      // New traffic finds her on B, directly from the owner.
      bob.send(msg("alice@localhost/phone", 5));
      await a2.until(/<body>5<\/body>/);
      await waitUntil(() => a.proxy.sessions.get("alice@localhost/phone") === undefined, 5000, "worker A forgets the moved session once the owner knows its new place");
      assert.equal(a.metrics.offlineStored + b.metrics.offlineStored, 0, "nothing stored offline: she never left");
    } finally {
      a2.destroy();
    }
  } finally {
    bob.destroy();
  }
});

test("claims that fail: an unknown id, another account, an h larger than sent; then the session still resumes, and moves back when resumed from the first worker", { timeout: 20_000 }, async () => {
  const { r: c1, id } = await resumable(portA, "carol", "c-pass", "tab");
  const dave = await rawLogin(portB, "dave", "d-pass", "desk");
  try {
    dave.send(msg("carol@localhost/tab", 0));
    await c1.until(/<body>0<\/body>/);
    c1.destroy();
    await waitUntil(() => (a.proxy.sessions.get("carol@localhost/tab") as any)?.suspended === true, 5000, "carol suspended on A");

    const unknown = await rawAuth(portB, "carol", "c-pass");
    unknown.send(`<resume xmlns='${SM}' previd='no-such-id' h='0'/>`);
    assert.match(await unknown.until(/<failed/), /<item-not-found/);
    unknown.destroy();

    const other = await rawAuth(portB, "dave", "d-pass");
    other.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
    assert.match(await other.until(/<failed/), /<item-not-found/, "another account's id looks unknown");
    other.destroy();

    const tooHigh = await rawAuth(portB, "carol", "c-pass");
    tooHigh.send(`<resume xmlns='${SM}' previd='${id}' h='7'/>`);
    assert.match(await tooHigh.until(/<failed/), /<handled-count-too-high[^>]*h=["']7["'][^>]*send-count=["']1["']/);
    tooHigh.destroy();
    assert.ok((a.proxy.sessions.get("carol@localhost/tab") as any)?.suspended, "still waiting on A after three refusals");

    const c2 = await rawAuth(portB, "carol", "c-pass");
    c2.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
    const text = await c2.until(/<body>0<\/body>/);
    assert.match(text, /<resumed /);
    // A resume of the same id while that stream is up, on the first worker: the session moves back, taking
    // over from the live stream on B (closed), as a phone does that changed networks before the server noticed.
    const again = await rawAuth(portA, "carol", "c-pass");
    again.send(`<resume xmlns='${SM}' previd='${id}' h='1'/>`);
    await again.until(/<resumed /);
    await c2.whenClosed();
    dave.send(msg("carol@localhost/tab", 1));
    await again.until(/<body>1<\/body>/);
    assert.deepEqual([...bodies(c2.text), ...bodies(again.text)], ["0", "1"], "each once over both streams");
    again.destroy();
  } finally {
    dave.destroy();
  }
});

test("a draining worker parks its resumable sessions on the other worker: resumed there, nothing stored, nothing lost", { timeout: 30_000 }, async () => {
  // A third worker to drain, so that the shared ones stay for the other tests.
  const hub = (b.bus as any).hub as LocalHub;
  const c = a.config;
  const w2 = await Server.start(c, { log: silentLogger(), hub, workerId: "w2" });
  const port2 = w2.port("xmpp", "tcp");
  const { r: d1, id } = await resumable(port2, "dave", "d-pass", "phone");
  const bob = await rawLogin(portB, "bob", "b-pass", "laptop");
  const stored = a.metrics.offlineStored + b.metrics.offlineStored + w2.metrics.offlineStored;
  try {
    bob.send(msg("dave@localhost/phone", 0));
    await d1.until(/<body>0<\/body>/);
    const stopping = w2.stop();
    // RFC 6120 §4.9.3.22 on the stream, then the connection ends; the session moves instead of ending.
    await d1.until(/<system-shutdown/);
    await d1.whenClosed();
    await within(stopping, 8000, "worker w2 to stop");
    const owner = [a, b].find((w) => w.proxy.sessions.has("dave@localhost/phone"));
    assert.ok(owner !== undefined, "the session waits on a worker that stays");
    // Meanwhile bob writes on; the session is bound, so these wait in its queue.
    for (let i = 1; i < 4; i++) bob.send(msg("dave@localhost/phone", i));
    await pingOk(bob);
    const d2 = await rawAuth(owner === a ? portA : portB, "dave", "d-pass");
    d2.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
    const text = await d2.until(/<body>3<\/body>/);
    assert.match(text, /<resumed /);
    assert.deepEqual(bodies(text), ["0", "1", "2", "3"], "the unacknowledged one and those sent while parked, in order");
    assert.equal(a.metrics.offlineStored + b.metrics.offlineStored + w2.metrics.offlineStored, stored, "nothing went to offline storage");
    d2.destroy();
  } finally {
    bob.destroy();
    await w2.stop();
  }
});

test("when the whole host drains no session is parked on a worker that stops too: the unacknowledged messages are stored offline", { timeout: 30_000 }, async () => {
  const hub = new LocalHub(64);
  const c = a.config;
  const w3 = await Server.start(c, { log: silentLogger(), hub, workerId: "w3" });
  const w4 = await Server.start(c, { log: silentLogger(), hub, workerId: "w4" });
  const stored = () => w3.metrics.offlineStored + w4.metrics.offlineStored;
  try {
    const { r: alice } = await resumable(w3.port("xmpp", "tcp"), "alice", "a-pass", "drain3");
    const { r: carol } = await resumable(w4.port("xmpp", "tcp"), "carol", "c-pass", "drain4");
    const bob = await rawLogin(w4.port("xmpp", "tcp"), "bob", "b-pass", "drainer");
    for (let i = 0; i < 3; i++) bob.send(msg("alice@localhost/drain3", `a${i}`) + msg("carol@localhost/drain4", `c${i}`));
    await alice.until(/<body>a2<\/body>/);
    await carol.until(/<body>c2<\/body>/);
    bob.destroy();
    // Neither acknowledged anything; both workers stop at once, as under a host's SIGTERM.
    await within(Promise.all([w3.stop(), w4.stop()]), 10_000, "both workers to stop");
    assert.equal(stored(), 6, "each unacknowledged message stored once, none lost on a worker that was stopping");
  } finally {
    await w3.stop();
    await w4.stop();
  }
  const again = await rawLogin(portA, "alice", "a-pass", "later");
  again.send("<presence/>");
  await again.until(/<body>a2<\/body>/);
  assert.deepEqual(bodies(again.text), ["a0", "a1", "a2"]);
  again.destroy();
});
