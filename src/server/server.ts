import { availableParallelism } from "node:os";
import { performance } from "node:perf_hooks";
import { WriterThread } from "../transport/writer-thread.js";
import { configureIntake } from "../transport/intake.js";
import { beforeClientWrites, flushClientWrites } from "../transport/stream-conn.js";
import type { Config, Protocol } from "../config/config.js";
import { createLogger, type Logger } from "../log/logger.js";
import type { Storage } from "../store/store.js";
import { openStorage } from "../store/open.js";
import { OfflineWriter } from "../store/offline-writer.js";
import { ArchiveWriter } from "../store/archive-writer.js";
import { archivedText, renderArchived, RENDER_MODULE } from "../xmpp/modules/mam.js";
import { Authenticator } from "../auth/authenticator.js";
import { LocalHub } from "../cluster/local-bus.js";
import type { ClusterBus } from "../cluster/bus.js";
import { ProxyDaemon } from "../proxy/proxy-daemon.js";
import type { HandoffPort, SessionContext } from "../session/context.js";
import { listen, type Listening } from "../transport/listener.js";
import type { Conn } from "../transport/conn.js";
import { RelaySession } from "../relay/relay-session.js";
import { XmppFrontEnd } from "../xmpp/front-end.js";
import { NatsBus, workerIdOf } from "../cluster/nats-bus.js";
import type { PayloadCodecs } from "../envelope/payload-codec.js";
import { xmppPayloadCodec } from "../xmpp/payload-codec.js";
import { relayPayloadCodec } from "../relay/payload-codec.js";
import type { ListenerConfig } from "../config/config.js";
import { hostMetaHandler } from "../xmpp/host-meta.js";
import { Metrics } from "../metrics/metrics.js";
import { opsSource } from "./ops-source.js";
import { UploadHttp } from "../upload/http.js";
import { loadUploadKey } from "../upload/slot.js";

/** Each listener protocol's front end: gives the handler that takes a fresh connection and owns it from then on. */
type FrontEnds = Record<Protocol, (l: ListenerConfig) => ((conn: Conn) => void) | null>;

export interface ServerOptions {
  log?: Logger;
  /** Join an existing in-process hub (tests of several workers); default: a hub of one. */
  hub?: LocalHub;
  workerId?: string;
  /** With bus nats: how many workers to wait for before listening (a host under node:cluster knows). */
  expectWorkers?: number;
  /** The host primary applied the store's migrations: only check them (PostgreSQL). */
  migrated?: boolean;
  /** The cluster refused this worker after it joined (other ring parameters, a duplicate id): it must stop. Default: logged only. */
  onRefused?: (reason: string) => void;
  /** A host's primary binds the listeners' ports and its workers accept from them (src/host/balancer.ts): bind none here. */
  handed?: boolean;
  /** With bus nats: the host's link directory and this worker's index (src/cluster/host-links.ts); none: all through NATS. */
  links?: { dir: string; index: number };
  /** upload.enabled: the URL of the host's upload listener, which the primary runs; none: this server runs its own. */
  uploadUrl?: string;
  /** A host of several workers with cluster.handoff on: connections move to their user's owner worker (src/host/handoff.ts). */
  handoff?: HandoffPort;
}

/**
 * A host link holding this much for a peer that took nothing for three heartbeats (the window after which a silent
 * worker leaves the ring) is dropped: nats-server's default for a slow consumer. A peer that reads, however slowly,
 * is waited for up to HARD_FACTOR times this (src/cluster/host-links.ts).
 */
const LINK_MAX_QUEUED = 64 * 1024 * 1024;
/**
 * With a turn budget, a peer this far behind on a host link holds this worker's client intake until it has all but
 * a quarter (backpressure). About half a second of a loaded worker's crossings: past it a longer queue only adds
 * latency, and messages held in custody long enough to outlive scavenges (two workers over their budget: drained
 * 16,457–18,047 msg/s at 1 MiB against 15,360–17,377 at 16 MiB, p50 0.7–1.9 s against 1.3–3.1 s; docs/benchmarks.md,
 * session 31).
 */
const LINK_HOLD_BYTES = 1024 * 1024;

/** Every protocol's payloads, for a bus that crosses processes. */
const CODECS: PayloadCodecs = { xmpp: xmppPayloadCodec, relay: relayPayloadCodec };

async function openBus(config: Config, opts: ServerOptions, log: Logger): Promise<ClusterBus> {
  const c = config.cluster;
  const workerId = opts.workerId ?? (c.bus === "nats" ? workerIdOf(c.hostAddress, 0) : "w0");
  if (c.bus === "local") return (opts.hub ?? new LocalHub(c.vnodes)).join(workerId, c.hostAddress);
  const holdBytes = config.limits.maxTurnMs > 0 ? LINK_HOLD_BYTES : undefined;
  const links = opts.links === undefined ? undefined : { ...opts.links, maxQueuedBytes: LINK_MAX_QUEUED, stallMs: 3 * c.nats.heartbeatMs, holdBytes };
  return NatsBus.connect({ ...c.nats, vnodes: c.vnodes, workerId, hostAddress: c.hostAddress, onRefuse: opts.onRefused, links, coalesceMs: c.coalesceMs }, CODECS, log);
}

/**
 * The hook before client output is written (beforeClientWrites): the turn's bus batch is published first, or, within
 * cluster.coalesceMs of the last publish, the output waits for it (false). In a long turn (a worker reading a backlog
 * from every ready socket at once) the window's timer cannot fire until the turn ends: a busy turn's flush
 * (markDirty) publishes once the window has passed rather than hold the turn's batch and output to its end — seconds
 * later under overload, its riding deliveries then voided as if the worker had been stopped.
 */
export function busBeforeClientWrites(bus: ClusterBus, force: boolean): boolean {
  if (bus.pending !== true) return true;
  if (bus.coalescing === true && !force && bus.windowOpen !== false) return false;
  bus.flushNow!();
  return true;
}

/** The composition root: one worker with its store, core, and listeners. */
export class Server {
  private constructor(
    readonly config: Config,
    readonly log: Logger,
    /** Accounts, and the protocols' stores beside them (SQLite or PostgreSQL). */
    readonly store: Storage,
    /** Offline messages on their way to the store, written in batches. */
    readonly offline: OfflineWriter,
    /** Messages on their way to the archives (XEP-0313); null: archives are off. */
    readonly archive: ArchiveWriter | null,
    readonly auth: Authenticator,
    readonly bus: ClusterBus,
    readonly proxy: ProxyDaemon,
    readonly listeners: Listening[],
    /** This worker's counters; src/admin/ reads them. */
    readonly metrics: Metrics,
    /** The XEP-0363 HTTP listener when this process runs the host's (upload.enabled, no primary); null: none here. */
    readonly upload: UploadHttp | null,
  ) {}

  private stopping: Promise<void> | null = null;
  /** Takes this worker's bus off the hooks before client writes (beforeClientWrites). */
  private unhookWrites: () => void = () => {};

  static async start(config: Config, opts: ServerOptions = {}): Promise<Server> {
    const log = opts.log ?? createLogger(config.log);
    const store = await openStorage(config.storage, log, { migrate: opts.migrated !== true });
    const auth = new Authenticator(store, config.auth.scramIterations, config.auth.tokenSecret);
    let bus: ClusterBus;
    try {
      bus = await openBus(config, opts, log);
    } catch (e) {
      await store.close();
      throw e;
    }
    const { timeouts, limits } = config;
    configureIntake(limits.maxTurnMs);
    const proxy = new ProxyDaemon(bus, {
      timeouts: { relay: timeouts.relay, xmpp: timeouts.xmpp },
      sweepIntervalMs: timeouts.sweepIntervalMs,
      maxPendingPerSession: limits.maxPendingPerSession,
      maxInboundPerSession: limits.maxInboundPerSession,
      // Workers learn of a membership change up to a heartbeat apart: held messages travel again after one.
      custody: { ...config.cluster.custody, rerouteAfterMs: config.cluster.bus === "nats" ? config.cluster.nats.heartbeatMs : 0 },
      log,
      holdAfterExpiryMs: config.cluster.holdAfterExpiryMs,
    });
    // A turn's bus batch is published before its client output is written: what a client is shown never leaves
    // ahead of the bus messages about it — resume-record copies and counts: a worker killed in between had shown a
    // message whose sender's count never reached the keeper, and the sender's client, resumed, sent it again.
    // With cluster.coalesceMs the batch waits for its timer, and the client output waits with it (written after
    // the publish): both leave at most once per window, fewer system calls and wake-ups per message.
    const unhook = bus.flushNow === undefined ? () => {} : beforeClientWrites((force) => busBeforeClientWrites(bus, force));
    bus.afterPublish?.(flushClientWrites);
    const metrics = new Metrics();
    // Membership changes are counted for the metrics; `switchboard cluster status` asks the bus (NATS only).
    bus.onMembership(() => metrics.membershipChanges++);
    if (bus instanceof NatsBus) bus.serveOps(opsSource(proxy.sessions));
    const ctx: SessionContext = { core: proxy, auth, config, log, metrics, debug: log.isDebugEnabled(), handoff: opts.handoff ?? null };
    const port = opts.handoff;
    if (port !== undefined) metrics.handoffsDirect = () => port.directMoved ?? 0;
    // Made even without an xmpp listener: it is also the offline store for messages from other protocols.
    const w = config.storage.offlineWrites;
    const offline = new OfflineWriter(store.xmpp, { cap: config.xmpp.offlineQueueMax, maxQueued: w.maxQueued, maxBatch: w.maxBatch }, log);
    // XEP-0313: the archives of the users this worker owns, written in batches like offline messages.
    const m = config.xmpp.mam;
    const archive = m.enabled
      ? new ArchiveWriter(
          store.archive,
          {
            defaultMode: m.defaultMode,
            maxQueued: m.maxQueued,
            maxBatch: m.maxBatch,
            prefsCacheSize: m.prefsCacheSize,
            gatherMs: m.gatherMs,
            retentionDays: m.retentionDays,
            render: renderArchived,
            text: archivedText,
            renderModule: RENDER_MODULE,
            inRoster: async (user, jid) => (await store.xmpp.rosterItem(user, jid)) !== undefined,
          },
          log,
        )
      : null;
    // XEP-0363: slots are signed here and checked by the host's listener (this process's, or the primary's).
    let upload: UploadHttp | null = null;
    let uploadService = null;
    if (config.upload.enabled) {
      try {
        const key = loadUploadKey(config.upload.secret, config.upload.path!);
        if (opts.uploadUrl === undefined) upload = await UploadHttp.start(config.upload, key, config.domain, log);
        uploadService = { cfg: config.upload, key, baseUrl: opts.uploadUrl ?? upload!.baseUrl };
      } catch (e) {
        unhook();
        await bus.close();
        await store.close();
        throw e;
      }
    }
    const xmpp = new XmppFrontEnd(ctx, store, store.xmpp, offline, store.profile, store.pep, archive === null ? null : { store: store.archive, writer: archive, defaultMode: m.defaultMode, maxPageSize: m.maxPageSize }, uploadService, store.fast, store.muc, config.muc.mam.enabled ? store.archive : null, store.mucDirectory);
    proxy.offline = xmpp.offlineSink;
    proxy.archiveSink = xmpp.archiveSink;
    // A login's barrier (and a MAM query's) waits for what its owner queued: offline messages, and archived ones.
    proxy.offlineFlushed = archive === null ? () => offline.flushed() : () => Promise.all([offline.flushed(), archive.flushed()]).then(() => undefined);
    const FRONT_ENDS: FrontEnds = {
      relay: () => (conn) => void new RelaySession(conn, ctx),
      xmpp: (l) => xmpp.forListener(l),
      component: () => xmpp.forComponents(),
    };

    // The writer thread where it can run, else Node's own writes; the log says which (docs/operations.md).
    const { writer, path: writePath } = WriterThread.choose(config.io.writerThread, config.cluster.workers === 0 ? availableParallelism() : config.cluster.workers);
    log.info(`socket writes: ${writePath}`);
    log.info(`store: ${store.kind}`);
    const listeners: Listening[] = [];
    try {
      await bus.ready(opts.expectWorkers ?? 1);
      for (const l of config.listeners) {
        const frontEnd = FRONT_ENDS[l.protocol](l);
        if (frontEnd === null) throw new Error(`protocol ${l.protocol} is not available in this build`);
        let port = l.port;
        // RFC 7395's subprotocol and XEP-0156's discovery documents on an xmpp websocket listener.
        const web = l.protocol === "xmpp" && l.transport === "websocket" ? { subprotocol: "xmpp", onHttpRequest: hostMetaHandler(l, () => `${config.domain}:${port}`) } : {};
        const bound = await listen(l, {
          ...web,
          maxOutboundBytes: limits.maxOutboundBytes,
          maxMessageBytes: limits.maxFrameBytes,
          tcpKeepAliveMs: limits.tcpKeepAliveMs,
          onConnection: frontEnd,
          // Connections another worker hands over after SASL continue here (xmpp on plain TCP only).
          ...(l.protocol === "xmpp" && l.transport === "tcp" && opts.handoff !== undefined ? { onAdopted: xmpp.adopter(l) } : {}),
          writer,
          metrics,
          handed: opts.handed,
        });
        port = bound.port;
        listeners.push(bound);
        log.info(`listening`, { protocol: l.protocol, transport: l.transport, host: l.host, port: bound.port });
      }
    } catch (e) {
      unhook();
      await Promise.all(listeners.map((l) => l.close()));
      await upload?.close();
      await bus.close();
      await store.close();
      throw e;
    }
    proxy.start();
    // A host's worker says it once it listens (host.ts: the primary tells it), not before: a connect then is refused.
    if (!opts.handed) log.info("switchboard started", { domain: config.domain, worker: bus.workerId });
    const server = new Server(config, log, store, offline, archive, auth, bus, proxy, listeners, metrics, upload);
    server.unhookWrites = unhook;
    return server;
  }

  /** The bound port of the first listener with this protocol and transport. */
  port(protocol: Protocol, transport: string): number {
    const l = this.listeners.find((x) => x.config.protocol === protocol && x.config.transport === transport);
    if (l === undefined) throw new Error(`no ${protocol}/${transport} listener`);
    return l.port;
  }

  /** True from the first stop() on: /readyz says so while the listeners drain. */
  get draining(): boolean {
    return this.stopping !== null;
  }

  /**
   * Graceful drain (docs/operations.md, "Stopping and draining"), within config.drainTimeoutMs:
   * no new connections; pending requests of sessions here fail with `unavailable`; each connection
   * gets what is queued for it, then its protocol's shutdown notice, and ends. Whatever arrives for a
   * session already ended takes the undeliverable path (stored offline, bounced or failed). At the
   * deadline what is left is destroyed; the offline messages queued are written (or bounced while
   * the bus is still there); then the bus and the store close.
   */
  stop(): Promise<void> {
    this.stopping ??= this.drainAndStop();
    return this.stopping;
  }

  private async drainAndStop(): Promise<void> {
    const started = performance.now();
    const deadline = started + this.config.drainTimeoutMs;
    for (const l of this.listeners) l.stopAccepting();
    this.proxy.handovers.draining();
    // XEP-0045 rooms here move to their owners without this worker, before its occupants leave them.
    const roomsPlaced = this.proxy.drainServices();
    const failed = this.proxy.failPending();
    this.log.info("draining", { requestsFailed: failed, drainTimeoutMs: this.config.drainTimeoutMs });
    await Promise.all(this.listeners.map((l) => l.drain(deadline)));
    // Sessions waiting to be resumed (XEP-0198) end while the store is open: their unacknowledged messages are stored.
    for (const s of [...this.proxy.sessions.values()]) s.endIfSuspended();
    // Sessions parked on other workers: stay on the bus until their owners route to them there, to send on what still comes here.
    await this.proxy.handovers.settled(Math.max(0, Math.min(1000, deadline - performance.now())));
    await Promise.all(this.listeners.map((l) => l.close()));
    await this.upload?.close(deadline);
    this.archive?.close();
    await Promise.race([Promise.all([this.offline.flushed(), this.archive?.flushed()]), new Promise((r) => setTimeout(r, Math.max(0, deadline - performance.now())).unref())]);
    // Every worker knows where the rooms went, and what it sent here before is sent on: off the bus.
    await Promise.race([roomsPlaced, new Promise((r) => setTimeout(r, Math.max(0, deadline - performance.now())).unref())]);
    this.proxy.stop();
    this.unhookWrites();
    await this.bus.close();
    await this.store.close();
    this.log.info("switchboard stopped", { drainMs: Math.round(performance.now() - started) });
  }
}
