import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect, type Socket, type Server, type AddressInfo } from "node:net";
import { once } from "node:events";
import { mkdtempSync, readlinkSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { fork } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bindShared, canReadInto, canReadIntoNext, readInto, sendFirst, socketFd, startReading, stopReading } from "../../../src/transport/node-internals.js";

// The Node.js internals in src/transport/node-internals.ts, on real sockets.
// Each has a fallback in production, so a Node.js release that changes one would
// only make Switchboard slower, silently: these tests are where it shows. On a
// failure, see what that release changed in lib/net.js and update node-internals.ts.

const NODE = `Node.js ${process.version}`;

/** A connected pair; closed after the test whatever its outcome (an open socket would keep the run alive). */
async function accepted(t: TestContext): Promise<{ server: Server; client: Socket; peer: Socket }> {
  const server = createServer();
  t.after(() => server.close());
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const got = once(server, "connection");
  const client = connect((server.address() as AddressInfo).port, "127.0.0.1");
  const [peer] = (await got) as [Socket];
  t.after(() => {
    client.destroy();
    peer.destroy();
  });
  await once(client, "connect").catch(() => {});
  return { server, client, peer };
}

test("the probe finds net.Socket's onread fields (kBuffer, kBufferCb)", () => {
  assert.ok(canReadInto, `${NODE}: a net.Socket built with onread has no kBuffer/kBufferCb symbols any more`);
});

test("an accepted socket switched by readInto reads into the shared buffer, and emits no 'data'", { timeout: 10_000 }, async (t) => {
  const { client, peer } = await accepted(t);
  const shared = Buffer.alloc(4096);
  const reads: { n: number; same: boolean; text: string }[] = [];
  let text = "";
  const done = new Promise<void>((resolve) => {
    const ok = readInto(peer, shared, function (this: Socket, n: number, buf: Buffer) {
      assert.equal(this, peer);
      reads.push({ n, same: buf === shared, text: buf.toString("utf8", 0, n) });
      text += buf.toString("utf8", 0, n);
      if (text.length >= 12) resolve();
    });
    assert.ok(ok, `${NODE}: readInto could not switch an accepted socket (no _handle.useUserBuffer?)`);
  });
  let dataEvents = 0;
  peer.on("data", () => dataEvents++);
  client.write("hello shared");
  await done;
  assert.equal(text, "hello shared");
  assert.ok(reads.length > 0 && reads.every((r) => r.same), `${NODE}: the callback was not given the shared buffer`);
  assert.equal(shared.toString("utf8", 0, reads.at(-1)!.n), reads.at(-1)!.text, "the bytes are in the shared buffer");
  assert.equal(dataEvents, 0, `${NODE}: the socket still emits 'data': reads did not go through the shared buffer`);
  // The peer's FIN still ends the socket in that mode.
  client.end();
  await once(peer, "end");
});

test("readInto with next: each read after the first lands in the buffer next() returned", { timeout: 10_000 }, async (t) => {
  assert.ok(canReadIntoNext, `${NODE}: a net.Socket has no kBufferGen symbol any more (onread's buffer as a function)`);
  const { client, peer } = await accepted(t);
  // A buffer of three bytes at a time, each a new one: the reads can only be told apart by where they landed.
  const given: Buffer[] = [Buffer.alloc(3)];
  const reads: { n: number; buf: Buffer }[] = [];
  let total = 0;
  const done = new Promise<void>((resolve) => {
    const ok = readInto(
      peer,
      given[0],
      (n, buf) => {
        reads.push({ n, buf });
        total += n;
        if (total >= 9) resolve();
      },
      () => {
        given.push(Buffer.alloc(3));
        return given.at(-1)!;
      },
    );
    assert.ok(ok, `${NODE}: readInto with next could not switch an accepted socket`);
  });
  client.write("abcdefghi");
  await done;
  assert.ok(reads.length >= 3, `${reads.length} reads of at most 3 bytes`);
  // Each read's bytes are in the buffer handed to its callback: the one given before it.
  reads.forEach((r, i) => assert.equal(r.buf, given[i], `read ${i} went to the buffer next() gave`));
  assert.equal(reads.map((r) => r.buf.toString("utf8", 0, r.n)).join(""), "abcdefghi");
  client.end();
  await once(peer, "end");
});

test("socketFd is the descriptor of the socket itself: bytes written to it reach the peer", { timeout: 10_000 }, async (t) => {
  const { client, peer } = await accepted(t);
  const fd = socketFd(peer);
  assert.ok(fd >= 0, `${NODE}: an accepted socket has no _handle.fd`);
  if (process.platform === "linux") assert.match(readlinkSync(`/proc/self/fd/${fd}`), /^socket:/);
  const got = once(client, "data");
  writeSync(fd, "via fd");
  assert.equal(String((await got)[0]), "via fd");
  // A socket with no handle has no descriptor.
  peer.destroy();
  assert.equal(socketFd(peer), -1);
});

test("stopReading inside a 'data' handler keeps later bytes in the kernel until startReading", { timeout: 10_000 }, async (t) => {
  const { client, peer } = await accepted(t);
  const got: string[] = [];
  let stopped = false;
  peer.on("data", (b: Buffer) => {
    got.push(b.toString());
    // As SASL does on its success: from inside the read that brought the last step.
    if (!stopped) stopped = stopReading(peer);
  });
  client.write("first");
  await waitFor(() => got.length === 1);
  assert.ok(stopped, `${NODE}: the socket's handle has no readStop/readStart`);
  client.write("second");
  // Node's stream asks for more after each chunk it delivers (maybeReadMore): it must not start the handle again.
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(got, ["first"], "nothing read while stopped");
  startReading(peer);
  await waitFor(() => got.join("") === "firstsecond");
});

test("sendFirst puts a message, with or without a socket, ahead of those Node.js holds back behind a socket in flight", { timeout: 20_000 }, async (t) => {
  // The child notes what arrives, in order; `end` sends the list back.
  const dir = mkdtempSync(join(tmpdir(), "sb-sendfirst-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, "child.cjs");
  writeFileSync(script, `const got = []; process.on("message", (m, h) => { if (h) h.destroy(); if (m.n === "end") process.send(got); else got.push(m.n + (h ? "+socket" : "")); });`);
  const child = fork(script, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  t.after(() => child.kill());
  const sockets: Socket[] = [];
  for (let i = 0; i < 3; i++) sockets.push((await accepted(t)).peer);
  // All in one turn: the acknowledgement of the first socket cannot come before the rest is queued.
  child.send({ n: 1 }, sockets[0]);
  child.send({ n: 2 }, sockets[1]);
  child.send({ n: 3 });
  sendFirst(child, { n: 4 });
  sendFirst(child, { n: 5 }, sockets[2]);
  sendFirst(child, { n: 6 });
  child.send({ n: "end" });
  const [order] = (await once(child, "message")) as [string[]];
  assert.deepEqual(order, ["1+socket", "4", "5+socket", "6", "2+socket", "3"], `${NODE}: child_process's _handleQueue is not what sendFirst expects`);
});

test("sendFirst with nothing held back is a plain send", { timeout: 20_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "sb-sendfirst-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, "child.cjs");
  writeFileSync(script, `process.on("message", (m) => process.send(m));`);
  const child = fork(script, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  t.after(() => child.kill());
  let written: Error | null | undefined;
  sendFirst(child, { n: 1 }, undefined, {}, (e) => (written = e));
  const [back] = (await once(child, "message")) as [{ n: number }];
  assert.deepEqual(back, { n: 1 });
  assert.equal(written, null);
});

async function waitFor(pred: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("bindShared binds without listening (refused), and a net.Server listening on the handle accepts from it", { timeout: 10_000 }, async (t) => {
  const h = bindShared("127.0.0.1", 0);
  assert.ok(h !== null, `${NODE} has no net._createServerHandle: a host's primary would pass every connection over IPC`);
  const a: { port?: number } = {};
  h.getsockname(a);
  assert.ok(typeof a.port === "number" && a.port > 0);
  // Bound, not listening: a connection is refused (the primary never accepts).
  const refused = connect(a.port, "127.0.0.1");
  const [e] = (await once(refused, "error")) as [NodeJS.ErrnoException];
  assert.equal(e.code, "ECONNREFUSED");
  const server = createServer((s) => s.end("hi"));
  t.after(() => server.close());
  server.listen(h as never);
  const c = connect(a.port, "127.0.0.1");
  const [data] = (await once(c, "data")) as [Buffer];
  assert.equal(String(data), "hi");
  c.destroy();
});

test("bindShared on a port in use does not fail: libuv defers EADDRINUSE to listen (the balancer probes first)", { timeout: 10_000 }, async (t) => {
  const server = createServer().listen(0, "127.0.0.1");
  t.after(() => server.close());
  await once(server, "listening");
  const h = bindShared("127.0.0.1", (server.address() as AddressInfo).port);
  assert.ok(h !== null);
  h.close();
});
