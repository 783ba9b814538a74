import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { client, xml } from "@xmpp/client";
import { validate } from "../../../src/config/config.js";
import { Server } from "../../../src/server/server.js";
import { LocalHub } from "../../../src/cluster/local-bus.js";
import { silentLogger } from "../../../src/log/logger.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { waitUntil, within } from "../../helpers.js";
import { HEADER, Raw, bodiesIn, online, pingOk } from "./util.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";

// XEP-0386 §3.2: "Upon successful binding of a resource, the server SHOULD terminate any earlier sessions from
// the same client (identified by the <user-agent> 'id' attribute in its SASL2 authentication request)", whatever
// tag they bound under: on two workers in one process (joined by a LocalHub, and by a real nats-server, where every
// bus message is encoded), @xmpp/client logs in with a
// user-agent id and tag "a" on one worker, then the same id with tag "b" on either worker. The first session ends
// with <conflict/> (live, or suspended waiting for a resumption), and the messages it had written and its client
// had not acknowledged come to the new session once, stamped with <delay/>. Another id's session, and sessions
// without an id, are not touched. Each case runs for an account owned by each worker, so the owner is in turn
// the old session's worker and another one (the bus's "replaced", with the new session's address).

const USERS = Array.from({ length: 24 }, (_, i) => `u${i}`);
const SASL2 = "urn:xmpp:sasl:2";

for (const bus of ["local", "nats"] as const) {
  describe(`Bind2: a client's earlier sessions under other tags end (${bus} bus)`, { skip: bus === "nats" && !HAVE_NATS ? "nats-server is not installed (apt-get install nats-server)" : false }, () => {
    let dir: string;
    let nats: NatsServer | null = null;
    let w: [Server, Server];

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "switchboard-bind2e-"));
      if (bus === "nats") nats = await startNats();
      const hub = bus === "local" ? new LocalHub(64) : undefined;
      const c = validate({
        storage: { type: "sqlite", path: join(dir, "db.sqlite") },
        listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 }],
        // The server never asks for acks: what a client is sent stays unacknowledged until its session ends.
        xmpp: { allowPlainWithoutTls: true, sasl2: { enabled: true }, sm: { ackEveryStanzas: 0, ackEveryMs: 0, maxUnacked: 100, resumeTimeoutMs: 30_000 } },
        ...(nats === null ? {} : { cluster: { bus: "nats", vnodes: 64, nats: { servers: [nats.url], subject: "sbbind2e", heartbeatMs: 200 } } }),
      });
      const start = (workerId: string) => Server.start(c, { log: silentLogger(), hub, workerId, ...(hub === undefined ? { expectWorkers: 2 } : {}) });
      w = await Promise.all([start("w0"), start("w1")]);
      await waitUntil(() => w.every((s) => Object.values(s.bus.membership().hosts).flat().length === 2), 5000, "both workers in the ring", 20);
      for (const u of [...USERS, "bob"]) await w[0].store.putUser(u, await deriveCredentials(`${u}-pass`, c.auth.scramIterations));
    }, { timeout: 30_000 });

    after(async () => {
      await w[0].stop();
      await w[1].stop();
      await nats?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    /** Accounts not used yet, owned by worker `owner` (w0 or w1). */
    const used = new Set<string>();
    function accountOwnedBy(owner: string): string {
      const u = USERS.find((x) => !used.has(x) && w[0].proxy.ownerOf(`${x}@localhost`) === owner);
      assert.ok(u !== undefined, `an account owned by ${owner}`);
      used.add(u);
      return u;
    }

    const port = (i: 0 | 1) => w[i].port("xmpp", "tcp");
    const serverPart = (jid: string) => jid.slice(jid.lastIndexOf("/") + 1);
    const sessionAt = (jid: string) => w[0].proxy.sessions.get(jid) ?? w[1].proxy.sessions.get(jid);

    /** The account's owner has `jid` bound and available (over NATS, the bind and the presence arrive after the login). */
    async function ownerKnows(jid: string): Promise<void> {
      const bare = jid.slice(0, jid.indexOf("/"));
      const owner = w[w[0].proxy.ownerOf(bare) === "w0" ? 0 : 1];
      await waitUntil(() => owner.proxy.owner.channels.get(bare)?.resources.get(jid.slice(bare.length + 1))?.available === true, 5000, `${jid} known at its owner`);
    }

    interface Dev {
      c: any;
      jid: string;
      /** Bodies of the messages (not carbons) received, in order, with whether each had a <delay/>. */
      got: { body: string; delayed: boolean }[];
      /** Stream error conditions received. */
      errors: string[];
    }

    /** @xmpp/client with user-agent id `agent` and Bind2 tag `tag` on worker `i`; SM enabled inline with resumption. */
    async function device(user: string, agent: string, tag: string, i: 0 | 1): Promise<Dev> {
      const c = client({ service: `xmpp://127.0.0.1:${port(i)}`, domain: "localhost", username: user, password: `${user}-pass`, resource: tag, userAgent: xml("user-agent", { id: agent }) });
      const dev: Dev = { c, jid: "", got: [], errors: [] };
      // A real client stops on <conflict/> (else it would take its old place back from the new session).
      c.reconnect.stop();
      c.on("error", (e: any) => e?.condition !== undefined && dev.errors.push(String(e.condition)));
      c.on("stanza", (el: any) => {
        if (!el.is("message") || el.getChildText("body") === null) return;
        if (el.getChild("received", "urn:xmpp:carbons:2") !== undefined || el.getChild("sent", "urn:xmpp:carbons:2") !== undefined) return;
        dev.got.push({ body: el.getChildText("body"), delayed: el.getChild("delay", "urn:xmpp:delay") !== undefined });
      });
      dev.jid = String(await within(c.start(), 10_000, `${tag} online`));
      await c.send(xml("presence"));
      await waitUntil(() => c.streamManagement.enabled === true, 5000, "sm enabled");
      await ownerKnows(dev.jid);
      return dev;
    }

    /** A raw Bind2 login on worker `i` without a <user-agent/> (nothing names the client). */
    async function noAgent(user: string, tag: string, i: 0 | 1): Promise<{ r: Raw; jid: string }> {
      const r = new Raw(port(i));
      await r.ready();
      r.send(HEADER);
      await r.until(/<\/stream:features>/);
      const ir = Buffer.from(`\u0000${user}\u0000${user}-pass`).toString("base64");
      r.send(`<authenticate xmlns='${SASL2}' mechanism='PLAIN'><initial-response>${ir}</initial-response><bind xmlns='urn:xmpp:bind:0'><tag>${tag}</tag></bind></authenticate>`);
      const text = await r.until(/<\/success><stream:features\/>/);
      r.send("<presence/>");
      const jid = text.match(/<authorization-identifier>([^<]+)<\/authorization-identifier>/)![1];
      await ownerKnows(jid);
      return { r, jid };
    }

    async function ping(d: Dev): Promise<void> {
      const res = await within(d.c.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" }))), 5000, "ping");
      assert.equal((res as any).attrs.type, "result");
    }

    const bodies = (d: Dev) => d.got.map((g) => g.body);

    /** Sends `ids` from bob to `to`, and waits until `d` has them all. */
    async function sendAndSee(bob: Awaited<ReturnType<typeof online>>, to: string, ids: string[], d: Dev): Promise<void> {
      for (const id of ids) await bob.c.send(xml("message", { to, type: "chat", id }, xml("body", {}, id)));
      await waitUntil(() => ids.every((id) => bodies(d).includes(id)), 5000, () => `got ${bodies(d).join(",")}`);
    }

    for (const owner of ["w0", "w1"]) {
      test(`owner ${owner}: a client binding with tag "b" on the other worker ends its session of tag "a" with <conflict/>; what it had not acknowledged comes to the new session once, stamped; another id's and id-less sessions stay`, { timeout: 40_000 }, async () => {
        const user = accountOwnedBy(owner);
        const x = randomUUID();
        const bob = await online(port(1), "bob", "bob-pass", { presence: false });
        const devs: Dev[] = [];
        const raws: Raw[] = [];
        try {
          const bare = await noAgent(user, "a", 1);
          raws.push(bare.r);
          const first = await device(user, x, "a", 0);
          devs.push(first);
          const other = await device(user, randomUUID(), "a", 1);
          devs.push(other);
          assert.notEqual(serverPart(other.jid), serverPart(first.jid));
          // Written to the first session, read by its client, never acknowledged (the server asks for no <a/>).
          await sendAndSee(bob, first.jid, [`${user}-1`, `${user}-2`, `${user}-3`], first);
          assert.ok(w[0].proxy.sessions.get(first.jid) !== undefined, "the first session is on worker w0");

          const second = await device(user, x, "b", 1);
          devs.push(second);
          assert.match(second.jid, new RegExp(`^${user}@localhost/b/`));
          assert.equal(serverPart(second.jid), serverPart(first.jid), "the same client: the same server part under another tag");
          await waitUntil(() => first.errors.includes("conflict"), 5000, () => `first's errors: ${first.errors.join(",")}`);
          await waitUntil(() => sessionAt(first.jid) === undefined, 5000, "the first session gone");
          await waitUntil(() => [1, 2, 3].every((n) => bodies(second).includes(`${user}-${n}`)), 5000, () => `second got ${bodies(second).join(",")}`);
          // A barrier: a message after, then a ping answered; anything sent twice would have come by now.
          await sendAndSee(bob, second.jid, [`${user}-after`], second);
          await ping(second);
          assert.deepEqual(bodies(second).sort(), [`${user}-1`, `${user}-2`, `${user}-3`, `${user}-after`].sort(), "each once");
          assert.ok(second.got.filter((g) => g.body !== `${user}-after`).every((g) => g.delayed), "sent again with <delay/>");
          assert.deepEqual(bodies(first), [`${user}-1`, `${user}-2`, `${user}-3`], "the first had them (unacknowledged) and nothing after");
          // Sent again to the client's new session, not to the user's other sessions (as to a bare JID would be).
          await pingOk(bare.r);
          assert.deepEqual([bodies(other), bodiesIn(bare.r.text)], [[], []]);

          // Another user-agent id under the same tag, and a session without an id: untouched.
          await ping(other);
          assert.deepEqual(other.errors, []);
          await pingOk(bare.r);
          assert.equal(bare.r.closed, false);
          // A login without an id, under the new session's tag, ends nothing either.
          const later = await noAgent(user, "b", 0);
          raws.push(later.r);
          await pingOk(later.r);
          await ping(second);
          await ping(other);
          assert.deepEqual([second.errors, other.errors], [[], []]);
          for (const jid of [second.jid, other.jid, bare.jid, later.jid]) assert.ok(sessionAt(jid) !== undefined, `${jid} still bound`);
        } finally {
          for (const d of devs) await d.c.stop().catch(() => {});
          for (const r of raws) r.destroy();
          await bob.stop();
        }
      });

      test(`owner ${owner}: a client's suspended session (waiting for a resumption) ends when it binds under another tag on the same worker, and its unacknowledged messages come to the new session once`, { timeout: 40_000 }, async () => {
        const user = accountOwnedBy(owner);
        const x = randomUUID();
        const bob = await online(port(1), "bob", "bob-pass", { presence: false });
        const devs: Dev[] = [];
        try {
          const other = await device(user, randomUUID(), "a", 0);
          devs.push(other);
          const first = await device(user, x, "a", 0);
          devs.push(first);
          await sendAndSee(bob, first.jid, [`${user}-s1`, `${user}-s2`], first);
          // The connection drops without a word: the session waits for its client to resume it.
          first.c.socket.destroy();
          await waitUntil(() => (w[0].proxy.sessions.get(first.jid) as { suspended?: boolean } | undefined)?.suspended === true, 5000, "suspended");

          // The app restarted without its resumption state, and binds with another tag.
          const second = await device(user, x, "b", 0);
          devs.push(second);
          assert.equal(serverPart(second.jid), serverPart(first.jid));
          await waitUntil(() => sessionAt(first.jid) === undefined, 5000, "the suspended session ended");
          await waitUntil(() => bodies(second).length >= 2, 5000, () => `second got ${bodies(second).join(",")}`);
          await sendAndSee(bob, second.jid, [`${user}-after`], second);
          await ping(second);
          assert.deepEqual(bodies(second).sort(), [`${user}-after`, `${user}-s1`, `${user}-s2`], "each once");
          assert.ok(second.got.filter((g) => g.body !== `${user}-after`).every((g) => g.delayed), "sent again with <delay/>");
          await ping(other);
          assert.deepEqual(other.errors, []);
          // Nothing reached anyone else: the other client had no copy (no carbons asked) and bob nothing back.
          assert.deepEqual(bodies(other), []);
        } finally {
          for (const d of devs) await d.c.stop().catch(() => {});
          await bob.stop();
        }
      });
    }
  });
}
