import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { FaultProxy, type ProxiedConnection } from "../../../bench/lib/fault-proxy.js";
import { once, waitUntil } from "../../helpers.js";

// The fault proxy between plain sockets: a target server that keeps what it
// reads, and clients that connect through the proxy.

/** One side of a connection, as a test sees it: what it read, whether it ended, how it closed. */
class Peer {
  private chunks: Buffer[] = [];
  length = 0;
  ended = false;
  closed = false;
  error = "";
  constructor(readonly sock: Socket) {
    sock.on("data", (d: Buffer) => {
      this.chunks.push(d);
      this.length += d.length;
    });
    sock.on("end", () => (this.ended = true));
    sock.on("error", (e: NodeJS.ErrnoException) => (this.error = e.code ?? e.message));
    sock.on("close", () => (this.closed = true));
  }
  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }
  text(): string {
    return this.data.toString();
  }
}

let target: Server;
const accepted: Peer[] = [];
let proxy: FaultProxy;

before(async () => {
  target = createServer({ allowHalfOpen: true }, (s) => accepted.push(new Peer(s)));
  await new Promise<void>((r) => target.listen(0, "127.0.0.1", () => r()));
  proxy = await FaultProxy.start((target.address() as AddressInfo).port);
});
after(async () => {
  await proxy.close();
  await new Promise<void>((r) => target.close(() => r()));
});

/** A client through the proxy, with its proxied connection and the target's side of it. */
async function dial(): Promise<{ client: Peer; conn: ProxiedConnection; server: Peer }> {
  const n = accepted.length;
  const conn = once<ProxiedConnection>(proxy, "connection");
  const client = new Peer(connect(proxy.port, "127.0.0.1"));
  const c = await conn;
  await waitUntil(() => accepted.length > n, 2000, "the target to accept");
  return { client, conn: c, server: accepted[n] };
}

test("forwards both ways, counts bytes, lists the connection, passes a FIN on each way, and forgets it when both sides closed", { timeout: 5000 }, async () => {
  const { client, conn, server } = await dial();
  assert.ok(proxy.connections().includes(conn));
  assert.equal(conn.clientPort, client.sock.localPort);
  client.sock.write("hello");
  await waitUntil(() => server.text() === "hello", 2000, "hello at the target");
  server.sock.write("world!");
  await waitUntil(() => client.text() === "world!", 2000, "world! at the client");
  assert.deepEqual([conn.up, conn.down, conn.dropped], [5, 6, 0]);
  client.sock.end();
  await waitUntil(() => server.ended, 2000, "the FIN at the target");
  assert.equal(client.closed, false, "half-closed: the client still reads");
  server.sock.end("bye");
  await waitUntil(() => client.closed && client.text() === "world!bye", 2000, "the target's last bytes and FIN");
  await waitUntil(() => !proxy.connections().includes(conn), 2000, "the connection to leave the list");
  assert.equal(client.error, "");
});

test("a large transfer arrives intact; a target that does not read stops the proxy reading the client", { timeout: 10_000 }, async () => {
  const { client, conn, server } = await dial();
  // More than loopback's socket buffers hold on the way (a few MiB each).
  const blob = randomBytes(32 * 1024 * 1024);
  server.sock.pause();
  client.sock.write(blob);
  await waitUntil(() => conn.client.isPaused(), 5000, "the proxy to pause the client's side");
  assert.ok(conn.target.writableLength <= 1024 * 1024, `the proxy holds ${conn.target.writableLength} bytes`);
  server.sock.resume();
  await waitUntil(() => server.length === blob.length, 8000, () => `${server.length} of ${blob.length} bytes`);
  assert.ok(server.data.equals(blob));
  client.sock.destroy();
});

test("cut() resets both sides: each reads ECONNRESET", { timeout: 5000 }, async () => {
  const { client, conn, server } = await dial();
  conn.cut();
  await waitUntil(() => client.closed && server.closed, 2000, "both sides closed");
  assert.equal(client.error, "ECONNRESET");
  assert.equal(server.error, "ECONNRESET");
  await waitUntil(() => !proxy.connections().includes(conn), 2000, "the connection to leave the list");
});

test("blackhole() discards both ways; heal() forwards again", { timeout: 5000 }, async () => {
  const { client, conn, server } = await dial();
  conn.blackhole();
  assert.equal(conn.blackholed, true);
  client.sock.write("lost up");
  server.sock.write("lost down");
  await waitUntil(() => conn.dropped === 16, 2000, "both writes discarded");
  assert.deepEqual([conn.up, conn.down, client.text() + server.text()], [0, 0, ""]);
  conn.heal();
  client.sock.write("found");
  await waitUntil(() => server.text() === "found", 2000, "bytes after heal()");
  client.sock.destroy();
  await waitUntil(() => server.ended, 2000, "the FIN at the target");
});

test("a FIN inside a black hole is not passed on; heal() then resets the side that was left open", { timeout: 5000 }, async () => {
  const { client, conn } = await dial();
  conn.blackhole();
  const { server } = { server: accepted[accepted.length - 1] };
  server.sock.end();
  await waitUntil(() => conn.target.destroyed, 2000, "the proxy to close the target's leg");
  // An absence can only be awaited for a while: a loopback round trip is far shorter.
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(client.ended || client.closed, false, "the client learns nothing of the target's FIN");
  conn.heal();
  await waitUntil(() => client.closed, 2000, "the client to be reset");
  assert.equal(client.error, "ECONNRESET");
});

test("a side that closes inside a black hole keeps the other open; the proxy still lists the connection", { timeout: 5000 }, async () => {
  const { client, conn, server } = await dial();
  conn.blackhole();
  server.sock.destroy();
  await waitUntil(() => conn.target.destroyed, 2000, "the proxy to see the target side close");
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(client.closed, false);
  assert.ok(proxy.connections().includes(conn));
  // The client gives up by itself: now both sides are gone.
  client.sock.destroy();
  await waitUntil(() => !proxy.connections().includes(conn), 2000, "the connection to leave the list");
});

test("cutClient() resets the client only; the target's side stays open and silent until it gives up", { timeout: 5000 }, async () => {
  const { client, conn, server } = await dial();
  conn.cutClient();
  await waitUntil(() => client.closed, 2000, "the client to be reset");
  assert.equal(client.error, "ECONNRESET");
  server.sock.write("into the void");
  await waitUntil(() => conn.dropped === 13, 2000, "the target's write discarded");
  assert.equal(server.closed || server.ended, false, "the target was told nothing");
  assert.ok(proxy.connections().includes(conn));
  server.sock.destroy();
  await waitUntil(() => !proxy.connections().includes(conn), 2000, "the connection to leave the list");
});

test("proxy-wide: cut() and blackhole() reach every live connection; refuse() resets new ones until heal()", { timeout: 5000 }, async () => {
  const a = await dial();
  const b = await dial();
  proxy.blackhole();
  assert.ok(a.conn.blackholed && b.conn.blackholed);
  proxy.heal();
  assert.ok(!a.conn.blackholed && !b.conn.blackholed);
  proxy.cut();
  await waitUntil(() => a.client.closed && b.client.closed && a.server.closed && b.server.closed, 2000, "all four sides closed");
  proxy.refuse();
  const refused = proxy.refused;
  const before = accepted.length;
  const r = new Peer(connect(proxy.port, "127.0.0.1"));
  await waitUntil(() => r.closed, 2000, "the refused client to close");
  assert.equal(r.error, "ECONNRESET");
  assert.equal(proxy.refused, refused + 1);
  assert.equal(accepted.length, before, "the target never saw it");
  proxy.heal();
  const ok = await dial();
  ok.client.sock.write("up again");
  await waitUntil(() => ok.server.text() === "up again", 2000, "bytes after the network came back");
  ok.client.sock.destroy();
});

test("a target that refuses the connection: the client is reset", { timeout: 5000 }, async () => {
  const dead = createServer();
  await new Promise<void>((r) => dead.listen(0, "127.0.0.1", () => r()));
  const port = (dead.address() as AddressInfo).port;
  await new Promise<void>((r) => dead.close(() => r()));
  const p = await FaultProxy.start(port);
  try {
    const c = new Peer(connect(p.port, "127.0.0.1"));
    await waitUntil(() => c.closed, 2000, "the client to be closed");
    assert.equal(c.error, "ECONNRESET");
    await waitUntil(() => p.connections().length === 0, 2000, "no live connection");
  } finally {
    await p.close();
  }
});
