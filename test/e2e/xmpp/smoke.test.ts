import { test } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import { startXmppServer } from "../../helpers.js";
import { online, rawLogin, type Online } from "./util.js";

/** A server with alice and bob online over plain TCP; `run` gets their clients. */
async function aliceAndBob(config: Record<string, unknown>, resources: { a?: string; b?: string }, run: (a: Online, b: Online) => Promise<void>): Promise<void> {
  const ts = await startXmppServer(config, { alice: "a-pass", bob: "b-pass" });
  try {
    const port = ts.port("xmpp", "tcp");
    const a = await online(port, "alice", "a-pass", { resource: resources.a });
    const b = await online(port, "bob", "b-pass", { resource: resources.b });
    await run(a, b);
    await a.stop();
    await b.stop();
  } finally {
    await ts.stop();
  }
}

test("smoke: two clients log in with SCRAM and exchange a message", { timeout: 15_000 }, async () => {
  await aliceAndBob({}, { a: "phone", b: "desk" }, async (a, b) => {
    await a.c.send(xml("message", { to: "bob@localhost", type: "chat", id: "m1" }, xml("body", {}, "hello bob")));
    const m = await b.waitFor((el) => el.is("message"));
    assert.equal(m.getChildText("body"), "hello bob");
    assert.equal(m.attrs.from, a.jid);
  });
});

// Bound sessions on plain TCP hand their output to the writer thread (src/transport/writer-thread.ts).

test("with io.writerThread off, the event loop writes and the exchange is the same", { timeout: 15_000 }, async () => {
  await aliceAndBob({ io: { writerThread: false } }, {}, async (a, b) => {
    for (let i = 0; i < 20; i++) await a.c.send(xml("message", { to: "bob@localhost", type: "chat", id: `m${i}` }, xml("body", {}, `n${i}`)));
    const m = await b.waitFor((el) => el.is("message") && el.attrs.id === "m19");
    assert.equal(m.getChildText("body"), "n19");
  });
});

test("a client that sends </stream:stream> and FIN together still gets the server's messages and </stream:stream> before its FIN", { timeout: 15_000 }, async () => {
  const ts = await startXmppServer({ xmpp: { allowPlainWithoutTls: true } }, { alice: "a-pass", bob: "b-pass" });
  try {
    const port = ts.port("xmpp", "tcp");
    const a = await rawLogin(port, "alice", "a-pass");
    const b = await rawLogin(port, "bob", "b-pass");
    // Bob's message to himself comes back through his own writer slot, queued just before his close.
    b.end(`<message to='bob@localhost/raw' id='self'><body>to me</body></message></stream:stream>`);
    a.send(`<message to='bob@localhost' id='x'><body>late</body></message>`);
    await b.whenClosed();
    assert.match(b.text, /<body>to me<\/body>[^]*<\/stream:stream>$/);
    a.destroy();
  } finally {
    await ts.stop();
  }
});
