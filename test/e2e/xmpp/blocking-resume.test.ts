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
import { waitUntil } from "../../helpers.js";
import { rawAuth, rawLogin, rawResumable, chatTo, pingOk } from "./util.js";

// XEP-0191 with XEP-0198 across workers: a session that asked for its block list and blocked someone,
// resumed on the other worker (two workers in one process on a LocalHub, one SQLite file), still
// refuses what the blocked JID sends (the list is read again where it arrives) and still gets the pushes.

const SM = "urn:xmpp:sm:3";
const BLOCKING = "urn:xmpp:blocking";
let dir: string;
let a: Server;
let b: Server;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "switchboard-blockres-"));
  const hub = new LocalHub(64);
  const c = validate({
    storage: { type: "sqlite", path: join(dir, "db.sqlite") },
    listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 }],
    xmpp: { allowPlainWithoutTls: true, sm: { ackEveryStanzas: 0, ackEveryMs: 0, maxUnacked: 100, resumeTimeoutMs: 5000 } },
    drainTimeoutMs: 3000,
  });
  a = await Server.start(c, { log: silentLogger(), hub, workerId: "w0" });
  b = await Server.start(c, { log: silentLogger(), hub, workerId: "w1" });
  for (const [u, p] of [["alice", "a-pass"], ["bob", "b-pass"]]) await a.store.putUser(u, await deriveCredentials(p, c.auth.scramIterations));
}, { timeout: 15_000 });

after(async () => {
  await a.stop();
  await b.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("a session resumed on another worker keeps refusing what a blocked JID sends, and keeps getting block list pushes", { timeout: 20_000 }, async () => {
  const portA = a.port("xmpp", "tcp");
  const portB = b.port("xmpp", "tcp");
  const { r: a1, id } = await rawResumable(portA, "alice", "a-pass", "phone");
  const bob = await rawLogin(portB, "bob", "b-pass", "desk");
  const desk = await rawLogin(portA, "alice", "a-pass", "desk");
  try {
    a1.send(`<iq type='get' id='bl'><blocklist xmlns='${BLOCKING}'/></iq>`);
    await a1.until(/id=["']bl["']/);
    a1.send(`<iq type='set' id='blk'><block xmlns='${BLOCKING}'><item jid='bob@localhost'/></block></iq>`);
    await a1.until(/<block xmlns=["']urn:xmpp:blocking["']><item jid=["']bob@localhost["']\/><\/block>/);
    a1.destroy();
    await waitUntil(() => (a.proxy.sessions.get("alice@localhost/phone") as any)?.suspended === true, 5000, "alice's session suspended on A");

    const a2 = await rawAuth(portB, "alice", "a-pass");
    try {
      a2.send(`<resume xmlns='${SM}' previd='${id}' h='3'/>`);
      await a2.until(/<resumed /);
      assert.equal(b.proxy.sessions.get("alice@localhost/phone") !== undefined, true, "it lives on B now");
      // Bob's message to that resource: refused there, <service-unavailable/> to him, nothing to her.
      bob.send(chatTo("alice@localhost/phone", "blocked"));
      await bob.until(/<message[^>]*type=["']error["'][^>]*>[\s\S]*service-unavailable/);
      await pingOk(a2);
      assert.doesNotMatch(a2.text, /<body>blocked<\/body>/);
      // Her other resource unblocks him: the resumed session still writes the push (it had asked for the list).
      desk.send(`<iq type='set' id='ub'><unblock xmlns='${BLOCKING}'><item jid='bob@localhost'/></unblock></iq>`);
      await a2.until(/<unblock xmlns=["']urn:xmpp:blocking["']>/);
      bob.send(chatTo("alice@localhost/phone", "welcome"));
      await a2.until(/<body>welcome<\/body>/);
    } finally {
      a2.destroy();
    }
  } finally {
    bob.destroy();
    desk.destroy();
  }
});
