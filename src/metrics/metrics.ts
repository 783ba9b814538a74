/*
 * What a worker counts. Transport, protocols and core increment plain integer
 * fields inline, where the thing happens; nothing is called, allocated or
 * looked up per message. src/admin/ reads the fields when Prometheus scrapes
 * (prom-client `collect()` callbacks), and is the only code that knows
 * prom-client. Gauges that can be read off existing state (requests pending,
 * bytes queued) are not counted at all: they are computed at scrape time.
 */

/** One kind of listener (protocol × transport): its connections and the sessions on them. */
export class ConnCounts {
  opened = 0;
  closed = 0;
  /** Cut because the client did not read what was sent to it (CloseReason.SlowConsumer). */
  slowConsumers = 0;
  /** Dropped because the peer went silent and did not answer a ping (xmpp/relay pingAfterMs, pingTimeoutMs). */
  deadPeers = 0;
  /** Authenticated and bound (relay: `auth` accepted; XMPP: resource bound). */
  sessionsStarted = 0;
  sessionsEnded = 0;

  constructor(
    readonly protocol: string,
    readonly transport: string,
  ) {}
}

/** One protocol's units: XMPP stanzas (and negotiation elements), relay frames. */
export class ProtocolCounts {
  in = 0;
  out = 0;
  /** Credentials checked and refused. */
  authFailures = 0;
}

/** XEP-0198 stream management over this worker's XMPP sessions. */
export class SmCounts {
  /**
   * Stanzas written with stream management on and not yet acknowledged,
   * suspended sessions included: a gauge, kept here because no state lists
   * every session's queue (up on each send, down on each <a/> and when a
   * session's queue is dropped).
   */
  unacked = 0;
  /** Sessions rebuilt from their resume record after their worker died (XEP-0198 after a death). */
  rebuilt = 0;
  /** Stored messages a session took that it had been given already (Session.recent): sent again by a resumed client and stored meanwhile. */
  storedResentDropped = 0;
}

export class Metrics {
  readonly xmpp = new ProtocolCounts();
  readonly sm = new SmCounts();
  readonly relay = new ProtocolCounts();
  /** Messages nobody online could take, kept in the offline store. */
  offlineStored = 0;
  /** Times this worker saw the cluster's membership change (a worker joined, restarted or left). */
  membershipChanges = 0;
  /**
   * Plain TCP connections handed to their user's owner worker after SASL (cluster.handoff): `out` sent
   * from here, `in` adopted here, `stayed` offered and kept here (the owner could not take it).
   */
  readonly handoffs = { out: 0, in: 0, stayed: 0 };
  /** Of `handoffs.out`, the moves that went straight to the owner worker (the host's HandoffPort counts them). */
  handoffsDirect: () => number = () => 0;
  private readonly kinds = new Map<string, ConnCounts>();
  /** Which kind each accepted connection is: read once per session start, never per message. */
  private readonly kindOf = new WeakMap<object, ConnCounts>();

  /** The counts of one listener kind; listeners of the same kind share them. */
  listener(protocol: string, transport: string): ConnCounts {
    const key = `${protocol}/${transport}`;
    let c = this.kinds.get(key);
    if (c === undefined) {
      c = new ConnCounts(protocol, transport);
      this.kinds.set(key, c);
    }
    return c;
  }

  /** Every listener kind seen so far. */
  listenerKinds(): IterableIterator<ConnCounts> {
    return this.kinds.values();
  }

  /** A listener accepted `conn`. */
  accepted(conn: object, kind: ConnCounts): void {
    kind.opened++;
    this.kindOf.set(conn, kind);
  }

  /** The kind `conn` was accepted as; a connection made elsewhere (a test, a benchmark) counts as transport "other". */
  kindOfConn(conn: object, protocol: string): ConnCounts {
    return this.kindOf.get(conn) ?? this.listener(protocol, "other");
  }
}
