import { performance } from "node:perf_hooks";
import type { Msg, NatsConnection } from "nats";
import type { Membership } from "../router/router.js";
import type { Logger } from "../log/logger.js";

/*
 * What `switchboard cluster status` and `switchboard sessions` ask the live
 * cluster (docs/cluster.md). The CLI publishes one request on
 * `<subject>.ops.status` or `<subject>.ops.sessions` with a reply inbox;
 * every worker subscribed there answers into that inbox, and the CLI gathers
 * answers until every member that any answer names has answered, or its
 * timeout passes. Plain JSON on subjects of their own: nothing here touches
 * the bus's envelope traffic or its wire format, and the bus stays
 * protocol-neutral — what a session is comes from the OpsSource the server
 * gives it.
 */

/** Bumped when an answer's shape changes incompatibly; the CLI says so instead of misreading it. */
export const OPS_VERSION = 1;

export const opsSubject = (prefix: string, what: "status" | "sessions"): string => `${prefix}.ops.${what}`;
/** Each worker answers pings from its peers here: the worker-to-worker round trip in `cluster status`. */
export const echoSubject = (prefix: string, workerId: string): string => `${prefix}.ops.echo.${workerId}`;

/** One session as an operator sees it. */
export interface OpsSession {
  /** The full address (XMPP: user@domain/resource). */
  jid: string;
  protocol: string;
  /** When its connection came to this worker (ms since the epoch). */
  since: number;
  /** Takes messages to the bare address (XMPP: initial presence sent). */
  available: boolean;
  /** Its client may resume it after a drop (XEP-0198 resumption enabled). */
  resumable: boolean;
  /** Its connection is gone and it waits to be resumed. */
  detached: boolean;
}

/** What the server tells the bus about itself, the protocols' sessions in neutral terms. */
export interface OpsSource {
  counts(): { sessions: number; detached: number };
  /** Sessions matching `match` (a full or bare address; null: all). */
  sessions(match: string | null): OpsSession[];
}

export interface StatusRequest {
  /** How long each worker waits for a peer's echo before it reports the peer as not answering. */
  pingMs?: number;
}

export interface SessionsRequest {
  match?: string | null;
}

export interface WorkerStatus {
  v: number;
  worker: string;
  host: string;
  pid: number;
  /** ms since the epoch. */
  startedAt: number;
  /** The membership this worker routes by. */
  membership: Membership;
  sessions: number;
  detached: number;
  /** worker → nats-server → worker (ms); null if it did not answer. */
  serverRttMs: number | null;
  /** worker → peer worker → worker over NATS (ms) by peer id; null: no answer within pingMs. */
  peersRttMs: Record<string, number | null>;
}

export interface SessionsPart {
  v: number;
  worker: string;
  host: string;
  /** With startedAt, tells two processes apart that claim one worker id (a duplicate start). */
  pid: number;
  startedAt: number;
  /** Parts of one worker's answer are numbered from 0; the last says so. */
  part: number;
  last: boolean;
  /** Part 0: the workers this one routes by, so that the asker knows whom to wait for. */
  members?: string[];
  sessions: OpsSession[];
}

/** Sessions per answer message: ~150 bytes each keeps a part far below NATS's default max_payload (1 MiB). */
const PART_SESSIONS = 2000;
const DEFAULT_PING_MS = 500;
const EMPTY = new Uint8Array(0);

/** The worker's side: subscribed for the life of the bus's NATS connection. */
export class OpsResponder {
  private readonly startedAt = Date.now();

  constructor(
    private readonly nc: NatsConnection,
    private readonly self: { subject: string; workerId: string; hostAddress: string },
    private readonly membership: () => Membership,
    private readonly source: OpsSource,
    private readonly log: Logger | null,
  ) {
    const p = self.subject;
    nc.subscribe(echoSubject(p, self.workerId), { callback: (_e, m) => m.respond(EMPTY) });
    nc.subscribe(opsSubject(p, "status"), { callback: (_e, m) => void this.status(m).catch((e) => this.failed("status", e)) });
    nc.subscribe(opsSubject(p, "sessions"), { callback: (_e, m) => void this.sessions(m).catch((e) => this.failed("sessions", e)) });
  }

  private failed(what: string, e: unknown): void {
    this.log?.warn(`cluster ${what} request failed`, { error: (e as Error).message });
  }

  private async status(m: Msg): Promise<void> {
    if (!m.reply) return;
    const req = parse<StatusRequest>(m.data);
    const pingMs = typeof req.pingMs === "number" && req.pingMs > 0 ? Math.min(req.pingMs, 10_000) : DEFAULT_PING_MS;
    const membership = this.membership();
    const peers = Object.values(membership.hosts)
      .flat()
      .filter((w) => w !== this.self.workerId);
    const [serverRttMs, rtts] = await Promise.all([
      serverRtt(this.nc).then(
        (ms) => ms,
        () => null,
      ),
      Promise.all(peers.map((w) => this.ping(w, pingMs))),
    ]);
    const c = this.source.counts();
    const answer: WorkerStatus = {
      v: OPS_VERSION,
      worker: this.self.workerId,
      host: this.self.hostAddress,
      pid: process.pid,
      startedAt: this.startedAt,
      membership,
      sessions: c.sessions,
      detached: c.detached,
      serverRttMs,
      peersRttMs: Object.fromEntries(peers.map((w, i) => [w, rtts[i]])),
    };
    this.reply(m.reply, answer);
  }

  private async ping(worker: string, ms: number): Promise<number | null> {
    const t0 = performance.now();
    try {
      await this.nc.request(echoSubject(this.self.subject, worker), EMPTY, { timeout: ms });
      return Math.round((performance.now() - t0) * 1000) / 1000;
    } catch {
      return null;
    }
  }

  /**
   * All of this worker's sessions in parts, one part per event-loop turn: a
   * worker of 20,000 sessions never spends one long turn on an operator's question.
   */
  private async sessions(m: Msg): Promise<void> {
    if (!m.reply) return;
    const req = parse<SessionsRequest>(m.data);
    const all = this.source.sessions(typeof req.match === "string" && req.match !== "" ? req.match : null);
    const members = Object.values(this.membership().hosts).flat();
    let part = 0;
    for (let at = 0; ; at += PART_SESSIONS) {
      const last = at + PART_SESSIONS >= all.length;
      const answer: SessionsPart = { v: OPS_VERSION, worker: this.self.workerId, host: this.self.hostAddress, pid: process.pid, startedAt: this.startedAt, part, last, ...(part === 0 ? { members } : {}), sessions: all.slice(at, at + PART_SESSIONS) };
      part++;
      this.reply(m.reply, answer);
      if (last) return;
      await new Promise((r) => setImmediate(r));
    }
  }

  private reply(subject: string, answer: object): void {
    if (!this.nc.isClosed()) this.nc.publish(subject, Buffer.from(JSON.stringify(answer)));
  }
}

/** A PING to the NATS server and its PONG, in ms to the µs (nats.js's own rtt() rounds to whole ms). */
export async function serverRtt(nc: NatsConnection): Promise<number> {
  const t0 = performance.now();
  await nc.flush();
  return Math.round((performance.now() - t0) * 1000) / 1000;
}

/** A request's JSON; anything unreadable counts as the empty request (the answer costs the asker nothing more). */
function parse<T extends object>(data: Uint8Array): Partial<T> {
  if (data.length === 0) return {};
  try {
    const v = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf8")) as unknown;
    return typeof v === "object" && v !== null ? (v as Partial<T>) : {};
  } catch {
    return {};
  }
}
