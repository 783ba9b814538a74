import { test } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import { startXmppServer, waitUntil, type TestServer } from "../../helpers.js";
import { online, rawAuth, rawLogin, type Raw } from "./util.js";

// A client with stream management and resumption whose peer goes silent (a
// NAT that forgot the mapping: it neither reads nor answers): the server's
// XEP-0199 ping goes unanswered, so after pingAfterMs + pingTimeoutMs the
// connection counts as dropped and the session is suspended, not ended. What
// is sent meanwhile waits for it: resumed on a new connection, every message
// arrives exactly once; with the window passed, each is stored offline once.
// Awaited are the server's own effects (its counters), never a sleep.

const AFTER = 300;
const TIMEOUT = 300;
/** Timers on two shared cores under a whole test suite: how late the server may act. */
const SLACK = 3000;
const SM = "urn:xmpp:sm:3";

function start(resumeTimeoutMs: number): Promise<TestServer> {
  return startXmppServer(
    { xmpp: { allowPlainWithoutTls: true, pingAfterMs: AFTER, pingTimeoutMs: TIMEOUT, sm: { ackEveryStanzas: 0, ackEveryMs: 0, maxUnacked: 100, resumeTimeoutMs } } },
    { alice: "a-pass", bob: "b-pass" },
  );
}

/** Bound, stream management enabled with resumption: the raw client, its id, and its text from <enabled/> on. */
async function resumable(port: number, resource: string): Promise<{ r: Raw; id: string }> {
  const r = await rawLogin(port, "alice", "a-pass", resource);
  r.send(`<enable xmlns='${SM}' resume='true'/>`);
  const text = await r.until(/<enabled [^>]*\/>/);
  const id = text.match(/ id=["']([^"']+)["']/)![1];
  r.text = r.text.slice(r.text.indexOf("<enabled"));
  return { r, id };
}

/** Stanzas (top-level message, presence, iq) in what a raw client has read: its h. */
const handled = (text: string) => (text.match(/<(message|presence|iq)[\s>/]/g) ?? []).length;
const bodies = (text: string) => [...text.matchAll(/<body>([^<]*)<\/body>/g)].map((m) => m[1]);

function tally(got: string[], expect: string[]): { lost: number; duplicated: number } {
  let lost = 0;
  let duplicated = 0;
  for (const b of expect) {
    const k = got.filter((g) => g === b).length;
    if (k === 0) lost++;
    else duplicated += k - 1;
  }
  return { lost, duplicated };
}

test("silent past pingAfterMs + pingTimeoutMs: suspended, not ended; messages meanwhile are queued, and resumed on a new connection exactly once", { timeout: 30_000 }, async () => {
  const ts = await start(20_000);
  const port = ts.port("xmpp", "tcp");
  const dead = ts.server.metrics.listener("xmpp", "tcp");
  // bob is a real client: it answers the server's pings (with an error, which is traffic too).
  const bob = await online(port, "bob", "b-pass", { resource: "desk", presence: false });
  const to = "alice@localhost/phone";
  const send = (i: number) => bob.c.send(xml("message", { to, type: "chat", id: `m${i}` }, xml("body", {}, String(i))));
  try {
    const { r: a1, id } = await resumable(port, "phone");
    for (let i = 0; i < 3; i++) await send(i);
    await a1.until(/<body>2<\/body>/);
    // Gone: reads nothing more, answers nothing (what it had read stays in a1.text).
    a1.pause();
    const h = handled(a1.text);
    const deadBefore = dead.deadPeers;
    const stored = ts.server.metrics.offlineStored;
    for (let i = 3; i < 5; i++) await send(i);
    await waitUntil(() => dead.deadPeers > deadBefore, AFTER + TIMEOUT + SLACK, "the silent connection counted as a dead peer");
    // Suspended: still bound in the core at its full JID, so what comes now waits for it.
    assert.ok(ts.server.proxy.sessions.has(to), "the session is still attached");
    for (let i = 5; i < 8; i++) await send(i);
    await bob.c.send(xml("iq", { type: "get", id: "alive", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    await bob.waitFor((el) => el.is("iq") && el.attrs.id === "alive");
    assert.equal(ts.server.metrics.offlineStored, stored, "nothing was stored offline");
    assert.deepEqual(bob.stanzas.filter((el) => el.is("message")).map(String), [], "nor bounced");

    const a2 = await rawAuth(port, "alice", "a-pass");
    try {
      a2.send(`<resume xmlns='${SM}' previd='${id}' h='${h}'/>`);
      const text = await a2.until(/<body>7<\/body>/);
      assert.match(text, new RegExp(`^<resumed xmlns=["']${SM}["'] h=["']0["'] previd=["']${id}["']\\/>`));
      const all = [...bodies(a1.text), ...bodies(text)];
      const expect = Array.from({ length: 8 }, (_, i) => String(i));
      assert.deepEqual(tally(all, expect), { lost: 0, duplicated: 0 }, all.join(","));
      assert.deepEqual(all, expect, "in order");
      // The same session, on the new connection.
      a2.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
      assert.match(await a2.until(/<iq [^>]*id=["']p1["'][^>]*>/), /to=["']alice@localhost\/phone["']/);
      // h counts on from the resume: what it had handled before, and everything read since (the resent ping too).
      a2.send(`<a xmlns='${SM}' h='${h + handled(a2.text)}'/></stream:stream>`);
      await a2.whenClosed();
      assert.equal(ts.server.metrics.offlineStored, stored, "all acknowledged: nothing left to store");
    } finally {
      a1.destroy();
      a2.destroy();
    }
  } finally {
    await bob.stop();
    await ts.stop();
  }
});

test("silent, and the window passes: the messages it never acknowledged are stored offline, each once, for the next login", { timeout: 30_000 }, async () => {
  const ts = await start(1000);
  const port = ts.port("xmpp", "tcp");
  const dead = ts.server.metrics.listener("xmpp", "tcp");
  const bob = await online(port, "bob", "b-pass", { resource: "desk", presence: false });
  const to = "alice@localhost/phone";
  const send = (i: number) => bob.c.send(xml("message", { to, type: "chat", id: `m${i}` }, xml("body", {}, String(i))));
  try {
    const { r: a1 } = await resumable(port, "phone");
    for (let i = 0; i < 3; i++) await send(i);
    await a1.until(/<body>2<\/body>/);
    // What it read, it acknowledges; then silence.
    a1.send(`<a xmlns='${SM}' h='${handled(a1.text)}'/>`);
    a1.pause();
    const deadBefore = dead.deadPeers;
    const stored = ts.server.metrics.offlineStored;
    for (let i = 3; i < 5; i++) await send(i);
    await waitUntil(() => dead.deadPeers > deadBefore, AFTER + TIMEOUT + SLACK, "the silent connection counted as a dead peer");
    for (let i = 5; i < 7; i++) await send(i);
    await waitUntil(() => ts.server.metrics.offlineStored >= stored + 4, 1000 + SLACK, () => `the window passed: ${ts.server.metrics.offlineStored - stored} stored`);
    await waitUntil(() => !ts.server.proxy.sessions.has(to), SLACK, "the session ended");
    assert.equal(ts.server.metrics.offlineStored, stored + 4, "m3…m6, not what was acknowledged");
    a1.destroy();

    const a2 = await rawLogin(port, "alice", "a-pass", "next");
    try {
      a2.send("<presence/>");
      const text = await a2.until(/<body>6<\/body>[\s\S]*?<\/message>/);
      const got = bodies(text);
      assert.deepEqual(tally(got, ["3", "4", "5", "6"]), { lost: 0, duplicated: 0 }, got.join(","));
      assert.deepEqual(got, ["3", "4", "5", "6"]);
      assert.equal((text.match(/<delay xmlns=["']urn:xmpp:delay["']/g) ?? []).length, 4);
    } finally {
      a2.destroy();
    }
  } finally {
    await bob.stop();
    await ts.stop();
  }
});
