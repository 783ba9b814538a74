import { test } from "node:test";
import assert from "node:assert/strict";
import { startXmppServer } from "../../helpers.js";
import { rawLogin, type Raw } from "./util.js";
import { WriterThread } from "../../../src/transport/writer-thread.js";

// A short XMPP load through the writer thread: 20 clients on plain TCP, 500
// messages of mixed sizes (some larger than a socket buffer takes at once, so
// the thread queues and drains), then half end their streams and half drop
// the connection. CI runs this with the addon built under AddressSanitizer
// and UBSan too (.ci/sanitize).

const USERS = 20;
const PER_USER = 25;
const choice = WriterThread.choose(true);
const skip = choice.writer === null ? `writes go through the ${choice.path}` : false;

function body(from: number, i: number): string {
  // Every seventh message is large: 48 KB of text, more than the kernel takes in one send here.
  const n = i % 7 === 3 ? 48_000 : 10 + ((from * 31 + i * 17) % 400);
  return `${from}.${i}:` + "abcdefghij".repeat(Math.ceil(n / 10)).slice(0, n);
}

function received(c: Raw): RegExpMatchArray[] {
  return [...c.text.matchAll(/<message [^>]*id=["'](\d+)-(\d+)["'][^>]*><body>([^<]*)<\/body><\/message>/g)];
}

test(`${USERS} clients, ${USERS * PER_USER} messages through the writer thread: all arrive, in order, whole; streams end and drop cleanly`, { skip, timeout: 60_000 }, async () => {
  const writer = choice.writer!;
  const users: Record<string, string> = {};
  for (let u = 0; u < USERS; u++) users[`u${u}`] = `p${u}`;
  const ts = await startXmppServer({ xmpp: { allowPlainWithoutTls: true } }, users);
  const clients: Raw[] = [];
  try {
    const port = ts.port("xmpp", "tcp");
    const opened = writer.opened;
    for (let u = 0; u < USERS; u++) clients.push(await rawLogin(port, `u${u}`, `p${u}`));
    // Every bound session took a writer slot (else this proves nothing about the thread).
    assert.equal(writer.opened - opened, USERS);
    // Each user sends to the next (its full JID: no presence needed), all at once.
    for (let i = 0; i < PER_USER; i++) {
      for (let u = 0; u < USERS; u++) clients[u].send(`<message to='u${(u + 1) % USERS}@localhost/raw' type='chat' id='${u}-${i}'><body>${body(u, i)}</body></message>`);
    }
    const last = new RegExp(`id=["']\\d+-${PER_USER - 1}["'][^>]*><body>[^<]*</body></message>`);
    await Promise.all(
      clients.map((c, u) =>
        c.until(last, 30_000).catch(() => {
          throw new Error(`u${u} has ${received(c).length} of ${PER_USER} messages${c.closed ? " and was closed" : ""}`);
        }),
      ),
    );
    for (let u = 0; u < USERS; u++) {
      const from = (u + USERS - 1) % USERS;
      const got = received(clients[u]);
      assert.equal(got.length, PER_USER, `u${u} got ${got.length} messages`);
      got.forEach((m, i) => {
        assert.equal(`${m[1]}-${m[2]}`, `${from}-${i}`, `u${u}: message ${i} in order`);
        assert.equal(m[3], body(from, i), `u${u}: message ${i} whole`);
      });
    }
    // Half end their streams (the server answers </stream:stream>, then FIN after it); half just drop.
    for (let u = 0; u < USERS; u++) {
      if (u % 2 === 0) clients[u].end("</stream:stream>");
      else clients[u].destroy();
    }
    for (let u = 0; u < USERS; u += 2) {
      await clients[u].whenClosed(10_000);
      assert.match(clients[u].text, /<\/stream:stream>$/);
    }
  } finally {
    for (const c of clients) c.destroy();
    await ts.stop();
  }
});
