import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { client, xml } from "@xmpp/client";
import { validate } from "../../../src/config/config.js";
import { Server } from "../../../src/server/server.js";
import { LocalHub } from "../../../src/cluster/local-bus.js";
import { silentLogger } from "../../../src/log/logger.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { TLS_FILES, waitUntil, within } from "../../helpers.js";
import { online } from "./util.js";

// A mobile client on a 2-worker host: @xmpp/client logs in on worker A with its
// password (SASL2, Bind2, SM enabled inline, a FAST token), loses its connection
// and comes back on worker B with the token and its <resume/> in one
// <authenticate/>: the session is claimed from A exactly as a plain <resume/>
// is (stream-management.ts), and nothing is lost or doubled. Two workers in one
// process on a LocalHub, one SQLite file (the FAST token written by A is read by B).
// Run with NODE_EXTRA_CA_CERTS=test/fixtures/localhost.crt.

let dir: string;
let a: Server;
let b: Server;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "switchboard-sasl2x-"));
  const hub = new LocalHub(64);
  const c = validate({
    storage: { type: "sqlite", path: join(dir, "db.sqlite") },
    listeners: [
      { protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 },
      { protocol: "xmpp", transport: "tls", host: "127.0.0.1", port: 0, tls: TLS_FILES },
    ],
    xmpp: { sasl2: { enabled: true }, sm: { ackEveryStanzas: 0, ackEveryMs: 0, maxUnacked: 100, resumeTimeoutMs: 10000 } },
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

test("@xmpp/client on worker A, connection cut, back on worker B with its FAST token and an inline resume: the session moves, every message once, in order", { timeout: 40_000 }, async () => {
  const c = client({ service: `xmpps://127.0.0.1:${a.port("xmpp", "tls")}`, domain: "localhost", username: "alice", password: "a-pass", resource: "mob" });
  c.on("error", () => {});
  const out: string[] = [];
  c.on("send", (el: any) => out.push(String(el)));
  const got: string[] = [];
  c.on("stanza", (el: any) => {
    if (el.is("message") && el.getChildText("body") !== null) got.push(el.getChildText("body"));
  });
  let resumed = 0;
  c.streamManagement.on("resumed", () => resumed++);
  const successes: string[] = [];
  c.on("element", (el: any) => el.is("success", "urn:xmpp:sasl:2") && successes.push(el.getChildText("authorization-identifier")));
  c.reconnect.delay = 50;
  const address = String(await within(c.start(), 10_000, "online on A"));
  await c.send(xml("presence"));
  await waitUntil(() => c.streamManagement.enabled === true && c.streamManagement.id !== "", 5000, "sm enabled");
  assert.ok(a.proxy.sessions.get(address) !== undefined, "bound on worker A");
  const movedOut = a.proxy.handovers.stats.movedOut;
  const movedIn = b.proxy.handovers.stats.movedIn;
  const bob = await online(b.port("xmpp", "tcp"), "bob", "b-pass", { presence: false });
  const N = 40;
  try {
    for (let i = 0; i < N; i++) {
      await bob.c.send(xml("message", { to: address, type: "chat" }, xml("body", {}, String(i))));
      if (i === 15) {
        // The phone's next connection lands on the other worker.
        c.options.service = `xmpps://127.0.0.1:${b.port("xmpp", "tls")}`;
        c.socket.socket.destroy();
      }
    }
    await within(waitUntil(() => got.length >= N, 25_000, () => `got ${got.length} of ${N}`), 30_000, "all messages");
    assert.deepEqual(got, Array.from({ length: N }, (_, i) => String(i)), "each once, in order");
    await waitUntil(() => resumed > 0, 5000, "resumed event");
    assert.equal(resumed, 1, "resumed, not a new session");
    const auths = out.filter((s) => s.startsWith("<authenticate"));
    assert.equal(auths.length, 2);
    assert.match(auths[1], /mechanism="HT-SHA-256-NONE"/, "the token, not the password");
    assert.match(auths[1], /<resume xmlns="urn:xmpp:sm:3"/, "the resumption in the same element");
    assert.equal(String(c.jid), address, "the same full JID");
    assert.deepEqual(successes, [address, address], "told in both <success/>s");
    assert.equal(a.proxy.handovers.stats.movedOut, movedOut + 1, "the session left worker A");
    assert.equal(b.proxy.handovers.stats.movedIn, movedIn + 1, "and arrived on worker B");
    assert.ok(b.proxy.sessions.get(address) !== undefined, "bound on worker B now");
    // It works from there: a ping answered on B.
    const res = await c.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    assert.equal(res.attrs.type, "result");
  } finally {
    c.reconnect.stop();
    await c.stop().catch(() => {});
    await bob.stop();
  }
});
