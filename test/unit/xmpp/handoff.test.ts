import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type Socket } from "node:net";
import { validate } from "../../../src/config/config.js";
import { Server } from "../../../src/server/server.js";
import { silentLogger } from "../../../src/log/logger.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import type { HandoffPort } from "../../../src/session/context.js";
import { otherWorkerOfHost } from "../../../src/host/handoff.js";
import { isHandoffState } from "../../../src/xmpp/handoff.js";
import { ScramSha1Client } from "../../../bench/xmpp/scram-client.js";
import { waitUntil } from "../../helpers.js";

const HEADER = "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

test("otherWorkerOfHost: only another worker of this host is a target", () => {
  assert.equal(otherWorkerOfHost("h-w1", "h-w", 0), 1);
  assert.equal(otherWorkerOfHost("h-w12", "h-w", 3), 12);
  assert.equal(otherWorkerOfHost("h-w0", "h-w", 0), null, "this worker");
  assert.equal(otherWorkerOfHost("other-w1", "h-w", 0), null, "another host's");
  assert.equal(otherWorkerOfHost("h-w1x", "h-w", 0), null, "not an index");
  assert.equal(otherWorkerOfHost(undefined, "h-w", 0), null, "no owner known");
});

test("isHandoffState: what an owner accepts from the IPC channel", () => {
  assert.ok(isHandoffState({ protocol: "xmpp", user: "a", chunks: [], authLeftMs: 1000 }));
  assert.ok(!isHandoffState({ protocol: "xmpp", user: "", chunks: [], authLeftMs: 1000 }));
  assert.ok(!isHandoffState({ protocol: "relay", user: "a", chunks: [], authLeftMs: 1000 }));
  assert.ok(!isHandoffState({ protocol: "xmpp", user: "a", chunks: [1], authLeftMs: 1000 }));
  assert.ok(!isHandoffState(null));
});

/** A server whose hand-off port names worker 1 as every user's owner and records what it is offered; `verdict` decides. */
async function serverWithPort(t: TestContext, verdict: (moved: (ok: boolean) => void, socket: Socket) => void) {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-handoff-"));
  const config = validate({
    storage: { type: "sqlite", path: join(dir, "db.sqlite") },
    listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 }],
    xmpp: { allowPlainWithoutTls: true },
  });
  const offers: { to: number; listener: number; state: unknown }[] = [];
  const port: HandoffPort = {
    target: () => 1,
    offer: (socket, to, listener, state, moved) => {
      offers.push({ to, listener, state });
      verdict(moved, socket);
    },
  };
  const server = await Server.start(config, { log: silentLogger(), handoff: port });
  await server.store.putUser("alice", await deriveCredentials("pw", config.auth.scramIterations));
  t.after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { server, offers, port: server.port("xmpp", "tcp") };
}

/** Logs in over a raw socket (PLAIN or SCRAM-SHA-1) and binds; resolves with everything read after the success. */
function login(t: TestContext, port: number, mech: "PLAIN" | "SCRAM-SHA-1"): Promise<string> {
  const s = connect(port, "127.0.0.1");
  t.after(() => s.destroy());
  const scram = new ScramSha1Client("alice", "pw", null);
  return new Promise((resolve, reject) => {
    let buf = "";
    let step = 0;
    let after = "";
    s.on("error", reject);
    s.on("data", (d) => {
      buf += d;
      if (step >= 2) after += d;
      if (step === 0 && buf.includes("</stream:features>")) {
        step = 1;
        buf = "";
        s.write(mech === "PLAIN" ? `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from("\0alice\0pw").toString("base64")}</auth>` : `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>${scram.first()}</auth>`);
      } else if (step === 1 && buf.includes("</challenge>")) {
        const ch = /<challenge[^>]*>([^<]*)</.exec(buf)![1];
        buf = "";
        s.write(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${scram.final(ch)}</response>`);
      } else if (step === 1 && /<success/.test(buf)) {
        step = 2;
        buf = "";
        // At once, as clients do: the server must not lose it while the connection is offered elsewhere.
        s.write(HEADER);
      } else if (step === 2 && buf.includes("</stream:features>")) {
        step = 3;
        buf = "";
        s.write("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>");
      } else if (step === 3 && buf.includes("</iq>")) resolve(after);
    });
    s.write(HEADER);
  });
}

for (const mech of ["PLAIN", "SCRAM-SHA-1"] as const) {
  test(`${mech}: a hand-off that fails leaves the connection where it was, and the login goes on`, { timeout: 20_000 }, async (t) => {
    let offeredReading: boolean | null = null;
    const { server, offers, port } = await serverWithPort(t, (moved, socket) => {
      // Offered when the success is out; the primary answers later. Meanwhile nothing is read here.
      offeredReading = socket.readableLength > 0;
      setTimeout(() => moved(false), 300);
    });
    const after = await login(t, port, mech);
    assert.match(after, /<jid>alice@localhost\/r<\/jid>/);
    assert.equal(offers.length, 1);
    assert.equal(offers[0].to, 1);
    assert.equal(offers[0].listener, 0);
    assert.ok(isHandoffState(offers[0].state), JSON.stringify(offers[0].state));
    assert.equal((offers[0].state as { user: string }).user, "alice");
    assert.equal(offeredReading, false);
    assert.equal(server.metrics.handoffs.stayed, 1);
    assert.equal(server.metrics.handoffs.out, 0);
  });
}

test("a client that closes while its connection is offered costs nothing: the session is gone, the verdict finds it closed", { timeout: 20_000 }, async (t) => {
  let decide: ((ok: boolean) => void) | null = null;
  const { server, port } = await serverWithPort(t, (moved) => (decide = moved));
  const s = connect(port, "127.0.0.1");
  t.after(() => s.destroy());
  let buf = "";
  s.on("data", (d) => {
    buf += d;
    if (buf.includes("</stream:features>") && !buf.includes("<auth-sent/>")) {
      buf += "<auth-sent/>";
      s.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from("\0alice\0pw").toString("base64")}</auth>`);
    }
  });
  s.write(HEADER);
  await waitUntil(() => decide !== null, 5000, "the offer");
  s.destroy();
  await new Promise((r) => setTimeout(r, 100));
  decide!(false);
  // Stayed: read again here, the peer's close is seen and the connection goes.
  await waitUntil(() => server.listeners[0].connections === 0, 5000, "the connection closed");
});
