import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validate } from "../../../src/config/config.js";
import { Server } from "../../../src/server/server.js";
import { LocalHub } from "../../../src/cluster/local-bus.js";
import { silentLogger } from "../../../src/log/logger.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { within } from "../../helpers.js";
import { rawLogin } from "../xmpp/util.js";

/**
 * Two workers of one host in one process (a LocalHub), one SQLite file. Worker A drains while bob, on
 * worker B, keeps writing to alice, whose session on A has already been ended: those messages take the
 * undeliverable path and are stored offline, and alice gets them at her next login (on B).
 */
test("a message to a session already ended by the drain is stored offline, not lost", { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-drain-"));
  const hub = new LocalHub(64);
  const config = validate({
    storage: { type: "sqlite", path: join(dir, "db.sqlite") },
    listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 }],
    xmpp: { allowPlainWithoutTls: true },
    limits: { maxOutboundBytes: 256 << 20 },
    drainTimeoutMs: 1500,
  });
  const a = await Server.start(config, { log: silentLogger(), hub, workerId: "w0" });
  const b = await Server.start(config, { log: silentLogger(), hub, workerId: "w1" });
  try {
    for (const [u, p] of [["alice", "a"], ["bob", "b"]]) a.store.putUser(u, await deriveCredentials(p, config.auth.scramIterations));
    const alice = await rawLogin(a.port("xmpp", "tcp"), "alice", "a", "phone");
    alice.send("<presence/>");
    const bob = await rawLogin(b.port("xmpp", "tcp"), "bob", "b", "desk");
    // alice stops reading and gets a backlog, so worker A's drain lasts until its deadline.
    alice.pause();
    let fill = "";
    for (let i = 0; i < 3000; i++) fill += `<message to='alice@localhost/phone' type='chat'><body>${"f".repeat(8000)}</body></message>`;
    bob.send(fill + `<iq type='get' id='settle' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await bob.until(/id=["']settle["']/, 15_000);
    assert.ok(a.listeners[0].queuedBytes() > 0, "alice has a backlog on worker A");

    const stopped = a.stop();
    // A's sessions are ended at the start of the drain; A still takes what the bus brings it.
    assert.equal(a.proxy.sessions.size, 0);
    for (let i = 0; i < 5; i++) bob.send(`<message to='alice@localhost/phone' type='chat' id='late${i}'><body>late${i}</body></message>`);
    bob.send(`<iq type='get' id='settle2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await bob.until(/id=["']settle2["']/, 5000);
    await within(stopped, 1500 + 2000, "worker A to stop");
    assert.doesNotMatch(bob.text, /type=["']error["']/, "nothing bounced to bob: stored");

    // alice again, on worker B: the offline messages with <delay/> (XEP-0203) after her initial presence.
    const again = await rawLogin(b.port("xmpp", "tcp"), "alice", "a", "laptop");
    again.send("<presence/>");
    await again.until(/late4/, 5000);
    for (let i = 0; i < 5; i++) assert.match(again.text, new RegExp(`<body>late${i}</body>`));
    assert.match(again.text, /urn:xmpp:delay/);
  } finally {
    await a.stop();
    await b.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
