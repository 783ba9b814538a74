import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { startServer, waitUntil, type TestServer } from "../../helpers.js";
import { RelayError, type IncomingRequest } from "../../../src/relay/client.js";
import { encodeFrame, encodeHead } from "../../../src/relay/codec.js";
import { RawPeer, loginAs, rawFrame } from "./relay-helpers.js";

const USERS = { alice: "alice-pw", bob: "bob-pw", eve: "eve-pw" };
const MAX_FRAME = 4096;

describe("relay: bad input costs only the connection that sent it", () => {
  let ts: TestServer;
  before(async () => {
    ts = await startServer({ limits: { maxFrameBytes: MAX_FRAME, maxPendingPerSession: 5, maxOutboundBytes: 64 * 1024 } }, USERS);
  }, { timeout: 15_000 });
  after(() => ts.stop());

  /** A working pair that must keep working whatever eve does. */
  async function stillServing(): Promise<void> {
    const alice = await loginAs(ts, "tcp", "alice", "alice-pw", `ok-${Math.random()}`);
    const bob = await loginAs(ts, "tcp", "bob", "bob-pw", `ok-${Math.random()}`);
    bob.on("request", (r: IncomingRequest) => r.respond("fine"));
    assert.equal(String((await alice.request(bob.jid, "?")).body), "fine");
    await Promise.all([alice.close(), bob.close()]);
  }

  async function evil(): Promise<RawPeer> {
    const p = await RawPeer.open(ts.port("relay", "tcp"));
    p.write(encodeFrame({ t: "hello", v: 1 }));
    p.write(encodeFrame({ t: "auth", user: "eve", password: "eve-pw", resource: "e" }));
    await p.frameWhere((h) => h.t === "ok");
    return p;
  }

  const cases: [string, () => Buffer, string][] = [
    ["a frame over maxFrameBytes (refused from its length)", () => rawFrame('{"t":"msg","to":"bob@localhost"}', Buffer.alloc(16), { frameLength: MAX_FRAME + 1 }), "too-large"],
    ["a header that is not JSON", () => rawFrame("{not json"), "bad-frame"],
    ["a header that is a JSON array", () => rawFrame('["t","req"]'), "bad-frame"],
    ["a header that is JSON null", () => rawFrame("null"), "bad-frame"],
    ["a header longer than the frame", () => rawFrame('{"t":"ping"}', Buffer.alloc(0), { headerLength: 500 }), "bad-frame"],
    ["a frame too short for a header length", () => Buffer.from([0, 0, 0, 1, 7]), "bad-frame"],
    ["an unknown frame type", () => rawFrame('{"t":"launch"}'), "bad-frame"],
  ];
  for (const [name, bytes, code] of cases) {
    test(`${name}: err ${code}, connection closed`, { timeout: 15_000 }, async () => {
      const p = await evil();
      p.write(bytes());
      const err = await p.frameWhere((h) => h.t === "err");
      assert.equal(err.code, code);
      assert.ok(await p.untilClosed(), "closed");
      await stillServing();
    });
  }

  test("before auth, a frame over 16 KiB is too-large even where maxFrameBytes allows it", { timeout: 15_000 }, async () => {
    const big = await startServer({}, USERS);
    try {
      const p = await RawPeer.open(big.port("relay", "tcp"));
      p.write(rawFrame('{"t":"hello","v":1}', Buffer.alloc(0), { frameLength: 16385 }));
      assert.equal((await p.frameWhere((h) => h.t === "err")).code, "too-large");
      assert.ok(await p.untilClosed());
    } finally {
      await big.stop();
    }
  });

  test("frames before auth get not-authorized and the connection closes", { timeout: 15_000 }, async () => {
    for (const frame of [{ t: "req", id: "1", to: "bob@localhost" }, { t: "msg", to: "bob@localhost" }, { t: "res", re: "w0.1" }]) {
      const p = await RawPeer.open(ts.port("relay", "tcp"));
      p.write(encodeFrame({ t: "hello", v: 1 }));
      p.write(encodeFrame(frame));
      const err = await p.frameWhere((h) => h.t === "err");
      assert.equal(err.code, "not-authorized");
      assert.ok(await p.untilClosed());
    }
    await stillServing();
  });

  test("a malformed request is answered bad-request and the session stays", { timeout: 15_000 }, async () => {
    const alice = await loginAs(ts, "tcp", "alice", "alice-pw", "br");
    for (const h of [
      { t: "req", id: "1" },
      { t: "req", id: "2", to: "not an address@" },
      { t: "req", id: "3", to: "bob@localhost", ttl: "soon" },
      { t: "req", id: "x".repeat(129), to: "bob@localhost" },
    ]) {
      const err = (await alice.exchange(h)).header;
      assert.equal(err.code, "bad-request", JSON.stringify(h));
    }
    await alice.ping();
    await alice.close();
  });

  test("over the per-session pending limit: rate-limited, earlier requests unaffected", { timeout: 15_000 }, async () => {
    const alice = await loginAs(ts, "tcp", "alice", "alice-pw", "rl");
    const bob = await loginAs(ts, "tcp", "bob", "bob-pw", "rl");
    const held: IncomingRequest[] = [];
    bob.on("request", (r: IncomingRequest) => held.push(r));
    const results = Array.from({ length: 8 }, () => alice.request("bob@localhost/rl", "x").then(() => "ok", (e: RelayError) => e.code));
    await waitUntil(() => held.length === 5, 3000, "bob holding the 5 requests within the limit");
    for (const r of held) r.respond();
    assert.deepEqual(await Promise.all(results), ["ok", "ok", "ok", "ok", "ok", "rate-limited", "rate-limited", "rate-limited"]);
    await Promise.all([alice.close(), bob.close()]);
  });

  test("a WebSocket message over maxFrameBytes: too-large, connection closed", { timeout: 15_000 }, async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${ts.port("relay", "websocket")}/relay`);
    await new Promise((r) => ws.once("open", r));
    const got: Record<string, unknown>[] = [];
    ws.on("message", (d: Buffer) => got.push(JSON.parse(d.subarray(2, 2 + d.readUInt16BE(0)).toString())));
    const closed = new Promise((r) => ws.once("close", r));
    ws.send(Buffer.concat([encodeHead({ t: "hello", v: 1 }, MAX_FRAME).subarray(4), Buffer.alloc(MAX_FRAME)]));
    await closed;
    assert.deepEqual(
      got.map((h) => h.code),
      ["too-large"],
    );
  });

  test("a recipient that stops reading is cut off; the sender and server carry on", { timeout: 15_000 }, async () => {
    const reader = await evil();
    reader.stopReading();
    const alice = await loginAs(ts, "tcp", "alice", "alice-pw", "flood");
    // Enough to overflow the kernel's socket buffers (several MB on loopback) many times.
    const chunk = Buffer.alloc(3000);
    const rssBefore = process.memoryUsage().rss;
    const sessions = ts.server.proxy.sessions;
    for (let i = 0; i < 20000 && sessions.has("eve@localhost/e"); i++) {
      alice.message("eve@localhost/e", chunk);
      if (i % 50 === 0) await alice.ping();
    }
    assert.equal(sessions.has("eve@localhost/e"), false, "the slow reader's session is gone");
    reader.resumeReading();
    assert.ok(await reader.untilClosed(5000), "its connection was closed");
    assert.ok(process.memoryUsage().rss - rssBefore < 64 * 1024 * 1024);
    await alice.ping();
    await alice.close();
    await stillServing();
  });
});

