import { randomUUID } from "node:crypto";
import { client, xml } from "@xmpp/client";
import { waitUntil } from "../../helpers.js";

// What the fault tests (fault-*.test.ts) share: the counts they assert, and an
// @xmpp/client tuned so that its own timers (reconnection, dead-connection
// detection) act within a test's deadline.

export const SM = "urn:xmpp:sm:3";

export interface Tally {
  lost: number;
  duplicated: number;
  /** Messages whose first copy came after a later-numbered one. */
  outOfOrder: number;
}

/** `got`: the bodies received, in order; the messages sent were "0" … String(n - 1). */
export function tally(got: string[], n: number): Tally {
  const seen = new Set<string>();
  let duplicated = 0;
  let outOfOrder = 0;
  let highest = -1;
  for (const b of got) {
    if (seen.has(b)) {
      duplicated++;
      continue;
    }
    seen.add(b);
    const i = Number(b);
    if (i < highest) outOfOrder++;
    highest = Math.max(highest, i);
  }
  let lost = 0;
  for (let i = 0; i < n; i++) if (!seen.has(String(i))) lost++;
  return { lost, duplicated, outOfOrder };
}

/** An @xmpp/client with stream management, its timers shortened, recording what it receives. */
export interface SmClient {
  c: any;
  /** Bodies of the messages received, in order of arrival. */
  got: string[];
  /** Bodies of those that carried a XEP-0203 <delay/> (from offline storage). */
  delayed: string[];
  /** Times the stream was resumed (XEP-0198 <resumed/>), and times a new session came online. */
  resumed: number;
  sessions: number;
  stop(): Promise<void>;
}

/**
 * Logs in through `port` (a fault proxy) and enables stream management with
 * resumption, as @xmpp/client does by itself. Its timers, shortened:
 * reconnection 100 ms after a drop; an <r/> after `ackIntervalMs` of silence,
 * and the connection given up when no <a/> answers it within `ackTimeoutMs`
 * (how it notices a black hole); 500 ms for the stream's close handshake.
 * Initial presence is sent on every new session (not on a resumed one), so
 * offline messages come after a failed resumption. No iqCaller request is made:
 * @xmpp/client 0.14 does not count the results its iqCaller takes, and would
 * then get the last message before a drop twice on resumption (docs/xmpp.md).
 */
export async function smClient(port: number, username: string, password: string, resource: string, opts: { ackIntervalMs?: number; ackTimeoutMs?: number; plain?: boolean; timeoutMs?: number; errors?: string[] } = {}): Promise<SmClient> {
  // `plain`: SASL PLAIN (the server must allow it without TLS). @xmpp/client's SCRAM runs its 4,096 HMACs one
  // WebCrypto call at a time, each a thread-pool round trip: a dozen clients reconnecting at once on the busy
  // 2 cores took ~9 s to log in again, which a fault test would count against the server.
  // The user-agent id @xmpp/client sends (one per client, as an app keeps one per installation), here too:
  // XEP-0386 Bind2 then binds each new session of this client to the same full JID.
  const userAgent = xml("user-agent", { id: randomUUID() }, xml("software", {}, "smClient"));
  const credentials = opts.plain === true ? (authenticate: any) => authenticate({ username, password }, "PLAIN", userAgent) : undefined;
  const c = client({ service: `xmpp://127.0.0.1:${port}`, domain: "localhost", username, password, credentials, userAgent, resource, timeout: opts.timeoutMs ?? 500 });
  // `errors`: what the client reports (a stream error's condition, else the message), for a test to count.
  c.on("error", (e: any) => opts.errors?.push(`${username}: ${e?.condition ?? e?.message ?? String(e)}`));
  c.reconnect.delay = 100;
  c.streamManagement.requestAckInterval = opts.ackIntervalMs ?? 300;
  c.streamManagement.timeout = opts.ackTimeoutMs ?? 2500;
  const s: SmClient = {
    c,
    got: [],
    delayed: [],
    resumed: 0,
    sessions: 0,
    async stop() {
      c.reconnect.stop();
      await c.stop().catch(() => {});
    },
  };
  c.on("stanza", (el: any) => {
    const body = el.is("message") ? el.getChildText("body") : null;
    if (body === null) return;
    s.got.push(body);
    if (el.getChild("delay", "urn:xmpp:delay") !== undefined) s.delayed.push(body);
  });
  c.streamManagement.on("resumed", () => s.resumed++);
  c.on("online", () => {
    s.sessions++;
    c.send(xml("presence")).catch(() => {});
  });
  await c.start();
  await waitUntil(() => c.streamManagement.enabled === true && c.streamManagement.id !== "", 5000, `${username}: stream management enabled`);
  return s;
}

/**
 * Makes sure the server has every acknowledgement `s` owes it: an <a h/> with
 * all it counted, then an <r/>; the server's answer proves it read the <a/>
 * (one stream, in order). Why a test needs this: XEP-0198 cannot spare a client
 * the second copy of a message it received but whose <a/> never reached the
 * server, when the session is then not resumed (the window passed) — the
 * server stores what it must believe unread.
 */
export async function settleAcks(s: SmClient, ms = 3000): Promise<void> {
  const c = s.c;
  let answered = false;
  const onNonza = (el: any) => {
    if (el.is("a", SM)) answered = true;
  };
  c.on("nonza", onNonza);
  try {
    await c.send(xml("a", { xmlns: SM, h: c.streamManagement.inbound }));
    await c.send(xml("r", { xmlns: SM }));
    await waitUntil(() => answered, ms, "the server's <a/> after our <a/><r/>");
  } finally {
    c.removeListener("nonza", onNonza);
  }
}

/** Sends "from" … "to - 1" as chat bodies from `sender` to `jid`, one every `everyMs`. */
export async function sendNumbered(sender: any, jid: string, from: number, to: number, everyMs = 10, onSent?: (i: number) => void): Promise<void> {
  for (let i = from; i < to; i++) {
    await sender.send(xml("message", { to: jid, type: "chat", id: `m${i}` }, xml("body", {}, String(i))));
    onSent?.(i);
    if (everyMs > 0) await new Promise((r) => setTimeout(r, everyMs));
  }
}
