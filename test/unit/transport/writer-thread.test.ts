import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect, type Socket, type Server, type AddressInfo } from "node:net";
import { once } from "node:events";
import { availableParallelism } from "node:os";
import { spawn, spawnSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { WriterThread } from "../../../src/transport/writer-thread.js";
import { socketFd } from "../../../src/transport/node-internals.js";

// The writer thread with real sockets: what a slot is given arrives whole and in order,
// waits for a slow reader, ends with FIN after the data, and never reaches another connection.

const writer = WriterThread.get();
const skip = writer === null ? `writer thread unavailable: ${WriterThread.unavailable()}` : false;

function fdOf(s: Socket): number {
  const fd = socketFd(s);
  assert.ok(fd >= 0);
  return fd;
}

async function pair(server: Server): Promise<{ client: Socket; peer: Socket }> {
  const accepted = once(server, "connection");
  const client = connect((server.address() as AddressInfo).port, "127.0.0.1");
  const [peer] = (await accepted) as [Socket];
  await once(client, "connect").catch(() => {});
  return { client, peer };
}

function collect(s: Socket): { bytes: () => Buffer } {
  const parts: Buffer[] = [];
  s.on("data", (b: Buffer) => parts.push(b));
  return { bytes: () => Buffer.concat(parts) };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await sleep(5);
  }
}

async function listening(): Promise<Server> {
  const server = createServer({ allowHalfOpen: true });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
}

/** A connection whose server side has a writer slot; `done` closes all of it. */
async function slotted(): Promise<{ w: WriterThread; client: Socket; slot: number; done: () => void }> {
  const w = writer!;
  const server = await listening();
  const { client, peer } = await pair(server);
  const slot = w.open(fdOf(peer));
  assert.ok(slot >= 0);
  const done = () => {
    w.close(slot);
    peer.destroy();
    client.destroy();
    server.close();
  };
  return { w, client, slot, done };
}

test("strings and buffers of every size arrive whole and in order", { skip, timeout: 20_000 }, async () => {
  const { w, client, slot, done } = await slotted();
  const got = collect(client);
  const expect: Buffer[] = [];
  for (let i = 0; i < 3000; i++) {
    const chunk = i % 3 === 0 ? Buffer.alloc(i % 700, i & 255) : `<m n='${i}'>héllo ✓ ${"x".repeat(i % 300)}</m>`;
    expect.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
    w.write(slot, chunk);
    if (i % 50 === 0) w.publish();
  }
  // Larger than a ring record: goes in pieces.
  const big = Buffer.alloc(300_000, 7);
  w.write(slot, big);
  expect.push(big);
  w.publish();
  const want = Buffer.concat(expect);
  await until(() => got.bytes().length >= want.length);
  assert.ok(got.bytes().equals(want));
  assert.equal(w.backlog(slot), 0);
  done();
});

test("a reader that does not read: the backlog holds, then drains in order", { skip, timeout: 20_000 }, async () => {
  const { w, client, slot, done } = await slotted();
  client.pause();
  const piece = Buffer.alloc(32_768);
  for (let i = 0; i < 256; i++) {
    piece.fill(i);
    w.write(slot, Buffer.from(piece));
    w.publish();
  }
  const total = 256 * piece.length;
  // 8 MiB is more than the two kernel buffers hold: some of it must be waiting in the writer.
  await until(() => w.backlog(slot) < total);
  await sleep(50);
  const held = w.backlog(slot);
  assert.ok(held > 0 && held < total, `backlog ${held}`);
  const got = collect(client);
  client.resume();
  await until(() => got.bytes().length >= total);
  const b = got.bytes();
  assert.equal(b.length, total);
  for (let i = 0; i < 256; i++) assert.equal(b[i * piece.length], i, `piece ${i} in place`);
  await until(() => w.backlog(slot) === 0);
  done();
});

test("shutdown sends FIN after the data", { skip, timeout: 20_000 }, async () => {
  const { w, client, slot, done } = await slotted();
  const got = collect(client);
  for (let i = 0; i < 100; i++) w.write(slot, `line ${i}\n`);
  w.shutdown(slot);
  await once(client, "end");
  assert.equal(got.bytes().toString().split("\n").length, 101);
  done();
});

test("after close, a new connection on the same descriptor number gets none of the old one's bytes", { skip, timeout: 20_000 }, async () => {
  const w = writer!;
  const server = await listening();
  const a = await pair(server);
  a.client.pause();
  const fd = fdOf(a.peer);
  const slot = w.open(fd);
  for (let i = 0; i < 200; i++) w.write(slot, Buffer.alloc(32_768, 0x41));
  w.publish();
  await until(() => w.backlog(slot) < 200 * 32_768);
  // The next client is another process, started (its pipes made) before the old
  // descriptor is freed: the server's side of its connection can take the old number.
  const port = (server.address() as AddressInfo).port;
  const child = spawn(process.execPath, ["-e", CLIENT, String(port)], { stdio: ["pipe", "pipe", "inherit"] });
  const out: Buffer[] = [];
  child.stdout!.on("data", (b: Buffer) => out.push(b));
  // The event loop's socket goes first; the slot's close is still to come.
  a.peer.destroy();
  await once(a.peer, "close");
  const accepted = once(server, "connection");
  child.stdin!.write("go\n");
  const [bPeer] = (await accepted) as [Socket];
  // Lowest free number first: the new connection took the old one's (else this test proves less).
  assert.equal(fdOf(bPeer), fd);
  w.close(slot);
  const slot2 = w.open(fdOf(bPeer));
  w.write(slot2, "only this");
  w.shutdown(slot2);
  await once(child, "close");
  assert.equal(Buffer.concat(out).toString(), "only this");
  w.close(slot2);
  bPeer.destroy();
  a.client.destroy();
  server.close();
});

// Connects on "go", prints what it receives until the server's FIN.
const CLIENT = `
const net = require("node:net");
process.stdin.once("data", () => {
  const s = net.connect(Number(process.argv[1]), "127.0.0.1");
  s.on("data", (b) => process.stdout.write(b));
  s.on("end", () => process.exit(0));
});
`;

test("a write after any pause arrives: the thread naps while busy and is woken once asleep", { skip, timeout: 20_000 }, async () => {
  const { w, client, slot, done } = await slotted();
  const got = collect(client);
  // Gaps around the nap (0.2 ms) and past the point where it stops napping and sleeps (about 2 ms).
  const gaps = [0, 0, 0.1, 0.3, 1, 3, 10, 40, 0, 5, 100];
  let want = "";
  for (let i = 0; i < gaps.length; i++) {
    if (gaps[i] > 0) await sleep(gaps[i]);
    const line = `gap ${i}\n`;
    want += line;
    w.write(slot, line);
    w.publish();
    await until(() => got.bytes().length === Buffer.byteLength(want), 2000);
  }
  assert.equal(got.bytes().toString(), want);
  done();
});

// A build must load wherever Node.js 20 runs (glibc >= 2.28), not only on the glibc it was built on.
const nm = spawnSync("nm", ["-D", WriterThread.addonPath()], { encoding: "utf8" });
test("the addon imports nothing from glibc newer than 2.28 (Node.js 20's floor)", { skip: skip || (nm.status !== 0 ? "no nm here" : false) }, () => {
  const versions = [...nm.stdout.matchAll(/(\S+@GLIBC_(\d+)\.(\d+)\S*)/g)];
  assert.ok(versions.length > 0, "nm lists glibc symbols");
  const newer = versions.filter((m) => Number(m[2]) > 2 || (Number(m[2]) === 2 && Number(m[3]) > 28)).map((m) => m[1]);
  assert.deepEqual(newer, [], `symbols newer than GLIBC_2.28: ${newer.join(", ")}`);
});

test("the thread only where it has a core to spare: two usable cores for each worker of the host, unless forced", { skip: skip || (process.platform !== "linux" ? "not Linux" : false), timeout: 5000 }, () => {
  const cores = availableParallelism();
  const many = Math.max(cores, 2); // a worker per core: no core left for a thread each
  const crowded = WriterThread.choose(true, many);
  assert.equal(crowded.writer, null);
  assert.match(crowded.path, cores < 2 ? /one usable core/ : new RegExp(`^event loop \\(${many} workers on ${cores} usable cores`));
  assert.notEqual(WriterThread.choose("always", many).writer, null, '"always" runs it anyway');
  assert.equal(WriterThread.choose(false, 1).writer, null);
  if (cores >= 2) assert.notEqual(WriterThread.choose(true, 1).writer, null, "one worker with a second core: the thread");
  if (cores >= 4) assert.notEqual(WriterThread.choose(true, Math.floor(cores / 2)).writer, null, "two cores a worker: the thread");
});
