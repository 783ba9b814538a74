import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect, type Server, type Socket } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { AddressInfo } from "node:net";
import { WebSocket, WebSocketServer } from "ws";
import { StreamConn } from "../../../src/transport/stream-conn.js";
import { WsConn } from "../../../src/transport/ws-conn.js";
import { configureIntake, hold, intakeHeld, intakeStats, intakeWaiting, release } from "../../../src/transport/intake.js";
import { HostLinks } from "../../../src/cluster/host-links.js";
import { waitUntil } from "../../helpers.js";

const servers: Server[] = [];
const sockets: Socket[] = [];
const dirs: string[] = [];
const wsServers: WebSocketServer[] = [];
const wsClients: WebSocket[] = [];
after(() => {
  for (const c of wsClients) c.terminate();
  for (const w of wsServers) w.close();
  for (const s of sockets) s.destroy();
  for (const s of servers) s.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  configureIntake(0);
});

/** A listener whose accepted sockets become StreamConns (every other one reading into the shared buffer), and `n` clients of it. */
async function connsAndClients(n: number, onData: (i: number, chunk: Buffer) => void): Promise<{ conns: StreamConn[]; clients: Socket[] }> {
  const conns: StreamConn[] = [];
  const srv = createServer((s) => {
    const i = conns.length;
    const c = new StreamConn(s, 1 << 20, null);
    c.onData = (chunk) => onData(i, chunk);
    if (i % 2 === 1) c.established({ reuseInput: true });
    conns.push(c);
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  const clients: Socket[] = [];
  for (let i = 0; i < n; i++) {
    const c = connect(port, "127.0.0.1");
    c.setNoDelay(true);
    sockets.push(c);
    clients.push(c);
    // One at a time: the server numbers its connections in the order they connect.
    await waitUntil(() => conns.length === i + 1, 3000, "the accept");
  }
  return { conns, clients };
}

/** A ws server whose connections become WsConns, and `n` WebSocket clients of it (connected in order). */
async function wsConnsAndClients(n: number, onData: (i: number, chunk: Buffer) => void): Promise<{ conns: WsConn[]; clients: WebSocket[] }> {
  const conns: WsConn[] = [];
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  wsServers.push(wss);
  await new Promise<void>((r) => wss.once("listening", () => r()));
  wss.on("connection", (ws, req) => {
    const i = conns.length;
    const c = new WsConn(ws, req.socket.remoteAddress ?? "", false, 1 << 20);
    c.onData = (chunk) => onData(i, chunk);
    conns.push(c);
  });
  const port = (wss.address() as AddressInfo).port;
  const clients: WebSocket[] = [];
  for (let i = 0; i < n; i++) {
    const c = new WebSocket(`ws://127.0.0.1:${port}/`);
    c.on("error", () => {});
    wsClients.push(c);
    clients.push(c);
    await waitUntil(() => conns.length === i + 1 && c.readyState === WebSocket.OPEN, 3000, "the WebSocket's accept");
  }
  return { conns, clients };
}

/** Runs `f` with a 1 ms interval timer beside it: the longest any of its firings came after the one before. */
async function longestTimerGap(f: () => Promise<void>): Promise<number> {
  let last = performance.now();
  let maxGap = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 1);
  try {
    await f();
  } finally {
    clearInterval(tick);
  }
  return maxGap;
}

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

test("a turn past its budget keeps its other reads for the turns that follow: all of each connection's input, in order, with timers between", { timeout: 20_000 }, async () => {
  configureIntake(5);
  const N = 40;
  const got: string[] = Array.from({ length: N }, () => "");
  const { clients } = await connsAndClients(N, (i, chunk) => {
    got[i] += chunk.toString();
    // Each read costs 3 ms: 40 ready sockets would be 120 ms in one turn.
    busy(3);
  });
  const want = clients.map((_, i) => Array.from({ length: 50 }, (_, k) => `<${i}:${k}/>`).join(""));
  const deferredBefore = intakeStats.deferred;
  const maxGap = await longestTimerGap(async () => {
    // In five writes each, all before the server reads any: every socket is ready in one poll.
    for (let k = 0; k < 5; k++) clients.forEach((c, i) => c.write(want[i].slice((k * want[i].length) / 5, ((k + 1) * want[i].length) / 5)));
    await waitUntil(() => got.every((g, i) => g.length === want[i].length), 10_000, () => `${got.filter((g, i) => g.length === want[i].length).length} of ${N} whole`);
  });
  assert.deepEqual(got, want, "each connection's input whole and in its order");
  assert.ok(intakeStats.deferred > deferredBefore, "reads were kept for later turns");
  // Unbudgeted, a round's turn is 120 ms; budgeted, about 5 ms and one read, then the check phase's 5 ms and one.
  assert.ok(maxGap < 60, `timers waited at most ${maxGap.toFixed(1)} ms`);
});

test("under sustained overload what a waiting connection keeps is one small read, not a full one: all input whole and in order", { timeout: 30_000 }, async () => {
  configureIntake(1);
  const N = 16;
  const SIZE = 2 << 20;
  const conns: StreamConn[] = [];
  const got = new Array<number>(N).fill(0);
  let bad = "";
  let total = 0;
  let keptLate = 0;
  const srv = createServer((s) => {
    const i = conns.length;
    const c = new StreamConn(s, 1 << 20, null);
    c.onData = (chunk) => {
      // Byte k of connection i is (k + i) & 255: a lost, repeated or reordered byte shows.
      for (let j = 0; j < chunk.length; j++) if (chunk[j] !== ((got[i] + j + i) & 255) && bad === "") bad = `connection ${i}, byte ${got[i] + j}`;
      got[i] += chunk.length;
      total += chunk.length;
      // The second half of the transfer: every connection has waited (and read) since the start.
      if (total > (N * SIZE) / 2) keptLate = Math.max(keptLate, intakeStats.kept);
      busy(0.2);
    };
    c.established({ reuseInput: true });
    conns.push(c);
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as AddressInfo).port;
  const clients: Socket[] = [];
  for (let i = 0; i < N; i++) {
    const c = connect(port, "127.0.0.1");
    sockets.push(c);
    clients.push(c);
    await waitUntil(() => conns.length === i + 1, 3000, "the accept");
  }
  // Each client's 2 MiB at once: the kernel's buffers stay full on every connection until the end.
  clients.forEach((c, i) => {
    const b = Buffer.allocUnsafe(SIZE);
    for (let k = 0; k < SIZE; k++) b[k] = (k + i) & 255;
    c.write(b);
  });
  await waitUntil(() => total === N * SIZE, 25_000, () => `${total} of ${N * SIZE} bytes`);
  assert.equal(bad, "", "every connection's bytes in order, none lost or repeated");
  assert.equal(intakeStats.kept, 0, "nothing kept once all is read");
  // One read of at most 4 KiB a waiting connection (a full read is up to 64 KiB: without the small buffer ~700 KB here),
  // give or take one full read, which a connection last read while intake was not pressed may still make.
  assert.ok(keptLate > 0, "reads waited in the second half");
  assert.ok(keptLate <= N * 4096 + 65536, `kept at most ${keptLate} bytes in the second half (${N} connections)`);
});

test("held (something the worker writes to fell behind): no client is read until released, then all of it comes", { timeout: 10_000 }, async () => {
  configureIntake(20);
  const got: string[] = ["", ""];
  const { clients } = await connsAndClients(2, (i, chunk) => (got[i] += chunk.toString()));
  hold();
  try {
    clients[0].write("<a/>");
    clients[1].write("<b/>");
    await waitUntil(() => intakeWaiting() === 2, 3000, () => `${intakeWaiting()} reads kept aside`);
    assert.deepEqual(got, ["", ""], "nothing read while held");
    clients[0].write("<c/>");
  } finally {
    release();
  }
  await waitUntil(() => got[0] === "<a/><c/>" && got[1] === "<b/>", 3000, () => JSON.stringify(got));
  assert.equal(intakeHeld(), false);
});

test("a host link whose peer falls holdBytes behind holds the worker's clients until the peer has taken most of it; a peer that takes nothing is dropped after stallMs and the hold ends", { timeout: 15_000 }, async () => {
  configureIntake(20);
  const d = mkdtempSync(join(tmpdir(), "sb-intake-"));
  dirs.push(d);
  // The peer's end: accepts, and reads only when told to.
  const peers: Socket[] = [];
  let taken = 0;
  const peer = createServer((s) => {
    s.pause();
    s.on("data", (b: Buffer) => (taken += b.length));
    peers.push(s);
  });
  servers.push(peer);
  await new Promise<void>((r) => peer.listen(HostLinks.pathOf(d, 1), r));
  const lost: number[] = [];
  const a = new HostLinks({ dir: d, index: 0, maxQueuedBytes: 1 << 23, holdBytes: 1 << 21, stallMs: 300 }, () => {}, (i) => lost.push(i), null);
  try {
    const chunk = Buffer.alloc(64 * 1024, 1);
    const holdsBefore = a.holds;
    // The socket takes what the kernel holds for it (a few hundred KiB), then the rest waits in the link's queue;
    // past 2 MiB there, the hold begins, and it ends only once the peer has read (the queue down to 512 KiB).
    for (let i = 0; i < 256 && !intakeHeld(); i++) a.write(1, chunk, 1);
    assert.equal(intakeHeld(), true, "held once holdBytes wait for the peer");
    assert.equal(a.holds, holdsBefore + 1);
    await waitUntil(() => peers.length === 1, 3000, "the link's connection");
    peers[0].resume();
    // It ends once what waits is down to a quarter of holdBytes: the peer has read, not necessarily all of it.
    await waitUntil(() => !intakeHeld(), 5000, "the hold's end once the peer read");
    assert.ok(taken > 0);
    assert.deepEqual(lost, []);

    // Now a peer that stops reading for good.
    peers[0].pause();
    for (let i = 0; i < 256 && !intakeHeld(); i++) a.write(1, chunk, 1);
    assert.equal(intakeHeld(), true);
    await waitUntil(() => lost.length === 1, 5000, "the link dropped after stallMs");
    assert.deepEqual(lost, [1]);
    assert.equal(intakeHeld(), false, "its hold ends with it");
  } finally {
    a.close();
  }
});

test("WebSocket connections are budgeted too: every connection's messages whole and in order, with timers between", { timeout: 20_000 }, async () => {
  configureIntake(5);
  const N = 20;
  const got: string[][] = Array.from({ length: N }, () => []);
  const { clients } = await wsConnsAndClients(N, (i, chunk) => {
    got[i].push(chunk.toString());
    // Each message costs 1 ms: 200 messages ready at once would be 200 ms in one turn. ws hands out every message
    // of a read it has begun, paused or not, so a turn may run over its budget by one read's messages (up to 10 ms).
    busy(1);
  });
  const want = clients.map((_, i) => Array.from({ length: 10 }, (_, k) => `<${i}:${k}/>`));
  const deferredBefore = intakeStats.deferred;
  const maxGap = await longestTimerGap(async () => {
    // Half as text, half binary; all sent before the server reads any.
    for (let k = 0; k < 10; k++) clients.forEach((c, i) => c.send(k % 2 === 0 ? want[i][k] : Buffer.from(want[i][k])));
    await waitUntil(() => got.every((g) => g.length === 10), 10_000, () => `${got.filter((g) => g.length === 10).length} of ${N} whole`);
  });
  assert.deepEqual(got, want, "each connection's messages whole and in order");
  assert.ok(intakeStats.deferred > deferredBefore, "messages were kept for later turns");
  assert.ok(maxGap < 100, `timers waited at most ${maxGap.toFixed(1)} ms`);
});

test("WebSocket: held, nothing is read until released; a message that came with its sender's close is handled before the close", { timeout: 10_000 }, async () => {
  configureIntake(20);
  const got: string[] = ["", "", ""];
  const { conns, clients } = await wsConnsAndClients(3, (i, chunk) => (got[i] += chunk.toString()));
  const closes: string[] = [];
  conns[2].onClose = (r) => closes.push(r);
  hold();
  try {
    clients[0].send("<a/>");
    clients[1].send("<b/>");
    await waitUntil(() => intakeWaiting() === 2, 3000, () => `${intakeWaiting()} connections kept aside`);
    assert.deepEqual(got, ["", "", ""], "nothing read while held");
    clients[0].send("<c/>");
    // A message and the close frame in one segment: ws reads the close and finishes the handshake although the
    // message waits; the message is handled before the connection counts as closed, not lost with it.
    const raw = (clients[2] as unknown as { _socket: Socket })._socket;
    raw.cork();
    clients[2].send("<d/>");
    clients[2].close(1000);
    raw.uncork();
    await waitUntil(() => closes.length === 1, 3000, "the third's close");
    assert.equal(got[2], "<d/>", "its message handled before its close");
    assert.deepEqual(got.slice(0, 2), ["", ""], "the others still wait");
  } finally {
    release();
  }
  await waitUntil(() => got[0] === "<a/><c/>" && got[1] === "<b/>", 3000, () => JSON.stringify(got));
  assert.equal(intakeHeld(), false);
});
