import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, once, type TestServer } from "../../helpers.js";
import { RelayClient, RelayError, type IncomingRequest } from "../../../src/relay/client.js";
import { Authenticator } from "../../../src/auth/authenticator.js";
import { TRANSPORTS, connectRelay, loginAs } from "./relay-helpers.js";

const SECRET = "0123456789abcdef0123456789abcdef";
const USERS = { alice: "alice-pw", bob: "bob-pw", carol: "carol-pw" };

describe("relay protocol conversation, end to end", () => {
  let ts: TestServer;
  before(async () => {
    ts = await startServer({ auth: { tokenSecret: SECRET } }, USERS);
  }, { timeout: 15_000 });
  after(() => ts.stop());

  for (const transport of TRANSPORTS) {
    test(`hello and auth over ${transport}`, { timeout: 15_000 }, async () => {
      const c = await connectRelay(ts, transport);
      const hello = await c.exchange({ t: "hello", v: 1 });
      assert.deepEqual(hello.header, { t: "hello", v: 1, server: "switchboard", maxFrameBytes: ts.config.limits.maxFrameBytes });
      const ok = await c.exchange({ t: "auth", user: "alice", password: "alice-pw", resource: `gw-${transport}` });
      assert.deepEqual(ok.header, { t: "ok", jid: `alice@localhost/gw-${transport}` });
      await c.close();
    });
  }

  test("a wrong password is refused with not-authorized", { timeout: 15_000 }, async () => {
    const c = await connectRelay(ts, "tcp");
    await assert.rejects(c.login({ user: "alice", password: "nope" }), (e: RelayError) => e.code === "not-authorized");
    const unknown = await connectRelay(ts, "tcp");
    await assert.rejects(unknown.login({ user: "mallory", password: "x" }), (e: RelayError) => e.code === "not-authorized");
    c.destroy();
    unknown.destroy();
  });

  test("token auth: a signed, unexpired token for an existing user", { timeout: 15_000 }, async () => {
    const c = await connectRelay(ts, "tcp");
    const jid = await c.login({ token: Authenticator.mintToken(SECRET, "bob", 60), resource: "tok" });
    assert.equal(jid, "bob@localhost/tok");
    await c.close();
    const bad = await connectRelay(ts, "tcp");
    await assert.rejects(bad.login({ token: Authenticator.mintToken("another-secret-of-16+", "bob", 60) }), (e: RelayError) => e.code === "not-authorized");
    bad.destroy();
    const expired = await connectRelay(ts, "tcp");
    await assert.rejects(expired.login({ token: Authenticator.mintToken(SECRET, "bob", -1) }), (e: RelayError) => e.code === "not-authorized");
    expired.destroy();
  });

  test("a server-chosen resource when none is asked", { timeout: 15_000 }, async () => {
    const c = await connectRelay(ts, "tcp");
    const jid = await c.login({ user: "carol", password: "carol-pw" });
    assert.match(jid, /^carol@localhost\/.+/);
    await c.close();
  });

  for (const [from, to] of [
    ["tcp", "tls"],
    ["tls", "websocket"],
    ["websocket", "tcp"],
  ] as const) {
    test(`request and response ${from} → ${to}: the requester's id is restored, from is stamped`, { timeout: 15_000 }, async () => {
      const alice = await loginAs(ts, from, "alice", "alice-pw", "a1");
      const bob = await loginAs(ts, to, "bob", "bob-pw", "b1");
      let seen: IncomingRequest | undefined;
      bob.on("request", (r: IncomingRequest) => {
        seen = r;
        r.respond(Buffer.concat([Buffer.from("re:"), r.body]));
      });
      const payload = Buffer.from([0, 1, 2, 255, 254, 0x0a]);
      alice.send({ t: "req", id: "my-id-7", to: "bob@localhost/b1", ttl: 2000, from: "mallory@localhost/x" }, payload);
      const [h, body] = await waitFrame(alice, (h) => h.t === "res");
      assert.deepEqual(h, { t: "res", re: "my-id-7", from: "bob@localhost/b1" });
      assert.deepEqual(body, Buffer.concat([Buffer.from("re:"), payload]));
      assert.ok(seen);
      assert.equal(seen.from, "alice@localhost/a1", "a client's from is ignored");
      assert.notEqual(seen.id, "my-id-7", "the recipient sees the proxy id");
      assert.deepEqual(seen.body, payload);
      await Promise.all([alice.close(), bob.close()]);
    });
  }

  test("an err answer reaches the requester with its own id", { timeout: 15_000 }, async () => {
    const alice = await loginAs(ts, "tcp", "alice", "alice-pw", "a2");
    const bob = await loginAs(ts, "tcp", "bob", "bob-pw", "b2");
    bob.on("request", (r: IncomingRequest) => r.reject("bad-request", "no thanks"));
    await assert.rejects(alice.request("bob@localhost/b2", "x"), (e: RelayError) => {
      assert.equal(e.code, "bad-request");
      assert.equal(e.header.from, "bob@localhost/b2");
      return true;
    });
    await Promise.all([alice.close(), bob.close()]);
  });

  test("a request to a bare address goes to one online session", { timeout: 15_000 }, async () => {
    const alice = await loginAs(ts, "tcp", "alice", "alice-pw", "a3");
    const b1 = await loginAs(ts, "tcp", "bob", "bob-pw", "x1");
    const b2 = await loginAs(ts, "websocket", "bob", "bob-pw", "x2");
    let served = 0;
    for (const b of [b1, b2]) b.on("request", (r: IncomingRequest) => (served++, r.respond("ok")));
    const res = await alice.request("bob@localhost", "hi");
    assert.match(String(res.header.from), /^bob@localhost\/x[12]$/);
    // A request sent to both would have left in the same turn, before the answer: each pong comes after it.
    await Promise.all([b1.ping(), b2.ping()]);
    assert.equal(served, 1);
    await Promise.all([alice.close(), b1.close(), b2.close()]);
  });

  test("a message to a bare address reaches every session; to a full address only that one", { timeout: 15_000 }, async () => {
    const alice = await loginAs(ts, "tls", "alice", "alice-pw", "a4");
    const b1 = await loginAs(ts, "tcp", "bob", "bob-pw", "m1");
    const b2 = await loginAs(ts, "websocket", "bob", "bob-pw", "m2");
    const got1: string[] = [];
    const got2: string[] = [];
    b1.on("message", (m: { from: string; body: Buffer }) => got1.push(`${m.from} ${m.body}`));
    b2.on("message", (m: { from: string; body: Buffer }) => got2.push(`${m.from} ${m.body}`));
    alice.message("bob@localhost", "to all");
    alice.message("bob@localhost/m2", "to m2");
    await alice.ping(); // ordered after the messages on the same connection
    // The server wrote the messages before alice's pong; each of bob's pongs follows them on its connection.
    await Promise.all([b1.ping(), b2.ping()]);
    assert.deepEqual(got1, ["alice@localhost/a4 to all"]);
    assert.deepEqual(got2, ["alice@localhost/a4 to all", "alice@localhost/a4 to m2"]);
    await Promise.all([alice.close(), b1.close(), b2.close()]);
  });

  test("ping is answered with pong, before and after auth; bye closes cleanly", { timeout: 15_000 }, async () => {
    const c = await connectRelay(ts, "tcp");
    assert.equal((await c.exchange({ t: "ping" })).header.t, "pong");
    await c.login({ user: "alice", password: "alice-pw", resource: "p" });
    assert.deepEqual((await c.exchange({ t: "ping", id: "9" })).header, { t: "pong", id: "9" });
    const bye = once<[Record<string, unknown>]>(c, "frame");
    const closed = c.close();
    assert.equal(((await bye) as unknown as Record<string, unknown>).t, "bye");
    await closed;
    assert.ok(c.isClosed);
  });

  test("a second session on the same address replaces the first, which gets conflict", { timeout: 15_000 }, async () => {
    const first = await loginAs(ts, "tcp", "carol", "carol-pw", "same");
    const errors: string[] = [];
    first.on("frame", (h: Record<string, unknown>) => h.t === "err" && errors.push(String(h.code)));
    const closed = once(first, "close");
    const second = await loginAs(ts, "tcp", "carol", "carol-pw", "same");
    await closed;
    assert.deepEqual(errors, ["conflict"]);
    // The address now belongs to the second session.
    const alice = await loginAs(ts, "tcp", "alice", "alice-pw", "a5");
    second.on("request", (r: IncomingRequest) => r.respond("second"));
    assert.equal(String((await alice.request("carol@localhost/same")).body), "second");
    await Promise.all([alice.close(), second.close()]);
  });
});

function waitFrame(c: RelayClient, pred: (h: Record<string, unknown>) => boolean): Promise<[Record<string, unknown>, Buffer]> {
  return new Promise((resolve) => {
    const on = (h: Record<string, unknown>, b: Buffer) => {
      if (!pred(h)) return;
      c.removeListener("frame", on);
      resolve([h, b]);
    };
    c.on("frame", on);
  });
}
