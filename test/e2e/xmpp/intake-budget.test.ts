import { test } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import { startXmppServer, xmppListeners, waitUntil } from "../../helpers.js";
import { intakeStats } from "../../../src/transport/intake.js";
import { online, type Online } from "./util.js";

const PATH = "/xmpp-websocket";
const SENDERS = 16;
const RECEIVERS = 4;
const EACH = 300;

/**
 * limits.maxTurnMs at 1 ms, far under what a burst of stanzas costs: most reads of the senders' connections are
 * kept for later turns and their sockets stop and start again (src/transport/intake.ts). Half the senders are on
 * XMPP over WebSocket (RFC 7395: a message per stanza, ws-conn.ts), half on TCP. Every stanza must still arrive
 * once, and each sender's in the order it sent them.
 */
test("a turn budget far under the load (limits.maxTurnMs 1): @xmpp/client bursts over WebSocket and TCP arrive whole, once each, in order", { timeout: 60_000 }, async () => {
  const users: Record<string, string> = {};
  for (let i = 0; i < SENDERS; i++) users[`s${i}`] = "pw";
  for (let i = 0; i < RECEIVERS; i++) users[`r${i}`] = "pw";
  const ts = await startXmppServer({ listeners: [...xmppListeners(), { protocol: "xmpp", transport: "websocket", host: "127.0.0.1", port: 0, path: PATH }], limits: { maxTurnMs: 1 } }, users);
  const clients: Online[] = [];
  try {
    const ws = `ws://127.0.0.1:${ts.server.listeners.find((l) => l.config.transport === "websocket")!.port}${PATH}`;
    const tcp = ts.port("xmpp", "tcp");
    const receivers: Online[] = [];
    for (let i = 0; i < RECEIVERS; i++) receivers.push(await online(tcp, `r${i}`, "pw", { resource: "in" }));
    const senders: Online[] = [];
    for (let i = 0; i < SENDERS; i++) senders.push(await online(i % 2 === 0 ? ws : tcp, `s${i}`, "pw", { resource: "out" }));
    clients.push(...receivers, ...senders);
    const deferredBefore = intakeStats.deferred;

    // Every sender writes its whole burst at once; the server reads them all in the same turns.
    const sends: Promise<void>[] = [];
    for (let k = 0; k < EACH; k++) {
      senders.forEach((s, i) => sends.push(s.c.send(xml("message", { to: receivers[i % RECEIVERS].jid, type: "chat", id: `m${i}-${k}` }, xml("body", {}, `${i}:${k}`)))));
    }
    await Promise.all(sends);
    const total = () => receivers.reduce((n, r) => n + r.stanzas.filter((el) => el.is("message")).length, 0);
    await waitUntil(() => total() >= SENDERS * EACH, 45_000, () => `${total()} of ${SENDERS * EACH} messages arrived`);

    const got = new Map<number, number[]>();
    for (const r of receivers) {
      for (const el of r.stanzas) {
        if (!el.is("message")) continue;
        const [i, k] = String(el.getChildText("body")).split(":").map(Number);
        const list = got.get(i) ?? [];
        list.push(k);
        got.set(i, list);
      }
    }
    for (let i = 0; i < SENDERS; i++) {
      assert.deepEqual(got.get(i), Array.from({ length: EACH }, (_, k) => k), `sender ${i} (${i % 2 === 0 ? "WebSocket" : "TCP"}): each message once, in order`);
    }
    assert.equal(total(), SENDERS * EACH, "nothing twice");
    assert.ok(intakeStats.deferred > deferredBefore, `reads were kept for later turns (${intakeStats.deferred - deferredBefore})`);
    assert.equal(intakeStats.kept, 0, "no read kept once every message has come (switchboard_intake_kept_bytes)");
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
    await ts.stop();
  }
});
