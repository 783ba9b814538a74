import { test } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import { startServer, type TestServer } from "../../helpers.js";
import { online, rawLogin } from "../xmpp/util.js";
import { loginAs } from "../relay/relay-helpers.js";
import type { IncomingRequest } from "../../../src/relay/client.js";
import { capturingLogger, until } from "./admin-helpers.js";

const USERS = { alice: "a-pass", bob: "b-pass", carol: "c-pass", dave: "d-pass" };
const LISTENERS = [
  { protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 },
  { protocol: "relay", transport: "tcp", host: "127.0.0.1", port: 0 },
  { protocol: "relay", transport: "websocket", host: "127.0.0.1", port: 0, path: "/relay" },
];

async function withLoggedServer(level: "info" | "debug", f: (ts: TestServer, lines: Record<string, unknown>[]) => Promise<void>): Promise<void> {
  const { log, lines } = capturingLogger(level);
  // PLAIN for the raw XMPP client below (loopback, tests only).
  const ts = await startServer({ listeners: LISTENERS, xmpp: { allowPlainWithoutTls: true } }, USERS, log);
  try {
    await f(ts, lines);
  } finally {
    await ts.stop();
  }
}

const named = (lines: Record<string, unknown>[], message: string) => lines.filter((l) => l.message === message);

test("one info line when a session starts and one when it ends; nothing per message above debug", { timeout: 20_000 }, () =>
  withLoggedServer("info", async (ts, lines) => {
    const alice = await loginAs(ts, "tcp", "alice", "a-pass", "r1");
    const carol = await loginAs(ts, "websocket", "carol", "c-pass", "r2");
    const bob = await online(ts.port("xmpp", "tcp"), "bob", "b-pass", { resource: "x1" });
    const dave = await rawLogin(ts.port("xmpp", "tcp"), "dave", "d-pass", "x2");
    await until("four start lines", () => named(lines, "session started").length === 4);
    const started = named(lines, "session started").map(({ level, address, remote, protocol, transport }) => ({ level, address, remote, protocol, transport }));
    assert.deepEqual(
      started.sort((a, b) => String(a.address).localeCompare(String(b.address))),
      [
        { level: "info", address: "alice@localhost/r1", remote: "127.0.0.1", protocol: "relay", transport: "tcp" },
        { level: "info", address: bob.jid, remote: "127.0.0.1", protocol: "xmpp", transport: "tcp" },
        { level: "info", address: "carol@localhost/r2", remote: "127.0.0.1", protocol: "relay", transport: "websocket" },
        { level: "info", address: "dave@localhost/x2", remote: "127.0.0.1", protocol: "xmpp", transport: "tcp" },
      ],
    );

    // Traffic of every kind, across protocols: not one line at info.
    const before = lines.length;
    carol.on("request", (r: IncomingRequest) => r.respond("ok"));
    let got = 0;
    carol.on("message", () => got++);
    for (let i = 0; i < 20; i++) {
      alice.message("carol@localhost", `m${i}`);
      await alice.request("carol@localhost/r2", `q${i}`);
      await bob.c.send(xml("message", { to: "dave@localhost/x2", type: "chat" }, xml("body", {}, `x${i}`)));
      dave.send(`<message to='alice@localhost/r1' type='chat'><body>d${i}</body></message>`);
    }
    await until("carol's 20 messages", () => got === 20);
    await dave.until(/x19<\/body>/);
    await alice.ping();
    assert.deepEqual(lines.slice(before), [], "nothing logged at info while messages flowed");

    // Each way a session ends, with its reason.
    await alice.close();
    carol.destroy();
    await bob.stop();
    dave.destroy();
    await until("four end lines", () => named(lines, "session ended").length === 4);
    const ended: Record<string, Record<string, unknown>> = Object.fromEntries(named(lines, "session ended").map((l) => [l.address, l]));
    assert.equal(ended["alice@localhost/r1"].reason, "bye");
    assert.equal(ended["carol@localhost/r2"].reason, "peer closed");
    assert.equal(ended[bob.jid].reason, "client closed the stream");
    assert.equal(ended["dave@localhost/x2"].reason, "peer closed");
    for (const l of Object.values(ended)) {
      assert.equal(l.level, "info");
      assert.ok(typeof l.durationMs === "number" && l.durationMs >= 0 && l.durationMs < 20_000, JSON.stringify(l));
    }
    assert.deepEqual([ended["alice@localhost/r1"].protocol, ended["alice@localhost/r1"].transport], ["relay", "tcp"]);
    assert.equal(named(lines, "session started").length, 4, "no session started twice");
  }));

test("a session replaced by a newer one ends with conflict; a failed login starts none", { timeout: 10_000 }, () =>
  withLoggedServer("info", async (ts, lines) => {
    const first = await loginAs(ts, "tcp", "alice", "a-pass", "same");
    const second = await loginAs(ts, "tcp", "alice", "a-pass", "same");
    await until("the first session's end", () => named(lines, "session ended").length === 1);
    assert.equal(named(lines, "session ended")[0].reason, "conflict");
    await assert.rejects(loginAs(ts, "tcp", "bob", "wrong", "r"));
    assert.equal(named(lines, "session started").length, 2);
    await second.close();
    first.destroy();
  }));

test("at debug the per-message lines exist (the gate above is what keeps them out)", { timeout: 10_000 }, () =>
  withLoggedServer("debug", async (ts, lines) => {
    const alice = await loginAs(ts, "tcp", "alice", "a-pass", "d");
    const before = lines.length;
    for (let i = 0; i < 5; i++) alice.message("carol@localhost", "m");
    await alice.ping();
    assert.equal(lines.slice(before).filter((l) => l.message === "relay msg" && l.level === "debug").length, 5);
    await alice.close();
  }));

test("a worker of a host has its id on every line: a field in JSON, after the level in text", { timeout: 5000 }, () => {
  const json = capturingLogger("info", "json", { worker: "10_0_0_7-w1" });
  json.log.info("session started", { address: "a@b/c" });
  json.log.warn("something", { worker: "10_0_0_7-w1" });
  assert.deepEqual(
    json.lines.map((l) => l.worker),
    ["10_0_0_7-w1", "10_0_0_7-w1"],
  );
  const text = capturingLogger("info", "text", { worker: "10_0_0_7-w1" });
  text.log.info("session started", { address: "a@b/c" });
  assert.match(text.text[0], /^\S+ info \[10_0_0_7-w1\] session started \{"address":"a@b\/c"\}$/);
  const plain = capturingLogger("info", "text");
  plain.log.info("switchboard stopped");
  assert.match(plain.text[0], /^\S+ info switchboard stopped$/, "one worker: no tag");
});
