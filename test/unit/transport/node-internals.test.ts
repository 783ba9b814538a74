import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect, type Socket, type Server, type AddressInfo } from "node:net";
import { once } from "node:events";
import { readlinkSync, writeSync } from "node:fs";
import { canReadInto, readInto, socketFd, startReading, stopReading } from "../../../src/transport/node-internals.js";

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

async function waitFor(pred: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
}
