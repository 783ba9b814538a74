import { test } from "node:test";
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { WebSocket, WebSocketServer } from "ws";
import { WsConn } from "../../../src/transport/ws-conn.js";
import { beforeClientWrites, flushClientWrites } from "../../../src/transport/stream-conn.js";
import { CloseReason } from "../../../src/transport/conn.js";
import { waitUntil, within } from "../../helpers.js";

/** One frame as the client's socket received it (server frames are not masked). */
interface Frame {
  fin: boolean;
  opcode: number;
  length: number;
}

/** Server → client frames, read off the client's socket beside ws's own reader. */
class FrameTap {
  readonly frames: Frame[] = [];
  private buf = Buffer.alloc(0);

  push(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.buf.length < 2) return;
      let length = this.buf[1] & 0x7f;
      let at = 2;
      if (length === 126) {
        if (this.buf.length < 4) return;
        length = this.buf.readUInt16BE(2);
        at = 4;
      } else if (length === 127) {
        if (this.buf.length < 10) return;
        length = Number(this.buf.readBigUInt64BE(2));
        at = 10;
      }
      if (this.buf.length < at + length) return;
      this.frames.push({ fin: (this.buf[0] & 0x80) !== 0, opcode: this.buf[0] & 0x0f, length });
      this.buf = this.buf.subarray(at + length);
    }
  }
}

interface Pair {
  conn: WsConn;
  /** The server side's ws, to see when its close handshake is over. */
  serverWs: WebSocket;
  client: WebSocket;
  /** The client's TCP socket (to write two messages in one segment). */
  clientSocket: Socket;
  tap: FrameTap;
  received: Buffer[];
  closes: string[];
  data: Buffer[];
  stop(): Promise<void>;
}

/** A real ws server and client on loopback; the server side of the connection wrapped in a WsConn. */
async function pair(maxOutboundBytes = 1 << 20): Promise<Pair> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
  const accepted = new Promise<[WebSocket, IncomingMessage]>((resolve) => wss.once("connection", (ws, req) => resolve([ws, req])));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`);
  const tap = new FrameTap();
  let clientSocket!: Socket;
  // Emitted before ws reads from the socket: every frame passes the tap too.
  client.once("upgrade", (res: IncomingMessage) => {
    clientSocket = res.socket;
    clientSocket.on("data", (b: Buffer) => tap.push(b));
  });
  const received: Buffer[] = [];
  client.on("message", (d: Buffer) => received.push(d));
  client.on("error", () => {});
  await within(new Promise((resolve) => client.once("open", resolve)), 3000, "the client to open");
  const [serverWs, req] = await within(accepted, 3000, "the server to accept");
  const conn = new WsConn(serverWs, req.socket.remoteAddress ?? "", false, maxOutboundBytes);
  const closes: string[] = [];
  const data: Buffer[] = [];
  conn.onClose = (r) => closes.push(r);
  conn.onData = (b) => data.push(b);
  return {
    conn,
    serverWs,
    client,
    clientSocket,
    tap,
    received,
    closes,
    data,
    stop: async () => {
      client.terminate();
      conn.destroy();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

test("each message in is one onData chunk: binary as it is, text as its UTF-8 bytes", { timeout: 10_000 }, async () => {
  const p = await pair();
  try {
    p.client.send(Buffer.from([0, 1, 2, 0xff]));
    p.client.send("héllo");
    await waitUntil(() => p.data.length === 2, 3000, "two messages at the server");
    assert.deepEqual(p.data[0], Buffer.from([0, 1, 2, 0xff]));
    assert.ok(Buffer.isBuffer(p.data[1]));
    assert.equal(p.data[1].toString("utf8"), "héllo");
    assert.equal(p.conn.messageMode, true);
    assert.equal(p.conn.remoteAddress, "127.0.0.1");
  } finally {
    await p.stop();
  }
});

test("write: a string goes as a text frame, a buffer as a binary frame", { timeout: 10_000 }, async () => {
  const p = await pair();
  try {
    p.conn.write("text");
    p.conn.write(Buffer.from("bytes"));
    await waitUntil(() => p.received.length === 2, 3000, "two messages at the client");
    assert.deepEqual(
      p.tap.frames.map((f) => [f.fin, f.opcode, f.length]),
      [
        [true, 1, 4],
        [true, 2, 5],
      ],
    );
  } finally {
    await p.stop();
  }
});

test("writeParts: a body under 4096 bytes is joined to the header in one frame; from 4096 on, two fragments of one message", { timeout: 10_000 }, async () => {
  const p = await pair();
  try {
    const head = Buffer.from("HEAD-12");
    const sizes = [0, 100, 4095, 4096, 70_000];
    for (const n of sizes) p.conn.writeParts(head, Buffer.alloc(n, n % 251));
    await waitUntil(() => p.received.length === sizes.length, 3000, "every message at the client");
    // Whatever the framing, the client gets header and body as one message.
    sizes.forEach((n, i) => assert.deepEqual(p.received[i], Buffer.concat([head, Buffer.alloc(n, n % 251)]), `message of body ${n}`));
    assert.deepEqual(
      p.tap.frames.map((f) => [f.fin, f.opcode, f.length]),
      [
        [true, 2, 7],
        [true, 2, 107],
        [true, 2, 4102],
        // Binary, not final; then the continuation (opcode 0) carrying the body as it was.
        [false, 2, 7],
        [true, 0, 4096],
        [false, 2, 7],
        [true, 0, 70_000],
      ],
    );
  } finally {
    await p.stop();
  }
});

test("a client that does not read: once the backlog passes maxOutboundBytes the connection is cut as a slow consumer", { timeout: 20_000 }, async () => {
  const p = await pair(64 * 1024);
  try {
    p.client.pause(); // stops reading its socket: the kernel's buffers fill, then ws's own queue grows
    const chunk = Buffer.alloc(16 * 1024);
    let written = 0;
    // Loopback socket buffers hold a few MB; 64 MB would mean the limit is not applied.
    while (!p.conn.closed && written < 64 * 1024 * 1024) {
      p.conn.write(chunk);
      written += chunk.length;
    }
    assert.equal(p.conn.closed, true, `still open after ${written} bytes`);
    assert.deepEqual(p.closes, [CloseReason.SlowConsumer]);
    p.client.resume();
    const code = await within(new Promise<number>((resolve) => p.client.once("close", (c: number) => resolve(c))), 5000, "the client to see the cut");
    assert.equal(code, 1006, "terminated, no close frame");
    p.conn.write(chunk); // after close: ignored
    assert.deepEqual(p.closes, [CloseReason.SlowConsumer], "onClose once");
  } finally {
    await p.stop();
  }
});

test("end() closes with 1000 after what was queued; onClose is called once, with end's reason", { timeout: 10_000 }, async () => {
  const p = await pair();
  try {
    const clientClosed = new Promise<[number, string]>((resolve) => p.client.once("close", (code: number, why: Buffer) => resolve([code, String(why)])));
    const serverClosed = new Promise<void>((resolve) => p.serverWs.once("close", () => resolve()));
    p.conn.write(Buffer.from("last words"));
    p.conn.end("closed by test");
    const [code] = await within(clientClosed, 3000, "the client's close event");
    assert.equal(code, 1000);
    assert.deepEqual(p.received.map(String), ["last words"], "queued data before the close frame");
    await within(serverClosed, 3000, "the close handshake to finish at the server");
    p.conn.end("again");
    p.conn.destroy("and again");
    assert.deepEqual(p.closes, ["closed by test"]);
  } finally {
    await p.stop();
  }
});

test("the peer closing, or destroy(): onClose once with the reason; nothing passes after", { timeout: 10_000 }, async () => {
  const a = await pair();
  try {
    a.client.close(1000);
    await waitUntil(() => a.closes.length > 0, 3000, "onClose after the peer closed");
    a.conn.destroy();
    assert.deepEqual(a.closes, [CloseReason.Peer]);
    assert.equal(a.conn.closed, true);
  } finally {
    await a.stop();
  }
  const b = await pair();
  try {
    const clientClosed = new Promise<number>((resolve) => b.client.once("close", (c: number) => resolve(c)));
    b.conn.destroy("kicked");
    assert.deepEqual(b.closes, ["kicked"], "at once, not after the socket closes");
    assert.equal(await within(clientClosed, 3000, "the client's close event"), 1006);
    const serverWsClosed = b.serverWs.readyState === WebSocket.CLOSED ? Promise.resolve() : new Promise((r) => b.serverWs.once("close", r));
    await within(serverWsClosed, 3000, "the server side to close");
    assert.deepEqual(b.closes, ["kicked"], "the socket's own close adds nothing");
  } finally {
    await b.stop();
  }
});

test("a message read in the same chunk as one that made the protocol destroy the connection is not handed on", { timeout: 10_000 }, async () => {
  const p = await pair();
  try {
    p.conn.onData = (b) => {
      p.data.push(b);
      p.conn.destroy("bad input");
    };
    // Both frames in one write, so the server reads them in one chunk.
    p.clientSocket.cork();
    p.client.send(Buffer.from("bad"));
    p.client.send(Buffer.from("more"));
    p.clientSocket.uncork();
    await waitUntil(() => p.closes.length > 0, 3000, "the connection destroyed");
    const clientClosed = p.client.readyState === WebSocket.CLOSED ? Promise.resolve() : new Promise((r) => p.client.once("close", r));
    await within(clientClosed, 3000, "the client to see the close");
    assert.deepEqual(p.data.map(String), ["bad"]);
    assert.deepEqual(p.closes, ["bad input"]);
  } finally {
    await p.stop();
  }
});

test("a turn's frames wait for the hooks before client writes, as TCP output does: a hook that holds them holds them until flushClientWrites", { timeout: 10_000 }, async () => {
  const p = await pair();
  let hold = true;
  let asked = 0;
  const unhook = beforeClientWrites((force) => {
    asked++;
    return force || !hold;
  });
  try {
    p.conn.write("one");
    p.conn.writeParts(Buffer.from("<"), Buffer.from("two/>"));
    // Nothing is sent within the turn that wrote: the hook is asked at its end.
    assert.equal(p.serverWs.bufferedAmount, 0);
    await waitUntil(() => asked > 0, 3000, "the hook asked at the turn's end");
    // Held: later turns go by with nothing at the client; the held bytes count as queued. The server's
    // pong (ws sends it at once, past WsConn) comes after anything the server had sent before it.
    const pong = new Promise<void>((resolve) => p.client.once("pong", () => resolve()));
    p.client.ping();
    await within(pong, 3000, "the server's pong");
    assert.equal(p.received.length, 0, "the client got frames a hook held");
    assert.ok(p.conn.queuedBytes >= 9, `queuedBytes ${p.conn.queuedBytes} counts the held frames`);
    // Released, as the bus does after its publish: both frames, in order, one message each.
    hold = false;
    flushClientWrites();
    await waitUntil(() => p.received.length === 2, 3000, "two messages at the client");
    assert.deepEqual(
      p.received.map((b) => b.toString()),
      ["one", "<two/>"],
    );
  } finally {
    unhook();
    await p.stop();
  }
});

test("destroy() drops frames not sent yet; end() sends them before its close", { timeout: 10_000 }, async () => {
  const a = await pair();
  try {
    const closed = new Promise<void>((resolve) => a.client.once("close", () => resolve()));
    a.conn.write("never");
    a.conn.destroy();
    // Whatever the server had sent arrives before the connection's end.
    await within(closed, 3000, "the client to see the cut");
    assert.equal(a.received.length, 0);
  } finally {
    await a.stop();
  }
  const b = await pair();
  try {
    const closed = new Promise<number>((resolve) => b.client.once("close", (code: number) => resolve(code)));
    b.conn.write("last");
    b.conn.end("bye");
    assert.equal(await within(closed, 3000, "the close"), 1000);
    assert.deepEqual(
      b.received.map((x) => x.toString()),
      ["last"],
    );
  } finally {
    await b.stop();
  }
});

test("cutHeld takes frames queued between two heldMark places out before they are sent, and their bytes out of the count; end() goes through the hooks with force", { timeout: 10_000 }, async () => {
  const p = await pair();
  let hold = true;
  const forced: boolean[] = [];
  const unhook = beforeClientWrites((force) => {
    forced.push(force);
    return force || !hold;
  });
  try {
    p.conn.write("one");
    const from = p.conn.heldMark();
    p.conn.write("two");
    p.conn.writeParts(Buffer.from("<"), Buffer.alloc(5000, 0x61));
    const to = p.conn.heldMark();
    p.conn.write("three");
    const before = p.conn.queuedBytes;
    assert.equal(p.conn.cutHeld(from, to + 2), false, "past what is held: refused");
    assert.equal(p.conn.cutHeld(from, to), true);
    assert.equal(before - p.conn.queuedBytes, 3 + 5001, "the cut frames' bytes no longer count");
    const closed = new Promise<number>((resolve) => p.client.once("close", (code: number) => resolve(code)));
    // end() while a hook holds: the hooks are asked with force first, then the frames and the close go.
    p.conn.end("bye");
    assert.equal(forced.at(-1), true, "end asked the hooks with force");
    assert.equal(await within(closed, 3000, "the close"), 1000);
    assert.deepEqual(
      p.received.map((b) => b.toString()),
      ["one", "three"],
    );
    await waitUntil(() => p.conn.heldMark() === -1, 3000, "closed: no place");
  } finally {
    unhook();
    await p.stop();
  }
});
