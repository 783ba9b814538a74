import { performance } from "node:perf_hooks";
import { connect, createInbox, type NatsConnection } from "nats";
import type { Config } from "../config/config.js";
import { OPS_VERSION, opsSubject, type OpsSession, type SessionsPart, type WorkerStatus } from "../cluster/ops.js";
import type { Membership } from "../router/router.js";
import { ringShares } from "../router/shares.js";
import { formatTable } from "./table.js";

/*
 * `switchboard cluster status` and `switchboard sessions` (docs/cluster.md):
 * read from the live cluster over NATS, the way the workers talk, with the
 * configuration's cluster.nats settings. One request, every worker answers;
 * the answers are gathered until every worker that any answer names as a
 * member has answered, or the timeout passes.
 *
 * A host with the local bus is one process and has no NATS to ask: the
 * commands say so rather than read the admin listener, which serves
 * Prometheus and probes to whoever can reach it and has no business listing
 * who is online; that host's session count is on its /metrics.
 */

export class OpsError extends Error {}

export interface OpsOptions {
  json: boolean;
  timeoutMs: number;
  /** sessions: only this full or bare address. */
  match: string | null;
}

/** `[--json] [--timeout MS] [JID]` after the command's name. */
export function parseOpsArgs(args: string[]): OpsOptions {
  const o: OpsOptions = { json: false, timeoutMs: 2000, match: null };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--json") o.json = true;
    else if (a === "--timeout" || a.startsWith("--timeout=")) {
      const v = Number(a === "--timeout" ? args[++i] : a.slice(10));
      if (!Number.isInteger(v) || v < 100 || v > 600_000) throw new OpsError("--timeout needs milliseconds (100 to 600000)");
      o.timeoutMs = v;
    } else if (!a.startsWith("-") && o.match === null) o.match = a;
    else throw new OpsError(`unexpected argument ${a}`);
  }
  return o;
}

async function connectTo(config: Config): Promise<NatsConnection> {
  const c = config.cluster;
  if (c.bus !== "nats")
    throw new OpsError(
      `this reads the live cluster over NATS, and the configuration has cluster.bus "${c.bus}": a single process with no cluster to ask. ` +
        `Its sessions are counted on the admin listener's /metrics (switchboard_sessions).`,
    );
  try {
    return await connect({ servers: c.nats.servers, name: "switchboard cli", maxReconnectAttempts: 0, timeout: 3000, noAsyncTraces: true });
  } catch (e) {
    throw new OpsError(`cannot reach NATS at ${c.nats.servers.join(", ")}: ${(e as Error).message}`);
  }
}

interface Gathered<T> {
  /** Answers by answering process (worker id, pid, start), in arrival order: two for one id are a duplicate start. */
  answers: Map<string, { at: number; parts: T[] }>;
  /** Workers some answer named as members that did not answer in time. */
  missing: string[];
}

/**
 * Publishes `request` on `subject` and reads answers from a fresh inbox until
 * `complete` says a worker is done and every named member is, or `timeoutMs`.
 */
async function gather<T extends { v: number; worker: string; pid: number; startedAt: number }>(
  nc: NatsConnection,
  subject: string,
  request: object,
  timeoutMs: number,
  members: (a: T) => readonly string[] | undefined,
  complete: (a: T) => boolean,
): Promise<Gathered<T>> {
  const inbox = createInbox();
  const sub = nc.subscribe(inbox);
  const answers = new Map<string, { at: number; parts: T[] }>();
  const named = new Set<string>();
  const done = new Set<string>();
  const timer = setTimeout(() => sub.unsubscribe(), timeoutMs);
  let grace: NodeJS.Timeout | undefined;
  const t0 = performance.now();
  nc.publish(subject, Buffer.from(JSON.stringify(request)), { reply: inbox });
  try {
    for await (const m of sub) {
      let a: T;
      try {
        a = JSON.parse(Buffer.from(m.data).toString("utf8")) as T;
      } catch {
        continue; // not an answer of ours
      }
      if (a.v !== OPS_VERSION) throw new OpsError(`worker ${a.worker} answers in version ${a.v} of this exchange; this CLI speaks ${OPS_VERSION}`);
      const key = `${a.worker} ${a.pid} ${a.startedAt}`;
      let e = answers.get(key);
      if (e === undefined) answers.set(key, (e = { at: performance.now() - t0, parts: [] }));
      e.parts.push(a);
      for (const w of members(a) ?? []) named.add(w);
      if (complete(a)) done.add(a.worker);
      const allDone = [...named].every((w) => done.has(w)) && [...answers.values()].every((x) => done.has(x.parts[0].worker));
      if (!allDone && grace !== undefined) {
        // A late answer named a member nobody had: wait for it too.
        clearTimeout(grace);
        grace = undefined;
      }
      if (allDone && grace === undefined) {
        // Everyone named has answered. A process nobody names (a duplicate of a worker id, a worker the others
        // dropped) answers about as fast: listen as long again, at least 100 ms, within the timeout.
        const elapsed = performance.now() - t0;
        grace = setTimeout(() => sub.unsubscribe(), Math.max(0, Math.min(timeoutMs - elapsed, Math.max(100, elapsed))));
      }
    }
  } finally {
    clearTimeout(timer);
    clearTimeout(grace);
    if (!sub.isClosed()) sub.unsubscribe();
  }
  const missing = [...named].filter((w) => !done.has(w)).sort();
  for (const x of answers.values()) if (!done.has(x.parts[0].worker) && !missing.includes(x.parts[0].worker)) missing.push(x.parts[0].worker);
  return { answers, missing };
}

function noAnswer(config: Config, subject: string, ms: number): OpsError {
  return new OpsError(`no worker answered on ${subject} within ${ms} ms: is a cluster running on ${config.cluster.nats.servers.join(", ")} with cluster.nats.subject "${config.cluster.nats.subject}"?`);
}

/** The membership most workers route by (they should all agree; docs/cluster.md says what it means when they do not). */
const membershipKey = (m: Membership) => JSON.stringify([m.vnodes, Object.entries(m.hosts).map(([h, w]) => [h, [...w].sort()]).sort()]);

function commonMembership(statuses: WorkerStatus[]): { membership: Membership; agree: boolean } {
  const key = membershipKey;
  const votes = new Map<string, { m: Membership; n: number }>();
  for (const s of statuses) {
    const k = key(s.membership);
    const v = votes.get(k) ?? { m: s.membership, n: 0 };
    v.n++;
    votes.set(k, v);
  }
  const best = [...votes.values()].sort((a, b) => b.n - a.n)[0];
  return { membership: best.m, agree: votes.size === 1 };
}

export interface StatusReport {
  subject: string;
  /** Every member named answered, each from one process, and all route by the same membership. */
  complete: boolean;
  agree: boolean;
  vnodes: number;
  missing: string[];
  /** Worker ids that answered from more than one process: the same configuration started twice. */
  duplicates: { worker: string; pids: number[] }[];
  sessions: number;
  hosts: { host: string; share: number; workers: WorkerReport[] }[];
  /** Workers answering with a membership unlike the rest's: what each routes by. */
  disagreeing: { worker: string; membership: Membership }[];
}

export interface WorkerReport {
  worker: string;
  answered: boolean;
  /** Fraction of its host's local ring, and of all users (host share × that). */
  share: number;
  overall: number;
  sessions: number | null;
  detached: number | null;
  pid: number | null;
  startedAt: string | null;
  /** CLI → NATS → worker → CLI, including the worker's pings of its peers. */
  answerMs: number | null;
  serverRttMs: number | null;
  peersRttMs: Record<string, number | null>;
}

export async function clusterStatus(config: Config, o: OpsOptions): Promise<StatusReport> {
  const nc = await connectTo(config);
  const subject = opsSubject(config.cluster.nats.subject, "status");
  try {
    const g = await gather<WorkerStatus>(
      nc,
      subject,
      { pingMs: Math.max(50, Math.floor(o.timeoutMs / 4)) },
      o.timeoutMs,
      (a) => Object.values(a.membership.hosts).flat(),
      () => true,
    );
    if (g.answers.size === 0) throw noAnswer(config, subject, o.timeoutMs);
    const statuses = [...g.answers.values()].map((e) => e.parts[0]);
    const { membership, agree } = commonMembership(statuses);
    const shares = ringShares(membership);
    // One worker id may have answered from several processes: a duplicate start, each shown on its own row.
    const byId = new Map<string, { s: WorkerStatus; at: number }[]>();
    for (const e of g.answers.values()) {
      const list = byId.get(e.parts[0].worker) ?? [];
      list.push({ s: e.parts[0], at: e.at });
      byId.set(e.parts[0].worker, list);
    }
    const duplicates = [...byId].filter(([, l]) => l.length > 1).map(([worker, l]) => ({ worker, pids: l.map((x) => x.s.pid) }));
    // Hosts and workers in the common membership, then any that answered from outside it.
    const hostsOf = new Map<string, Set<string>>(Object.entries(membership.hosts).map(([h, ws]) => [h, new Set(ws)]));
    for (const s of statuses) (hostsOf.get(s.host) ?? hostsOf.set(s.host, new Set()).get(s.host)!).add(s.worker);
    const row = (worker: string, a: { s: WorkerStatus; at: number } | undefined): WorkerReport => ({
      worker,
      answered: a !== undefined,
      share: shares.workers[worker] ?? 0,
      overall: shares.overall[worker] ?? 0,
      sessions: a?.s.sessions ?? null,
      detached: a?.s.detached ?? null,
      pid: a?.s.pid ?? null,
      startedAt: a === undefined ? null : new Date(a.s.startedAt).toISOString(),
      answerMs: a === undefined ? null : Math.round(a.at * 100) / 100,
      serverRttMs: a?.s.serverRttMs ?? null,
      peersRttMs: a?.s.peersRttMs ?? {},
    });
    const hosts = [...hostsOf.keys()].sort().map((host) => ({
      host,
      share: shares.hosts[host] ?? 0,
      workers: [...hostsOf.get(host)!].sort().flatMap((worker) => {
        const answers = byId.get(worker) ?? [];
        return answers.length === 0 ? [row(worker, undefined)] : answers.map((a) => row(worker, a));
      }),
    }));
    const common = membershipKey(membership);
    return {
      subject: config.cluster.nats.subject,
      complete: g.missing.length === 0 && agree && duplicates.length === 0,
      agree,
      vnodes: membership.vnodes,
      missing: g.missing,
      duplicates,
      sessions: statuses.reduce((n, s) => n + s.sessions, 0),
      hosts,
      disagreeing: statuses.filter((s) => membershipKey(s.membership) !== common).map((s) => ({ worker: s.worker, membership: s.membership })),
    };
  } finally {
    await nc.close();
  }
}

const pct = (f: number) => `${(100 * f).toFixed(1)}%`;
const ms = (v: number | null | undefined) => (v === null || v === undefined ? "-" : `${v < 10 ? v.toFixed(2) : v.toFixed(1)} ms`);

export function formatStatus(r: StatusReport): string {
  const workers = new Set(r.hosts.flatMap((h) => h.workers.map((w) => w.worker))).size;
  const lines = [`cluster "${r.subject}": ${r.hosts.length} host${r.hosts.length === 1 ? "" : "s"}, ${workers} worker${workers === 1 ? "" : "s"}, ${r.sessions} session${r.sessions === 1 ? "" : "s"}, vnodes ${r.vnodes}`, ""];
  const rows: string[][] = [["HOST", "HOST SHARE", "WORKER", "OF HOST", "OF ALL", "SESSIONS", "DETACHED", "NATS RTT", "PEER RTT MAX", "UP SINCE"]];
  for (const h of r.hosts) {
    for (const w of h.workers) {
      const peers = Object.values(w.peersRttMs);
      const worst = peers.includes(null) ? "no answer" : peers.length === 0 ? "-" : ms(Math.max(...(peers as number[])));
      rows.push([h.host, pct(h.share), w.worker, pct(w.share), pct(w.overall), w.answered ? String(w.sessions) : "no answer", w.answered ? String(w.detached) : "-", ms(w.serverRttMs), w.answered ? worst : "-", w.startedAt ?? "-"]);
    }
  }
  lines.push(formatTable(rows));
  if (r.missing.length > 0) lines.push("", `did not answer in time: ${r.missing.join(", ")}`);
  for (const d of r.duplicates) lines.push("", `${d.worker} answered from ${d.pids.length} processes (pids ${d.pids.join(", ")}): the same worker id started twice (docs/cluster.md)`);
  if (!r.agree) {
    lines.push("", "workers disagree on the membership (routing differs until they agree; see docs/cluster.md):");
    for (const d of r.disagreeing) lines.push(`  ${d.worker} routes by vnodes ${d.membership.vnodes}, ${Object.entries(d.membership.hosts).map(([h, ws]) => `${h}: ${ws.join(" ")}`).join("; ")}`);
  }
  return lines.join("\n");
}

export interface SessionRow extends Omit<OpsSession, "since"> {
  worker: string;
  pid: number;
  host: string;
  since: string;
}

export interface SessionsReport {
  complete: boolean;
  missing: string[];
  sessions: SessionRow[];
}

export async function listSessions(config: Config, o: OpsOptions): Promise<SessionsReport> {
  const nc = await connectTo(config);
  const subject = opsSubject(config.cluster.nats.subject, "sessions");
  try {
    const g = await gather<SessionsPart>(
      nc,
      subject,
      { match: o.match },
      o.timeoutMs,
      (a) => a.members,
      (a) => a.last,
    );
    if (g.answers.size === 0) throw noAnswer(config, subject, o.timeoutMs);
    const sessions: SessionRow[] = [];
    for (const e of g.answers.values()) {
      for (const p of e.parts) for (const s of p.sessions) sessions.push({ ...s, worker: p.worker, pid: p.pid, host: p.host, since: new Date(s.since).toISOString() });
    }
    sessions.sort((a, b) => (a.jid < b.jid ? -1 : a.jid > b.jid ? 1 : a.worker < b.worker ? -1 : a.worker > b.worker ? 1 : 0));
    return { complete: g.missing.length === 0, missing: g.missing, sessions };
  } finally {
    await nc.close();
  }
}

export function formatSessions(r: SessionsReport): string {
  const rows: string[][] = [["JID", "WORKER", "HOST", "PROTOCOL", "SINCE", "STATE"]];
  for (const s of r.sessions) {
    const state = [s.detached ? "detached" : s.available ? "available" : "connected", ...(s.resumable ? ["resumable"] : [])].join(", ");
    rows.push([s.jid, s.worker, s.host, s.protocol, s.since, state]);
  }
  const lines = [formatTable(rows), "", `${r.sessions.length} session${r.sessions.length === 1 ? "" : "s"}`];
  if (r.missing.length > 0) lines.push(`did not answer in time (their sessions are missing above): ${r.missing.join(", ")}`);
  return lines.join("\n");
}
