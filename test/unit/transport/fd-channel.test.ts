import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir, constants } from "node:os";
import { join } from "node:path";
import { createServer, connect, type Socket } from "node:net";
import { FdChannel, type FdPacket } from "../../../src/transport/fd-channel.js";
import { startReading } from "../../../src/transport/node-internals.js";
import { heldTcp, once, waitUntil } from "../../helpers.js";

const native = FdChannel.native();
const skip = typeof native === "string" ? `no descriptor channel here: ${native}` : false;
const openFds = () => readdirSync("/proc/self/fd").length;

/**
 * The descriptor channel between a host's workers (src/transport/native/fdpass.c), two ends in this process on
 * real Unix seqpacket sockets, passing real TCP connections: what the direct hand-off is built on.
 */
describe("FdChannel", { timeout: 30_000, skip }, () => {
  let dir: string;
  /** Connections accepted and not read, as a worker's paused login. */
  let tcp: Awaited<ReturnType<typeof heldTcp>>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "sb-fdchannel-"));
    tcp = await heldTcp();
  });
  after(() => {
    tcp.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const open = (index: number, onPacket: FdPacket): FdChannel => {
    const c = FdChannel.open(dir, index, onPacket);
    assert.ok(typeof c !== "string", String(c));
    return c;
  };
  const pair = () => tcp.pair();

  test("a TCP connection passed with a packet goes on in the receiver; the sender's copy closes", async () => {
    const got: { text: string; socket: Socket | null }[] = [];
    const a = open(0, () => {});
    const b = open(1, (data, socket) => got.push({ text: data.toString(), socket }));
    try {
      const { client, theirs } = await pair();
      // Written before the pass: it waits in the kernel for whoever reads next.
      client.write("before ");
      assert.equal(a.send(1, Buffer.from("here it is"), theirs), 0);
      theirs.destroy();
      await waitUntil(() => got.length === 1, 2000, "the packet");
      assert.equal(got[0].text, "here it is");
      const s = got[0].socket!;
      assert.ok(s !== null, "with its socket");
      assert.equal(s.remoteAddress, "127.0.0.1");
      let read = "";
      s.on("data", (d: Buffer) => {
        read += d.toString();
        if (read.endsWith("after")) s.write("echo: " + read);
      });
      startReading(s);
      client.write("after");
      let back = "";
      client.on("data", (d: Buffer) => (back += d.toString()));
      await waitUntil(() => back === "echo: before after", 2000, () => `the echo; got ${JSON.stringify(back)}`);
      client.destroy();
      s.destroy();
    } finally {
      a.close();
      b.close();
    }
  });

  test("packets without a descriptor, in order; nobody listening, too large, and a restarted peer", async () => {
    const got: string[] = [];
    const a = open(0, () => {});
    let b = open(1, (data) => got.push(data.toString()));
    try {
      for (let i = 0; i < 100; i++) assert.equal(a.send(1, Buffer.from(`p${i}`)), 0);
      await waitUntil(() => got.length === 100, 2000, "100 packets");
      assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => `p${i}`));
      assert.equal(a.send(7, Buffer.from("x")), -constants.errno.ENOENT, "nobody listens as 7");
      assert.equal(a.send(1, Buffer.alloc(65537)), -constants.errno.EMSGSIZE, "over 64 KiB");
      assert.equal(a.send(1, Buffer.alloc(0)), -constants.errno.EMSGSIZE, "empty (a seqpacket's end looks so)");
      // Peer 1 stops and listens anew at the same path (a restarted worker): the next send connects again.
      b.close();
      got.length = 0;
      b = open(1, (data) => got.push(data.toString()));
      assert.equal(a.send(1, Buffer.from("again")), 0);
      await waitUntil(() => got.length === 1, 2000, "the packet after the restart");
      assert.deepEqual(got, ["again"]);
    } finally {
      a.close();
      b.close();
    }
  });

  test("a send never waits: a peer that does not read makes it say EAGAIN, and every packet sent arrives", async () => {
    let n = 0;
    const a = open(0, () => {});
    const b = open(1, () => n++);
    try {
      let sent = 0;
      let full = 0;
      // The receiver reads only when this loop yields: its buffer fills.
      for (let i = 0; i < 50_000 && full === 0; i++) {
        const r = a.send(1, Buffer.from(`packet ${i}`));
        if (r === 0) sent++;
        else if (r === -constants.errno.EAGAIN) full++;
        else assert.fail(`send: ${FdChannel.errorName(r)}`);
      }
      assert.equal(full, 1, `EAGAIN once the buffer is full (after ${sent})`);
      await waitUntil(() => n === sent, 5000, () => `all ${sent} delivered; ${n}`);
    } finally {
      a.close();
      b.close();
    }
  });

  test("descriptors that are not TCP sockets are closed, not delivered; nothing leaks", async () => {
    const got: (Socket | null)[] = [];
    const a = open(0, () => {});
    const b = open(1, (_d, socket) => got.push(socket));
    const before = openFds();
    try {
      // A Unix socket's descriptor: not what a listener can adopt.
      const unix = createServer(() => {});
      const path = join(dir, "plain.sock");
      unix.listen(path);
      await once(unix, "listening");
      const c = connect(path);
      await once(c, "connect");
      assert.equal(a.send(1, Buffer.from("not tcp"), c), 0);
      assert.equal(a.send(1, Buffer.from("after")), 0);
      await waitUntil(() => got.length === 1, 2000, "the packet after it");
      assert.equal(got[0], null, "only the packet without a descriptor arrived");
      c.destroy();
      unix.close();
      // Many passes, each socket closed by both sides: the count of open descriptors comes back.
      for (let i = 0; i < 50; i++) {
        const { client, theirs } = await pair();
        assert.equal(a.send(1, Buffer.from("t"), theirs), 0);
        theirs.destroy();
        client.destroy();
      }
      await waitUntil(() => got.length === 51, 2000, "50 passes");
      for (const s of got) s?.destroy();
    } finally {
      a.close();
      b.close();
    }
    await waitUntil(() => openFds() <= before, 2000, () => `descriptors back to ${before}: ${openFds()}`);
  });
});
