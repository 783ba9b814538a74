import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validate } from "../../../src/config/config.js";
import { Server } from "../../../src/server/server.js";
import { LocalHub } from "../../../src/cluster/local-bus.js";
import { Router } from "../../../src/router/router.js";
import { silentLogger } from "../../../src/log/logger.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { rawLogin, chatTo, bodiesIn } from "./util.js";

// Issue 14: "messages to a bare JID while that user logs in on a two-worker host are sometimes left in offline
// storage". The owner stores a message that reached it before the login's presence; the login reads the store on
// its own worker. The login now waits for its owner's offline writer (Core.barrier) before it reads.

let dir: string;
let w0: Server;
let w1: Server;
let hub: LocalHub;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "switchboard-login-race-"));
  hub = new LocalHub(64);
  const c = validate({
    storage: { type: "sqlite", path: join(dir, "db.sqlite") },
    listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 }],
    xmpp: { allowPlainWithoutTls: true },
  });
  w0 = await Server.start(c, { log: silentLogger(), hub, workerId: "w0" });
  w1 = await Server.start(c, { log: silentLogger(), hub, workerId: "w1" });
  for (let i = 0; i < 40; i++) await w0.store.putUser(`u${i}`, await deriveCredentials(`p${i}`, 4096));
}, { timeout: 30_000 });

after(async () => {
  await w0.stop();
  await w1.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("a message to a bare JID racing its user's login on another worker than the owner is delivered, live or from offline storage", { timeout: 60_000 }, async () => {
  const router = new Router(hub.membership());
  // Recipients owned by w1 who log in on w0; the sender is on w1, so the owner stores what it cannot deliver.
  const recipients = Array.from({ length: 40 }, (_, i) => i).filter((i) => router.ownerOf(`u${i}@localhost`) === "w1").slice(0, 12);
  assert.ok(recipients.length >= 8, "enough users owned by w1");
  const sender = await rawLogin(w1.port("xmpp", "tcp"), "u39", "p39", "s");
  let missing = 0;
  try {
    for (const i of recipients) {
      const r = await rawLogin(w0.port("xmpp", "tcp"), `u${i}`, `p${i}`, "phone");
      // The message and the initial presence at once: the owner may take either first.
      sender.send(chatTo(`u${i}@localhost`, `to-u${i}`));
      r.send("<presence/>");
      try {
        await r.until(new RegExp(`<body>to-u${i}</body>`), 3000);
      } catch {
        missing++;
      }
      assert.ok(bodiesIn(r.text).filter((b) => b === `to-u${i}`).length <= 1, "not twice");
      r.destroy();
    }
  } finally {
    sender.destroy();
  }
  assert.equal(missing, 0, `${missing} of ${recipients.length} messages were left in offline storage while their user was online`);
});
