import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { startXmppServer, type TestServer } from "../../helpers.js";
import { rawLogin, type Raw } from "./util.js";

// XEP-0199 §4.2 server-to-client pings on a real server and raw sockets. Small
// periods; what is awaited is the server's ping and its stream error, never a sleep.
const AFTER = 300;
const TIMEOUT = 300;
/** Timers on two shared cores under a whole test suite: how late the server may act. */
const SLACK = 1000;

let ts: TestServer;
let port: number;

before(async () => {
  ts = await startXmppServer({ xmpp: { allowPlainWithoutTls: true, pingAfterMs: AFTER, pingTimeoutMs: TIMEOUT } }, { alice: "a-pass" });
  port = ts.port("xmpp", "tcp");
}, { timeout: 15_000 });
after(() => ts.stop());

const PING = /<iq type='get' id='(ping-[^']+)' to='alice@localhost\/(\w+)' from='localhost'><ping xmlns='urn:xmpp:ping'\/><\/iq>/;

/** Waits for the server's next ping and returns its id; what was received up to it is consumed. */
async function nextPing(r: Raw): Promise<string> {
  const id = PING.exec(await r.until(PING, AFTER + SLACK))![1];
  r.text = "";
  return id;
}

test("a silent client is pinged after pingAfterMs and, not answering, dropped with connection-timeout within pingAfter + pingTimeout", { timeout: 15_000 }, async () => {
  const dead = ts.server.metrics.listener("xmpp", "tcp");
  const before = dead.deadPeers;
  const r = await rawLogin(port, "alice", "a-pass", "silent");
  const t0 = Date.now();
  await nextPing(r);
  const pingedAfter = Date.now() - t0;
  assert.ok(pingedAfter >= AFTER - 5, `pinged ${pingedAfter} ms after the last traffic, before pingAfterMs`);
  await r.until(/<stream:error><connection-timeout xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/><text [^>]*>no answer to ping<\/text><\/stream:error><\/stream:stream>/, TIMEOUT + SLACK);
  await r.whenClosed(SLACK);
  const gone = Date.now() - t0;
  assert.ok(gone >= AFTER + TIMEOUT - 5 && gone <= AFTER + TIMEOUT + SLACK, `dropped ${gone} ms after the last traffic`);
  assert.equal(dead.deadPeers, before + 1, "counted as a dead peer");
});

test("answering the server's pings keeps the session, ping after ping", { timeout: 15_000 }, async () => {
  const r = await rawLogin(port, "alice", "a-pass", "answers");
  for (let i = 0; i < 3; i++) r.send(`<iq type='result' id='${await nextPing(r)}' to='localhost'/>`);
  r.send("<iq type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  await r.until(/id=["']alive["']/);
  r.destroy();
});

test("a whitespace keepalive counts as an answer to the ping", { timeout: 15_000 }, async () => {
  const dead = ts.server.metrics.listener("xmpp", "tcp");
  const before = dead.deadPeers;
  const r = await rawLogin(port, "alice", "a-pass", "spaces");
  // RFC 6120 §4.6.1: whitespace between stanzas. Were it not traffic, a stream error would come instead of the next ping.
  for (let i = 0; i < 3; i++) {
    await nextPing(r);
    r.send(" ");
  }
  assert.equal(dead.deadPeers, before);
  r.destroy();
});
