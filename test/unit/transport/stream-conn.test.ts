import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect, type Socket, type Server, type AddressInfo } from "node:net";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { beforeClientWrites, flushClientWrites, StreamConn } from "../../../src/transport/stream-conn.js";

// StreamConn's input on real sockets: with reuseInput every read lands in one
// shared buffer, and each connection still gets exactly its own bytes; without
// it a chunk is the protocol's to keep.

async function listening(): Promise<Server> {
  const server = createServer({ allowHalfOpen: true });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
}

interface Side {
  client: Socket;
  conn: StreamConn;
  /** Copies of what onData was given, and the chunks themselves as handed over. */
  text: () => string;
  chunks: Buffer[];
  closed: Promise<string>;
}

async function accept(server: Server, reuseInput: boolean): Promise<Side> {
  const accepted = once(server, "connection");
  const client = connect((server.address() as AddressInfo).port, "127.0.0.1");
  const [socket] = (await accepted) as [Socket];
  await once(client, "connect").catch(() => {});
  const conn = new StreamConn(socket, 1 << 20, null);
  const copies: Buffer[] = [];
  const chunks: Buffer[] = [];
  conn.onData = (chunk) => {
    chunks.push(chunk);
    copies.push(Buffer.from(chunk));
  };
  const closed = new Promise<string>((resolve) => (conn.onClose = resolve));
  // As a protocol does after its handshake; writerThread is null, so only the read side changes.
  conn.established({ reuseInput });
  return { client, conn, text: () => Buffer.concat(copies).toString(), chunks, closed };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await sleep(2);
  }
}

test("reuseInput: every read lands in one buffer, and two connections' bytes stay whole and apart", { timeout: 10_000 }, async () => {
  const server = await listening();
  const a = await accept(server, true);
  const b = await accept(server, true);
  let wantA = "";
  let wantB = "";
  for (let i = 0; i < 200; i++) {
    const la = `<a n='${i}'>${"α".repeat(i % 50)}</a>`;
    const lb = `<b n='${i}'>${"b".repeat((i * 7) % 3000)}</b>`;
    a.client.write(la);
    b.client.write(lb);
    wantA += la;
    wantB += lb;
    if (i % 10 === 0) await sleep(1);
  }
  await until(() => a.text().length === wantA.length && b.text().length === wantB.length);
  assert.equal(a.text(), wantA);
  assert.equal(b.text(), wantB);
  // The mode is on: both connections' chunks are views of the same memory.
  const shared = a.chunks[0].buffer;
  assert.ok([...a.chunks, ...b.chunks].every((c) => c.buffer === shared), "one shared read buffer");
  // The peer's FIN still ends the connection.
  a.client.end();
  b.client.destroy();
  assert.equal(await a.closed, "peer closed");
  await b.closed;
  server.close();
});

test("established without reuseInput: a chunk stays as it was after later reads (a protocol may keep it)", { timeout: 10_000 }, async () => {
  const server = await listening();
  const s = await accept(server, false);
  s.client.write("first");
  await until(() => s.chunks.length === 1);
  const kept = s.chunks[0];
  for (let i = 0; i < 20; i++) {
    s.client.write(`later ${i} `);
    await sleep(1);
  }
  await until(() => s.text().endsWith("later 19 "));
  assert.equal(kept.toString(), "first");
  s.client.destroy();
  await s.closed;
  server.close();
});

test("beforeClientWrites: the hooks run before a turn's output is written, and never inside a write (a busy turn's flush waits for the end of its callback)", { timeout: 10_000 }, async () => {
  const server = await listening();
  const sides: Side[] = [];
  for (let i = 0; i < 16; i++) sides.push(await accept(server, false));
  const events: string[] = [];
  for (const [i, s] of sides.entries()) {
    const sock = (s.conn as unknown as { socket: Socket }).socket;
    const write = sock.write.bind(sock) as (...a: unknown[]) => boolean;
    (sock as unknown as { write: (...a: unknown[]) => boolean }).write = (...a: unknown[]) => {
      events.push(`write${i}`);
      return write(...a);
    };
  }
  let writing = false;
  let inside = 0;
  const unhook = beforeClientWrites(() => {
    events.push("hook");
    if (writing) inside++;
    return true;
  });
  try {
    // A turn that writes to one client: the hook first (the composition root publishes the bus batch there).
    sides[0].conn.write("a");
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(events, ["hook", "write0"]);
    // A busy turn: 16 connections written to, the last more than 1 ms after the first, in one callback.
    events.length = 0;
    writing = true;
    for (let i = 0; i < 16; i++) {
      if (i === 15) {
        const end = performance.now() + 3;
        while (performance.now() < end);
      }
      sides[i].conn.write("b");
    }
    assert.equal(events.length, 0, "nothing flushed inside the callback");
    writing = false;
    await Promise.resolve();
    assert.equal(events[0], "hook", "flushed at its end, hook first");
    assert.equal(events.filter((e) => e.startsWith("write")).length, 16);
    assert.equal(inside, 0);
  } finally {
    unhook();
    for (const s of sides) s.client.destroy();
    server.close();
  }
});

test("beforeClientWrites: a hook that returns false holds the turn's output, mid-turn flushes included, until flushClientWrites", { timeout: 10_000 }, async () => {
  const server = await listening();
  const sides: Side[] = [];
  for (let i = 0; i < 16; i++) sides.push(await accept(server, false));
  let hold = true;
  let asked = 0;
  let forced = 0;
  const unhook = beforeClientWrites((force) => {
    asked++;
    if (force) forced++;
    return !hold;
  });
  const got = sides.map((s) => {
    const chunks: string[] = [];
    s.client.on("data", (d: Buffer) => chunks.push(d.toString()));
    return chunks;
  });
  try {
    // A busy turn (a mid-turn flush is due after 1 ms) and its end: both asked, both held.
    for (let i = 0; i < 16; i++) {
      if (i === 15) {
        const end = performance.now() + 3;
        while (performance.now() < end);
      }
      sides[i].conn.write(`x${i}`);
    }
    await Promise.resolve();
    await new Promise((r) => setImmediate(r));
    assert.ok(asked >= 2, `asked ${asked} times`);
    sides[0].conn.write("y0");
    await new Promise((r) => setImmediate(r));
    // Round trips on the sockets: had anything been written, it would have arrived by now.
    await sleep(50);
    assert.deepEqual(got.map((c) => c.join("")), Array.from({ length: 16 }, () => ""), "nothing written while held");
    // Released by the one that held it: written even though a hook (here the same one, as another server's in a
    // process of several) would hold still; each hook was told it cannot.
    assert.equal(forced, 0);
    flushClientWrites();
    assert.equal(forced, 1, "the hooks asked with force");
    hold = false;
    const want = Array.from({ length: 16 }, (_, i) => (i === 0 ? "x0y0" : `x${i}`));
    const until = Date.now() + 5_000;
    while (got.some((c, i) => c.join("") !== want[i]) && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(got.map((c) => c.join("")), want, "all of it, in order, once released");
    // Held again, across turns: a later turn's busy flush is held too; once released, the next turn's output
    // still goes at the end of its turn (no flush left marked as queued with none queued).
    hold = true;
    for (let i = 0; i < 16; i++) sides[i].conn.write("p");
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 16; i++) {
      if (i === 15) {
        const end = performance.now() + 3;
        while (performance.now() < end);
      }
      sides[i].conn.write("q");
    }
    await Promise.resolve();
    await new Promise((r) => setImmediate(r));
    hold = false;
    flushClientWrites();
    sides[1].conn.write("r");
    const want2 = want.map((w, i) => w + (i === 1 ? "pqr" : "pq"));
    const until2 = Date.now() + 5_000;
    while (got.some((c, i) => c.join("") !== want2[i]) && Date.now() < until2) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(got.map((c) => c.join("")), want2, "a write after the release goes at its turn's end");
  } finally {
    unhook();
    for (const s of sides) s.client.destroy();
    server.close();
  }
});

test("cutHeld: what was queued between two heldMark places is taken out before the turn's output is written (text and buffers), and refused once written or across a change of form", { timeout: 10_000 }, async () => {
  const server = await listening();
  const side = await accept(server, false);
  const got: Buffer[] = [];
  side.client.on("data", (d: Buffer) => got.push(d));
  let hold = true;
  const unhook = beforeClientWrites(() => !hold);
  try {
    // Text: three stanzas, the middle one (not ASCII) taken back.
    const c = side.conn;
    assert.equal(c.heldMark(), 0, "nothing queued");
    c.write("<a/>");
    const from = c.heldMark();
    c.write("<b>é</b>");
    const to = c.heldMark();
    c.write("<c/>");
    assert.ok(to > from && from > 0);
    assert.equal(c.cutHeld(from, to), true);
    // Buffers: a relay frame's head and body in two buffers, taken back across both.
    const s2 = await accept(server, false);
    const got2: Buffer[] = [];
    s2.client.on("data", (d: Buffer) => got2.push(d));
    const c2 = s2.conn;
    c2.write(Buffer.from("HEAD1body1"));
    const f2 = c2.heldMark();
    c2.writeParts(Buffer.from("HEAD2"), Buffer.from("body2"));
    const t2 = c2.heldMark();
    c2.write(Buffer.from("HEAD3body3"));
    assert.equal(c2.cutHeld(f2 + 2 * 2, t2), true, "the tail of the head and the body");
    assert.equal(c2.cutHeld(0, 2 * 5), false, "a buffer place is odd: a text place is refused");
    // A cut past what is queued is refused.
    assert.equal(c.cutHeld(from, to + 1000), false);
    hold = false;
    flushClientWrites();
    await until(() => Buffer.concat(got).length === "<a/><c/>".length && Buffer.concat(got2).length === 22);
    assert.equal(Buffer.concat(got).toString(), "<a/><c/>");
    assert.equal(Buffer.concat(got2).toString(), "HEAD1body1HEHEAD3body3");
    // Written: nothing to take back any more.
    c.write("<d/>");
    const f3 = c.heldMark();
    c.write("<e/>");
    const t3 = c.heldMark();
    flushClientWrites();
    assert.equal(c.cutHeld(f3, t3), false, "once written, a cut is refused");
    // A change of form between the places (a buffer after text) is refused, and the output stays whole.
    hold = true;
    c.write("<f/>");
    const f4 = c.heldMark();
    c.write(Buffer.from("<g/>"));
    const t4 = c.heldMark();
    assert.equal(c.cutHeld(f4, t4), false);
    hold = false;
    flushClientWrites();
    await until(() => Buffer.concat(got).toString().endsWith("<f/><g/>"));
    assert.equal(Buffer.concat(got).toString(), "<a/><c/><d/><e/><f/><g/>");
    // Closed: nothing held will be written, so a cut is granted.
    hold = true;
    c.write("<h/>");
    const f5 = c.heldMark();
    c.write("<i/>");
    const t5 = c.heldMark();
    c.destroy();
    assert.equal(c.heldMark(), -1);
    assert.equal(c.cutHeld(f5, t5), true);
    s2.conn.destroy();
  } finally {
    unhook();
    flushClientWrites();
    side.client.destroy();
    server.close();
  }
});

test("end: output held by a hook leaves through the hooks (with force), not past them", { timeout: 10_000 }, async () => {
  const server = await listening();
  const side = await accept(server, false);
  const got: Buffer[] = [];
  side.client.on("data", (d: Buffer) => got.push(d));
  const order: string[] = [];
  const unhook = beforeClientWrites((force) => {
    order.push(force ? "forced" : "asked");
    return force;
  });
  try {
    side.conn.write("<last/>");
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, ["asked"], "held at the turn's end");
    side.conn.end();
    assert.deepEqual(order, ["asked", "forced"], "end asked the hooks with force before it wrote");
    await until(() => Buffer.concat(got).toString() === "<last/>");
  } finally {
    unhook();
    side.client.destroy();
    server.close();
  }
});
