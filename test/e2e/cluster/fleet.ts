import { randomUUID } from "node:crypto";
import { client, xml } from "@xmpp/client";
import { waitUntil } from "../../helpers.js";
import { settleAcks, type SmClient } from "../xmpp/fault-util.js";

// Clients for the fault tests over several hosts (faults-3hosts.test.ts): an
// @xmpp/client with XEP-0198 and short timers, as fault-util's smClient, that
// knows every host's address and moves on to the next one when a reconnection
// attempt fails (a host that is gone), and that records what it receives
// apart from the errors the server bounces to it.

export interface Service {
  host: string;
  port: number;
}

export interface FleetClient {
  c: any;
  /** Bodies of the chat messages received, in order (message errors excluded). */
  got: string[];
  /** Bodies of those that carried a XEP-0203 <delay/> (from offline storage). */
  delayed: Set<string>;
  /** ids of the messages the server bounced back (type="error"). */
  bounced: Set<string>;
  /** The host it is on now (an index into the services). */
  at: number;
  /** When it last lost its stream, and when it last came online (ms since the epoch). */
  downAt: number;
  onlineAt: number;
  /** When it last read anything from the server. */
  heardAt: number;
  stop(): Promise<void>;
}

/**
 * Logs in at `services[home]`. Reconnection 100 ms after a drop; the first attempt goes to the
 * same host (the session may be resumed there), every further one to the next host in the list.
 * An <r/> after `ackIntervalMs` of silence, and the connection given up when no <a/> answers
 * within `ackTimeoutMs` (how it notices a worker that stopped). Initial presence on every new
 * session, so offline messages come after a failed resumption. No iq requests: see smClient.
 * Logs in with SASL PLAIN (see below).
 */
export async function fleetClient(services: Service[], home: number, username: string, password: string, opts: { ackIntervalMs?: number; ackTimeoutMs?: number } = {}): Promise<FleetClient> {
  const url = (i: number) => `xmpp://${services[i].host}:${services[i].port}`;
  // SASL PLAIN (the hosts allow it without TLS, on loopback): @xmpp/client's SCRAM derives its key in
  // JavaScript, ~0.3 s of this process's CPU per login, which would starve a test of many clients.
  // A user-agent id (XEP-0388), one per client as an app keeps one per installation: a new session after a
  // failed resumption is bound by XEP-0386 Bind2 to the same full JID (RFC 6120 SASL ignores it).
  const userAgent = xml("user-agent", { id: randomUUID() }, xml("software", {}, "fleet"));
  const credentials = (authenticate: any) => authenticate({ username, password }, "PLAIN", userAgent);
  // The open/close handshake's timeout: generous, the 2 cores are busy; a host that hangs is left by the watchdog below.
  const c = client({ service: url(home), domain: "localhost", credentials, resource: "r", timeout: 5000 });
  c.on("error", () => {});
  c.reconnect.delay = 100;
  c.streamManagement.requestAckInterval = opts.ackIntervalMs ?? 300;
  // @xmpp/client's own ack timeout closes the stream gracefully (its last <a/>, then </stream>): from a server
  // that was stopped and runs again, stanzas written after that <a/> and before it reads the close reach this
  // client unacknowledged, and XEP-0198 has the server send them again (RFC 6121 §8.5.3.2.1): counted twice
  // here. The watchdog below cuts the socket instead, as a phone that loses its network does.
  c.streamManagement.timeout = 0;
  let attempts = 0;
  const s: FleetClient = {
    c,
    got: [],
    delayed: new Set(),
    bounced: new Set(),
    at: home,
    downAt: 0,
    onlineAt: 0,
    heardAt: 0,
    async stop() {
      clearInterval(watchdog);
      c.reconnect.stop();
      await c.stop().catch(() => {});
    },
  };
  // @xmpp/client's own <r/> waits for a 250 ms pause in what it sends, and a client that sends
  // more often than that never asks, so never notices a server that stopped answering (a worker
  // under SIGSTOP). This one asks after ackIntervalMs of silence from the server whatever it
  // sends, and closes the stream after ackTimeoutMs of it (XEP-0198 §4: an <r/> may be sent at any time).
  const ackInterval = opts.ackIntervalMs ?? 300;
  const ackTimeout = opts.ackTimeoutMs ?? 2000;
  // And an attempt that has not come online after 3 s (a host that accepts the connection and
  // then says nothing: its primary handed it to a stopped worker) is given up: the next goes elsewhere.
  let attemptAt = 0;
  let tickAt = Date.now();
  const watchdog = setInterval(() => {
    // This process itself was starved (a busy machine): what the servers sent waits unread in the
    // sockets, so silence proves nothing; the clocks start again rather than every client dropping.
    const now = Date.now();
    const late = now - tickAt > ackInterval * 2;
    tickAt = now;
    if (late) {
      if (attemptAt > 0) attemptAt = now;
      s.heardAt = now;
      return;
    }
    if (attemptAt > 0 && Date.now() - attemptAt > 3000 && c.status !== "online" && c.status !== "disconnect" && c.status !== "offline") {
      attemptAt = Date.now();
      c.socket?.destroy();
      return;
    }
    if (c.status !== "online" || c.streamManagement.enabled !== true) return;
    const silent = Date.now() - s.heardAt;
    // Not c.disconnect(): its close handshake with a stopped peer times out, detaches the parser and
    // leaves the socket, whose data after SIGCONT then throws in @xmpp/connection's _onData.
    if (silent > ackTimeout) c.socket?.destroy();
    else if (silent > ackInterval) c.send(xml("r", { xmlns: "urn:xmpp:sm:3" })).catch(() => {});
  }, ackInterval / 2);
  if (process.env.FAULTS_TRACE) c.on("status", (st: string) => process.stdout.write(`# trace ${username} ${st} ${Date.now() % 100000} at=${s.at}\n`));
  c.reconnect.on("reconnecting", () => {
    if (attempts++ > 0) s.at = (s.at + 1) % services.length;
    attemptAt = Date.now();
    c.options.service = url(s.at);
  });
  c.on("disconnect", () => {
    if (s.downAt <= s.onlineAt) s.downAt = Date.now();
  });
  c.on("element", () => (s.heardAt = Date.now()));
  c.on("stanza", (el: any) => {
    if (!el.is("message")) return;
    if (el.attrs.type === "error") {
      s.bounced.add(el.attrs.id);
      return;
    }
    const body = el.getChildText("body");
    if (body === null) return;
    s.got.push(body);
    if (el.getChild("delay", "urn:xmpp:delay") !== undefined) s.delayed.add(body);
  });
  const online = () => {
    attempts = 0;
    attemptAt = 0;
    s.onlineAt = Date.now();
    s.heardAt = s.onlineAt;
  };
  c.streamManagement.on("resumed", online);
  c.on("online", () => {
    online();
    c.send(xml("presence")).catch(() => {});
  });
  try {
    await c.start();
    await waitUntil(() => c.streamManagement.enabled === true && c.streamManagement.id !== "", 10_000, `${username}: stream management enabled`);
  } catch (e) {
    // Not left reconnecting for ever behind a failed test.
    await s.stop();
    throw e;
  }
  return s;
}

/** Where one phase's accepted messages ended: received (how many times each), bounced to their senders, or nowhere. */
export interface PhaseOutcome {
  /** How many times each came, a bounce of one that also came counted as one more: two ends of one message are a duplicate. */
  received: Map<string, number>;
  bounced: Set<string>;
  missing: string[];
}

/**
 * Waits (up to 30 s, asking every client for its acknowledgements) until each accepted message of the phase
 * (`mine`) was received or bounced; then `stop` (the phase's listeners off) and the final count.
 */
export async function phaseOutcome(clients: FleetClient[], accepted: ReadonlySet<string>, mine: (id: string) => boolean, stop: () => void): Promise<PhaseOutcome> {
  const received = new Map<string, number>();
  const bounced = new Set<string>();
  const tally = () => {
    received.clear();
    bounced.clear();
    for (const s of clients) {
      for (const b of s.got) if (mine(b)) received.set(b, (received.get(b) ?? 0) + 1);
      for (const id of s.bounced) if (mine(id)) bounced.add(id);
    }
    // Delivered and bounced both: its sender was told it failed, and it did not.
    for (const id of bounced) {
      const n = received.get(id);
      if (n !== undefined) received.set(id, n + 1);
    }
  };
  const missing = () => [...accepted].filter((b) => !received.has(b) && !bounced.has(b));
  await waitUntil(
    async () => {
      await Promise.all(clients.map((s) => settleAcks(s as unknown as SmClient, 3000).catch(() => {})));
      tally();
      return missing().length === 0;
    },
    30_000,
    "every accepted message received or bounced",
    500,
  ).catch(() => {});
  stop();
  tally();
  return { received, bounced, missing: missing() };
}
