import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { xml } from "@xmpp/client";
import { startXmppServer, waitUntil, type TestServer } from "../../helpers.js";
import { online, type Online } from "../xmpp/util.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";
import { workerProblems } from "../../../src/admin/health.js";

// A server on PostgreSQL whose store stops answering (every PostgreSQL process SIGSTOPped), then
// goes away (stopped), then comes back. Messages for an offline user cannot be stored meanwhile:
// each goes back to its sender with an error, and the server goes on answering at once.

const ping = (c: Online, id: string) => c.c.send(xml("iq", { type: "get", to: "localhost", id }, xml("ping", { xmlns: "urn:xmpp:ping" })));
const chat = (c: Online, to: string, id: string, body: string) => c.c.send(xml("message", { type: "chat", to, id }, xml("body", {}, body)));
const isError = (id: string) => (el: any) => el.is("message") && el.attrs.type === "error" && el.attrs.id === id;

/** ms until the server answers a XEP-0199 ping to itself. */
async function pingMs(c: Online, id: string): Promise<number> {
  const t0 = performance.now();
  await ping(c, id);
  await c.waitFor((el) => el.is("iq") && el.attrs.type === "result" && el.attrs.id === id, 5000);
  return performance.now() - t0;
}

describe("a server whose PostgreSQL store is down", { skip: HAVE_POSTGRES ?? false }, () => {
  let pgs: PostgresServer;
  let ts: TestServer;
  before(async () => {
    pgs = await startPostgres();
    const postgres = { ...(await pgs.createDatabase("down")), connectTimeoutMs: 1000, statementTimeoutMs: 1000 };
    ts = await startXmppServer({ storage: { type: "postgres", postgres } }, { alice: "a-pw", bob: "b-pw", carol: "c-pw" });
    // Alice and Carol see each other's presence (both ways), as if they had subscribed before.
    const both = (jid: string) => ({ jid, name: "", subscription: "both" as const, ask: false, groups: [] });
    await ts.server.store.xmpp.putRosterItem("alice", both("carol@localhost"));
    await ts.server.store.xmpp.putRosterItem("carol", both("alice@localhost"));
  });
  after(async () => {
    await ts?.stop();
    await pgs?.stop();
  });

  test("bounces what it cannot store to the sender with an error, keeps answering at once, and stores again when the store is back", { timeout: 60_000 }, async () => {
    const port = ts.port("xmpp", "tcp");
    const alice = await online(port, "alice", "a-pw");
    const carol = await online(port, "carol", "c-pw");
    try {
      // The store answers: a message for offline bob is stored.
      await chat(alice, "bob@localhost", "m0", "before");
      await waitUntil(() => ts.server.metrics.offlineStored === 1, 5000, "the first message stored");

      // 1. Every PostgreSQL process stopped: connections stay open and nothing answers.
      pgs.pause();
      try {
        await chat(alice, "bob@localhost", "m1", "while paused");
        // The write waits for its timeout; the event loop does not.
        const paused: number[] = [];
        for (let i = 0; i < 5; i++) paused.push(await pingMs(alice, `p${i}`));
        assert.ok(Math.max(...paused) < 250, `pings answered at once while the store hangs: ${paused.map((x) => x.toFixed(1)).join(", ")} ms`);
        // Traffic between online users goes on, and presence reaches the roster read at login: no store read per presence.
        await chat(alice, carol.jid, "live", "to carol");
        await carol.waitFor((el) => el.is("message") && el.getChildText("body") === "to carol", 2000);
        await alice.c.send(xml("presence", {}, xml("show", {}, "away")));
        await carol.waitFor((el) => el.is("presence") && el.attrs.from === alice.jid && el.getChildText("show") === "away", 2000);
        // /readyz says why.
        assert.match((await workerProblems(ts.server)).join("; "), /store: /);
        const err = await alice.waitFor(isError("m1"), 20_000);
        assert.ok(err.getChild("error")?.getChild("internal-server-error"), `internal-server-error: ${err}`);
        assert.match(err.getChild("error")?.getChildText("text") ?? "", /could not be stored/);
        assert.equal(err.getChildText("body"), "while paused", "the error quotes the message");
      } finally {
        pgs.resume();
      }

      // 2. PostgreSQL stopped: refused at once, bounced.
      await pgs.halt();
      await chat(alice, "bob@localhost", "m2", "while down");
      const t0 = performance.now();
      assert.ok((await pingMs(alice, "p-down")) < 250, "a ping is answered at once");
      const err = await alice.waitFor(isError("m2"), 10_000);
      assert.ok(err.getChild("error")?.getChild("internal-server-error"));
      assert.ok(performance.now() - t0 < 5000, "a store that refuses connections fails the write quickly");
      assert.equal(ts.server.metrics.offlineStored, 1, "nothing counted as stored while down");
      assert.ok(ts.server.proxy.stats.bounced >= 2);
      // A login cannot be checked: a temporary failure (RFC 6120 §6.5.12), not "wrong password".
      const failures = ts.server.metrics.xmpp.authFailures;
      await assert.rejects(online(port, "bob", "b-pw"), (e: any) => e?.condition === "temporary-auth-failure");
      assert.equal(ts.server.metrics.xmpp.authFailures, failures, "not counted as a failed authentication");

      // 3. Back: stored again, and bob gets what was stored, nothing that was bounced.
      await pgs.start();
      await chat(alice, "bob@localhost", "m3", "after");
      await waitUntil(() => ts.server.metrics.offlineStored === 2, 10_000, "the message after the outage stored");
      assert.deepEqual(await workerProblems(ts.server), []);
      const bob = await online(port, "bob", "b-pw");
      try {
        await bob.waitFor((el) => el.is("message") && el.getChildText("body") === "after", 5000);
        const bodies = () => bob.stanzas.filter((el) => el.is("message")).map((el) => el.getChildText("body"));
        assert.deepEqual(bodies(), ["before"], `stored before the outage, not the bounced ones: ${bodies()}`);
      } finally {
        await bob.stop();
      }
    } finally {
      await alice.stop();
      await carol.stop();
    }
  });
});
