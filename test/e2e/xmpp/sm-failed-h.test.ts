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
import { rawAuth, rawResumable, pingOk } from "./util.js";

// XEP-0198 §5: a resumption that comes after its session ended (the window passed) is refused with the count of
// stanzas the server handled, so that the client sends again only the rest (Conversations reads it). Here the
// <resume/> reaches the other worker of the host (two workers in one process on a LocalHub): the worker where the
// session ended answers the claim with that count.

const SM = "urn:xmpp:sm:3";
let dir: string;
let a: Server;
let b: Server;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "switchboard-failedh-"));
  const hub = new LocalHub(64);
  const c = validate({
    storage: { type: "sqlite", path: join(dir, "db.sqlite") },
    listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 }],
    xmpp: { allowPlainWithoutTls: true, sm: { ackEveryStanzas: 0, ackEveryMs: 0, maxUnacked: 100, resumeTimeoutMs: 1000 } },
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

test("a resumption on the other worker after the session's window passed is refused with its handled count, for its account only", { timeout: 20_000 }, async () => {
  const { r: a1, id } = await rawResumable(a.port("xmpp", "tcp"), "alice", "a-pass", "phone");
  try {
    a1.send("<presence/>");
    await pingOk(a1);
    a1.destroy();
    await waitUntil(() => (a.proxy.sessions.get("alice@localhost/phone") as { suspended?: boolean } | undefined)?.suspended === true, 5000, "suspended on w0");
    await waitUntil(() => a.proxy.sessions.get("alice@localhost/phone") === undefined, 5000, "the window to pass");
    const a2 = await rawAuth(b.port("xmpp", "tcp"), "alice", "a-pass");
    try {
      a2.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
      const f = await a2.until(/<failed [\s\S]*?<\/failed>/);
      assert.match(f, /<failed [^>]*h=["']2["']/, "the presence and the ping were handled");
      assert.match(f, /item-not-found/);
    } finally {
      a2.destroy();
    }
    const other = await rawAuth(b.port("xmpp", "tcp"), "bob", "b-pass");
    try {
      other.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
      const f = await other.until(/<failed[\s\S]*?(<\/failed>|\/>)/);
      assert.doesNotMatch(f, /\bh=/, "another account learns nothing");
    } finally {
      other.destroy();
    }
  } finally {
    a1.destroy();
  }
});
