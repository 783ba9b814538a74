import { before, after } from "node:test";
import { defaults } from "../../../src/config/config.js";
import type { NatsBus } from "../../../src/cluster/nats-bus.js";
import { LocalHub } from "../../../src/cluster/local-bus.js";
import { ProxyDaemon, type ProxyOptions } from "../../../src/proxy/proxy-daemon.js";
import { Session } from "../../../src/session/session.js";
import type { Envelope } from "../../../src/envelope/envelope.js";
import type { ResumeRecord } from "../../../src/session/resume-record.js";
import { startNats, type NatsServer } from "../../nats.js";

// What the core's unit tests share: a session that records what reaches it, and the core's options.

/** A session at `address` ("user@domain/resource") that keeps every envelope delivered to it. */
export class Recorder extends Session {
  readonly idPassThrough: boolean;
  readonly got: Envelope[] = [];
  constructor(
    address: string,
    readonly protocol: "xmpp" | "relay" = "xmpp",
    available = true,
  ) {
    super();
    // XMPP keeps a stanza's id end to end; the relay gives each request its own.
    this.idPassThrough = protocol === "xmpp";
    this.address = address;
    this.bare = address.slice(0, address.indexOf("/"));
    this.resource = address.slice(address.indexOf("/") + 1);
    this.available = available;
  }
  deliver(env: Envelope): boolean {
    this.got.push(env);
    return true;
  }
  replaced(): void {}
}

/** Payloads as plain strings on a real bus (NatsBus's codec for the "xmpp" protocol in tests over nats-server). */
export const textCodec = { encode: (p: unknown) => Buffer.from(String(p)), decode: (b: Uint8Array) => Buffer.from(b).toString(), encodeText: (p: unknown) => String(p), decodeText: (t: string) => t };

/** The core's options as the tests use them: XMPP and relay timeouts, a fast sweep, custody's defaults. */
export function proxyOptions(over: Partial<ProxyOptions> = {}): ProxyOptions {
  return {
    timeouts: { relay: { defaultMs: 5000, minMs: 100, maxMs: 120000 }, xmpp: { defaultMs: 30000, minMs: 1000, maxMs: 300000 } },
    sweepIntervalMs: 50,
    maxPendingPerSession: 3,
    maxInboundPerSession: 100,
    custody: defaults().cluster.custody,
    ...over,
  };
}

/** Two workers on the local bus, each serving rooms.localhost (a service that takes nothing): its links, by worker. */
export function servedPair() {
  const hub = new LocalHub(64);
  const proxies = ["w0", "w1"].map((id) => new ProxyDaemon(hub.join(id, "10.0.0.1"), proxyOptions({ sweepIntervalMs: 20 })));
  for (const p of proxies) p.start();
  const links = proxies.map((p) => p.serve("rooms.localhost", { receive: () => undefined }));
  return { proxies, links, stop: () => proxies.forEach((p) => p.stop()) };
}

/** A resumable session: its count is `handled`; its record's key `key`. */
export class Counted extends Recorder {
  handled = 0;
  constructor(address: string, readonly key: string) {
    super(address);
    this.keepKey = `${address.slice(0, address.indexOf("@"))}\u0000${key}`;
  }
}

export const describeRec = (s: Session): ResumeRecord | null => {
  const c = s as Counted;
  return { protocol: "xmpp", key: c.key, user: c.address.slice(0, c.address.indexOf("@")), address: c.address, count: 0, windowMs: 5000, state: {} };
};

/**
 * A nats-server for the tests of the describe block this is called in, started before them; after them, the
 * proxies and buses they put in the lists are stopped, then the server. `url()`: its address, once started.
 */
export function natsForBlock(): { url: () => string; buses: NatsBus[]; proxies: ProxyDaemon[] } {
  let nats: NatsServer | null = null;
  const buses: NatsBus[] = [];
  const proxies: ProxyDaemon[] = [];
  before(async () => {
    nats = await startNats();
  }, { timeout: 15_000 });
  after(async () => {
    for (const p of proxies) p.stop();
    for (const b of buses) await b.close();
    await nats?.stop();
  }, { timeout: 15_000 });
  return { url: () => nats!.url, buses, proxies };
}
