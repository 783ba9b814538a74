import { Counter, Gauge, Registry } from "prom-client";
import { processMetrics } from "./process-metrics.js";
import type { Server } from "../server/server.js";
import { NatsBus } from "../cluster/nats-bus.js";
import { intakeStats } from "../transport/intake.js";

type Labels = Record<string, string>;
type Read = () => number | [Labels, number][];

/*
 * Every value here is read when Prometheus scrapes, from the plain fields the
 * worker increments inline (src/metrics/metrics.ts, ProxyStats) or from state
 * it keeps anyway (pending requests, bytes queued): prom-client is never
 * called on the forwarding path. docs/operations.md lists each metric.
 */

function entries(read: Read): [Labels, number][] {
  const v = read();
  return typeof v === "number" ? [[{}, v]] : v;
}

/** A counter whose total is one of our fields. */
function counter(reg: Registry, name: string, help: string, labelNames: string[], read: Read): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [reg],
    collect() {
      this.reset();
      for (const [labels, v] of entries(read)) this.inc(labels, v);
    },
  });
}

function gauge(reg: Registry, name: string, help: string, labelNames: string[], read: Read): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [reg],
    collect() {
      this.reset();
      for (const [labels, v] of entries(read)) this.set(labels, v);
    },
  });
}

const KIND = ["protocol", "transport"];

/** How long a scrape waits for the bus round trip before it reports NaN (NATS unreachable: nats.js holds the ping until it reconnects). */
const RTT_WAIT_MS = 1000;

/** The cluster as this worker sees it (docs/cluster.md): membership, bus traffic, and custody of messages in flight. */
function clusterMetrics(reg: Registry, server: Server): void {
  const bus = server.bus;
  const s = server.proxy.stats;
  counter(reg, "switchboard_cluster_membership_changes_total", "Membership changes this worker saw: a worker joined, restarted or left.", [], () => server.metrics.membershipChanges);
  counter(reg, "switchboard_cluster_handoffs_total", "Plain TCP connections handed to their user's owner worker after SASL (cluster.handoff): out from here, in to here, stayed here (the owner could not take it).", ["direction"], () => [
    [{ direction: "out" }, server.metrics.handoffs.out],
    [{ direction: "in" }, server.metrics.handoffs.in],
    [{ direction: "stayed" }, server.metrics.handoffs.stayed],
  ]);
  counter(reg, "switchboard_cluster_handoffs_direct_total", "Of the connections handed out from here, those passed straight to the owner worker (the optional addon's descriptor channel) rather than through the host's primary.", [], () => server.metrics.handoffsDirect());
  // One ring lookup per session, at scrape time only: the share on their owner is this over switchboard_sessions.
  gauge(reg, "switchboard_cluster_sessions_on_owner", "Sessions on this worker whose user this worker owns now (with cluster.handoff, plain TCP logins move here; the others stay where the primary put them).", [], () => {
    let n = 0;
    for (const s of server.proxy.sessions.values()) if (server.proxy.ownerOf(s.bare) === bus.workerId) n++;
    return n;
  });
  gauge(reg, "switchboard_cluster_hosts", "Hosts on the global ring as this worker sees them.", [], () => Object.keys(bus.membership().hosts).length);
  counter(reg, "switchboard_cluster_bus_messages_total", "Bus messages to other workers (sent) and from them (received); NATS batches several per publish.", ["direction"], () => [
    [{ direction: "sent" }, bus.sent],
    [{ direction: "received" }, bus.received],
  ]);
  const custody = server.proxy.custody;
  counter(reg, "switchboard_cluster_messages_rerouted_total", "Held messages routed again to their recipient's current owner after a membership change or a missing confirmation.", [], () => custody.rerouted);
  gauge(reg, "switchboard_cluster_messages_held", "Messages this worker sent over the bus and holds until the worker that settles them confirms (custody).", [], () => custody.size);
  counter(reg, "switchboard_cluster_duplicates_suppressed_total", "Held messages that arrived again where they were settled already, and were dropped by their receipt.", [], () => s.duplicates);
  counter(reg, "switchboard_cluster_custody_slow_total", "Held messages whose confirmation timed out at a worker that had answered for nothing sent after them: waited for (it was probed) instead of routed again.", [], () => custody.waited);
  gauge(reg, "switchboard_cluster_custody_waiting", "Held messages waiting for a slow worker's answer (custody: slow, not lost).", [], () => custody.waiting);
  counter(reg, "switchboard_cluster_messages_given_up_total", "Held messages routed maxTries times without a confirmation: their senders got an error.", [], () => custody.givenUp);
  counter(reg, "switchboard_cluster_messages_unheld_total", "Messages sent over the bus without custody because the worker held maxHeld already.", [], () => custody.unheld);
  counter(reg, "switchboard_cluster_riding_voided_total", "Deliveries taken back before they were written because the bus batch their confirmations rode went out a heartbeat late (a stop or a blocked loop): their custodians route them again.", [], () => s.ridingVoided);
  counter(reg, "switchboard_cluster_from_departed_marked_total", "Held messages read in the custody of a worker this one had taken off the ring, or took back within a heal window (it was stopped, perhaps inside a publish): marked as resends, dropped by a recipient that has them already.", [], () => s.fromDeparted);
  counter(reg, "switchboard_cluster_stale_messages_dropped_total", "Held messages read right after this worker was stopped past the others' patience, dropped: their custodians sent them again.", [], () => s.staleDropped);
  counter(reg, "switchboard_cluster_stored_retaken_total", "Live sessions told, as they bound here again, to take the messages this owner stored for their user while they were not bound (cut off, stopped, slow to bind after a ring change).", [], () => s.storedRetaken);
  counter(reg, "switchboard_cluster_misrouted_total", "Envelopes that came here as to their user's owner while this worker's ring named another: held for the rings to agree, and those sent on to the owner this ring names.", ["outcome"], () => [
    [{ outcome: "held" }, server.proxy.misrouted.taken],
    [{ outcome: "passed_on" }, server.proxy.misrouted.passedOn],
  ]);
  const rb = server.proxy.rebinder;
  counter(reg, "switchboard_cluster_rebinds_total", "Sessions of this worker bound again at their owner after a membership change (a join, a departure, a resync), and the bus messages that carried them.", ["unit"], () => [
    [{ unit: "sessions" }, rb.bound],
    [{ unit: "messages" }, rb.messages],
  ]);
  counter(reg, "switchboard_cluster_messages_received_by_clients_total", "Held messages settled by a client's count after its session's worker died (XEP-0198 h on a failed resumption).", [], () => custody.receivedByClients);
  if (bus instanceof NatsBus) {
    counter(reg, "switchboard_cluster_renewals_total", "Generations this worker renewed after a NATS reconnect: every peer resynced with it.", [], () => bus.renewals);
    counter(reg, "switchboard_cluster_resyncs_total", "Peers this worker resynced with (welcomed, or welcomed by): both dropped the other's bindings and bound theirs again.", [], () => bus.resyncs);
    counter(reg, "switchboard_cluster_late_heartbeats_total", "Heartbeat timers of this worker that fired late past the expiry window (stalls); none renews towards every peer.", [], () => bus.lateBeats);
    new Gauge({
      name: "switchboard_cluster_bus_rtt_seconds",
      help: "Round trip from this worker to its NATS server and back, measured at the scrape; NaN when it did not come back within 1 s.",
      registers: [reg],
      async collect() {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<number>((resolve) => (timer = setTimeout(() => resolve(NaN), RTT_WAIT_MS)));
        const ms = await Promise.race([bus.rtt().catch(() => NaN), late]);
        clearTimeout(timer);
        this.set(ms / 1000);
      },
    });
  }
}

/**
 * The metrics of one worker: every series carries `worker` (its id), so a
 * host's primary can put its workers' series side by side (cluster.ts).
 */
export function workerRegistry(server: Server): Registry {
  const reg = new Registry();
  reg.setDefaultLabels({ worker: server.bus.workerId });
  // process_* and nodejs_*: CPU, memory, descriptors, GC, and the event-loop delay
  // (nodejs_eventloop_lag_*: perf_hooks.monitorEventLoopDelay, reset at each scrape);
  // none that walks every socket on the event loop (process-metrics.ts).
  processMetrics(reg);

  const m = server.metrics;
  const byKind = (f: (k: { opened: number; closed: number; slowConsumers: number; deadPeers: number; sessionsStarted: number; sessionsEnded: number }) => number) => (): [Labels, number][] =>
    [...m.listenerKinds()].map((k) => [{ protocol: k.protocol, transport: k.transport }, f(k)]);
  counter(reg, "switchboard_connections_accepted_total", "Client connections accepted, by listener protocol and transport.", KIND, byKind((k) => k.opened));
  gauge(reg, "switchboard_connections", "Client connections open now (authenticated or not).", KIND, byKind((k) => k.opened - k.closed));
  counter(reg, "switchboard_sessions_started_total", "Sessions started: authenticated and bound (relay: auth accepted; XMPP: resource bound).", KIND, byKind((k) => k.sessionsStarted));
  gauge(reg, "switchboard_sessions", "Sessions open now.", KIND, byKind((k) => k.sessionsStarted - k.sessionsEnded));
  counter(reg, "switchboard_slow_consumers_total", "Connections cut because the client did not read (limits.maxOutboundBytes).", KIND, byKind((k) => k.slowConsumers));
  counter(reg, "switchboard_intake_deferred_reads_total", "Client reads kept for a later event-loop turn: the turn had used limits.maxTurnMs, or a host link's peer was behind (backpressure).", [], () => intakeStats.deferred);
  gauge(reg, "switchboard_intake_kept_bytes", "Bytes of client reads kept for a later turn now (at most one read per connection that stopped reading).", [], () => intakeStats.kept);
  counter(reg, "switchboard_intake_holds_total", "Times a host link's peer fell 1 MiB behind and this worker stopped reading its clients until it caught up.", [], () => intakeStats.holds);
  counter(reg, "switchboard_dead_peers_total", "Connections dropped because the client went silent and did not answer a ping (pingAfterMs, pingTimeoutMs).", KIND, byKind((k) => k.deadPeers));
  gauge(reg, "switchboard_outbound_queued_bytes", "Bytes written to clients and not yet taken by the kernel, summed over connections.", KIND, () => {
    const sums = new Map<string, [Labels, number]>();
    for (const l of server.listeners) {
      const key = `${l.config.protocol}/${l.config.transport}`;
      const e = sums.get(key) ?? [{ protocol: l.config.protocol, transport: l.config.transport }, 0];
      e[1] += l.queuedBytes();
      sums.set(key, e);
    }
    return [...sums.values()];
  });

  const dir = (c: { in: number; out: number }) => (): [Labels, number][] => [
    [{ direction: "in" }, c.in],
    [{ direction: "out" }, c.out],
  ];
  counter(reg, "switchboard_xmpp_stanzas_total", "XMPP top-level elements read from and written to clients (stanzas, and SASL elements while negotiating; not XEP-0198 acks).", ["direction"], dir(m.xmpp));
  gauge(reg, "switchboard_xmpp_sm_unacked_stanzas", "XEP-0198: stanzas written to clients with stream management on and not yet acknowledged (suspended sessions included), summed over sessions.", [], () => m.sm.unacked);
  counter(reg, "switchboard_relay_frames_total", "Relay frames read from and written to clients.", ["direction"], dir(m.relay));
  counter(reg, "switchboard_auth_failures_total", "Logins refused: credentials checked and wrong.", ["protocol"], () => [
    [{ protocol: "xmpp" }, m.xmpp.authFailures],
    [{ protocol: "relay" }, m.relay.authFailures],
  ]);

  const s = server.proxy.stats;
  counter(reg, "switchboard_requests_total", "Requests (XMPP iq get/set between users, relay req) submitted by this worker's sessions.", [], () => s.requests);
  gauge(reg, "switchboard_requests_pending", "Requests forwarded by this worker and waiting for their answer.", [], () => server.proxy.pending.size);
  counter(reg, "switchboard_requests_answered_total", "Answers (results or errors) that reached their requester on this worker.", [], () => s.answered);
  counter(reg, "switchboard_requests_timed_out_total", "Requests whose timeout passed without an answer; the requester got a timeout error.", [], () => s.timeouts);
  counter(reg, "switchboard_requests_unavailable_total", "Requests failed at once because nobody online could take them (counted by the recipient's owner).", [], () => s.unavailable);
  counter(reg, "switchboard_requests_rate_limited_total", "Requests refused because their session had limits.maxPendingPerSession waiting.", [], () => s.rateLimited);
  counter(reg, "switchboard_answers_total", "Answers submitted by this worker's sessions.", [], () => s.responses);
  counter(reg, "switchboard_answers_late_total", "Answers that found no pending request (after its timeout, or never asked): dropped.", [], () => s.late);
  counter(reg, "switchboard_answers_forged_total", "Answers from someone other than the request's recipient: dropped.", [], () => s.forged);
  counter(reg, "switchboard_messages_total", "Messages and presence submitted by this worker's sessions.", [], () => s.messages);
  counter(reg, "switchboard_messages_undeliverable_total", "Presence, headlines and errors nobody could take: dropped, as the protocols say.", [], () => s.undeliverable);
  counter(reg, "switchboard_messages_bounced_total", "Messages nobody could take or store, returned to their sender with an error.", [], () => s.bounced);
  const ho = server.proxy.handovers.stats;
  counter(reg, "switchboard_sessions_moved_total", "Detached sessions (XEP-0198) that moved between this host's workers: out of this worker (claimed or parked) and into it.", ["direction"], () => [
    [{ direction: "out" }, ho.movedOut],
    [{ direction: "in" }, ho.movedIn],
  ]);
  counter(reg, "switchboard_session_claims_total", "Resumptions this worker asked the host's other workers for; `miss`: nobody had the session.", ["result"], () => [
    [{ result: "asked" }, ho.claims],
    [{ result: "miss" }, ho.claimMisses],
  ]);
  const rec = server.proxy.records;
  gauge(reg, "switchboard_resume_records_kept", "XEP-0198 resume records this worker keeps for sessions of other workers (and of dead ones, until their window passes).", [], () => rec.size);
  counter(reg, "switchboard_resume_recalls_total", "Resumptions that found no live session on this host and asked the keepers; `found`: a keeper had its record; `rebuilt`: the session was rebuilt here after its worker's death.", ["result"], () => [
    [{ result: "asked" }, rec.stats.recalls],
    [{ result: "found" }, rec.stats.found],
    [{ result: "rebuilt" }, m.sm.rebuilt],
  ]);
  counter(reg, "switchboard_resent_duplicates_dropped_total", "Messages a client sent again right after resuming, or their custodian routed again, that their recipient's session had been given already (same sender and id): dropped on delivery, when taken from offline storage, or not stored offline a second time.", [], () => server.proxy.stats.resentDropped + m.sm.storedResentDropped);
  counter(reg, "switchboard_resume_records_orphaned_total", "Resume records this worker kept for a worker that died; `expired`: their window passed before a resumption took them.", ["result"], () => [
    [{ result: "orphaned" }, rec.stats.orphaned],
    [{ result: "expired" }, rec.stats.expired],
  ]);
  counter(reg, "switchboard_resume_copies_total", "Messages written to resumable sessions that only this worker held, copied to the session's record keeper (`copied`); copies this worker kept that it routed again when their record's window passed (`routed`).", ["result"], () => [
    [{ result: "copied" }, rec.stats.copied],
    [{ result: "routed" }, rec.stats.copiesRouted],
  ]);
  counter(reg, "switchboard_message_copies_total", "Copies made for a user's other sessions that want them (XMPP carbons): one per message and user, however many sessions take it.", [], () => s.copies);
  counter(reg, "switchboard_offline_messages_stored_total", "Messages for offline users kept in the offline store.", [], () => m.offlineStored);
  gauge(reg, "switchboard_offline_write_queue", "Offline messages queued in this worker and not yet written to the store.", [], () => server.offline.size);
  counter(reg, "switchboard_offline_write_failures_total", "Offline write batches the store failed (down, timed out): their messages were bounced to their senders.", [], () => server.offline.failedBatches);

  counter(reg, "switchboard_cluster_bus_dropped_total", "Bus messages dropped: to a worker that is not there (local bus) or unreadable (NATS).", [], () => server.bus.dropped);
  gauge(reg, "switchboard_cluster_bus_connected", "1 when the cluster bus can reach the other workers (NATS: connected to a server).", [], () => (server.bus.connected ? 1 : 0));
  gauge(reg, "switchboard_cluster_workers", "Workers on the ring as this worker sees them (itself included).", [], () => {
    let n = 0;
    for (const ids of Object.values(server.bus.membership().hosts)) n += ids.length;
    return n;
  });
  clusterMetrics(reg, server);
  return reg;
}
