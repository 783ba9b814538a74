/**
 * `npm run bench:mam-query`: XEP-0313 queries on an archive of 1,000,000 rows,
 * on both stores: SQLite (a file in a temp dir) and PostgreSQL (a server started
 * here, as test/postgres.ts does; skipped when none is installed). One user,
 * alice, holds every row (the worst case for a per-user range), 100 contacts
 * and one rare one (every 10,000th message). Each query asks for 50 results and
 * runs REPS times; the figures are wall-clock milliseconds of ArchiveStore.query
 * (the RSM id's lookup included; PostgreSQL's round trips on loopback included).
 * ROWS and REPS from the environment.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance, PerformanceObserver } from "node:perf_hooks";
import { SqliteStore } from "../src/store/sqlite-store.js";
import { PgStore } from "../src/store/postgres-store.js";
import type { ArchiveQuery, ArchiveStore } from "../src/store/archive-store.js";
import pg from "pg";
import { silentLogger } from "../src/log/logger.js";
import { clientConfig } from "../src/store/postgres.js";
import { HAVE_POSTGRES, startPostgres } from "../test/postgres.js";

const ROWS = Number(process.env.ROWS ?? 1_000_000);
const REPS = Number(process.env.REPS ?? 200);
const T0 = 1_700_000_000_000;
const STANZA = `'<message xmlns=''jabber:client'' from=''alice@localhost/phone'' to=''c7@localhost'' type=''chat'' id=''m'' ><body>message number ' || n || ' of the benchmark, a line of text</body></message>'`;
const WITH = `CASE WHEN n % 10000 = 0 THEN 'rare@localhost' ELSE 'c' || (n % 100) || '@localhost' END`;

/**
 * TRACE=ms: every run slower than that is printed with its wall-clock time, its place in the series, and the
 * client's garbage collections that overlap it; PostgreSQL logs, with the same clock, every statement slower
 * than half that, every autovacuum/autoanalyze and checkpoint (to find what a slow run waited for).
 */
const TRACE = Number(process.env.TRACE ?? 0);
const gcs: { start: number; end: number; kind: number }[] = [];
if (TRACE > 0) {
  new PerformanceObserver((l) => {
    for (const e of l.getEntries()) gcs.push({ start: e.startTime, end: e.startTime + e.duration, kind: (e as unknown as { detail: { kind: number } }).detail.kind });
  }).observe({ entryTypes: ["gc"] });
}
/** A thread's CPU and its time waiting for a CPU (runnable, not running), ns, from /proc/…/schedstat; a pid of 0: none. */
const sched = (path: string): [number, number] => {
  try {
    const [cpu, wait] = readFileSync(path, "utf8").split(" ").map(Number);
    return [cpu, wait];
  } catch {
    return [0, 0];
  }
};
let backend = 0;
let afterFirst: (() => Promise<void>) | null = null;
const ms = (ns: number) => (ns / 1e6).toFixed(1);
const wall = (t: number) => new Date(performance.timeOrigin + t).toISOString().slice(11, 23);

const mid = Math.floor(ROWS / 2);
const QUERIES: [string, Omit<ArchiveQuery, "user">][] = [
  ["last page (<before/>), what a client asks at login", { max: 50, last: true }],
  ["first page", { max: 50 }],
  ["after an id in the middle (deep page, forwards)", { max: 50, after: `id-${mid}` }],
  ["before an id in the middle (backwards)", { max: 50, before: `id-${mid}` }],
  ["with c7 (1 % of the archive), last page", { max: 50, with: "c7@localhost", last: true }],
  ["with rare (0.01 %), first page", { max: 50, with: "rare@localhost" }],
  ["start in the middle (a date), forwards", { max: 50, start: T0 + mid * 1000 }],
  ["start and end (an hour) in the middle, with c7", { max: 50, with: "c7@localhost", start: T0 + mid * 1000, end: T0 + mid * 1000 + 3_600_000 }],
];

async function measure(name: string, store: ArchiveStore): Promise<void> {
  console.log(`\n${name}: ${ROWS.toLocaleString("en")} rows, ${REPS} runs per query, ms (median · p95 · max)`);
  for (const [label, q] of QUERIES) {
    const times: number[] = [];
    let got = 0;
    for (let i = 0; i < REPS; i++) {
      const c0 = TRACE > 0 ? sched(`/proc/self/task/${process.pid}/schedstat`) : null;
      const b0 = TRACE > 0 && backend > 0 ? sched(`/proc/${backend}/schedstat`) : null;
      const t0 = performance.now();
      const page = await store.query({ ...q, user: "alice" });
      const t1 = performance.now();
      times.push(t1 - t0);
      if (afterFirst !== null) await afterFirst().then(() => void (afterFirst = null));
      if (TRACE > 0 && t1 - t0 > TRACE) {
        const gc = gcs.filter((g) => g.end > t0 && g.start < t1).map((g) => `gc kind ${g.kind} ${(g.end - g.start).toFixed(1)} ms`);
        const c1 = sched(`/proc/self/task/${process.pid}/schedstat`);
        const b1 = backend > 0 ? sched(`/proc/${backend}/schedstat`) : null;
        const who =
          `client cpu ${ms(c1[0] - c0![0])} waiting ${ms(c1[1] - c0![1])}` + (b0 !== null && b1 !== null ? `, backend cpu ${ms(b1[0] - b0[0])} waiting ${ms(b1[1] - b0[1])}` : "");
        console.log(`  slow: run ${i} of "${label}" ${(t1 - t0).toFixed(2)} ms, ${wall(t0)}–${wall(t1)} UTC; ${who}${gc.length > 0 ? `; ${gc.join(", ")}` : ""}`);
      }
      got = page?.items.length ?? -1;
    }
    times.sort((a, b) => a - b);
    const at = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))].toFixed(2);
    console.log(`| ${label} | ${got} | ${at(0.5)} | ${at(0.95)} | ${times[times.length - 1].toFixed(2)} |`);
  }
}

const dir = mkdtempSync(join(tmpdir(), "switchboard-mam-bench-"));
try {
  // ONLY=sqlite or ONLY=postgres: one store.
  const only = process.env.ONLY ?? "";
  let t: number;
  if (only !== "postgres") {
    const sqlite = new SqliteStore(join(dir, "archive.db"));
    void sqlite.archive; // its schema
    t = performance.now();
    sqlite.db.exec(`INSERT INTO archive (username, id, with_jid, with_resource, ts, outgoing, stanza)
      WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ${ROWS})
      SELECT 'alice', 'id-' || n, ${WITH}, '', ${T0} + n * 1000, n % 2, ${STANZA} FROM c`);
    console.log(`SQLite filled in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    await measure("SQLite (file, WAL)", sqlite.archive);
    await sqlite.close();
  }

  if (only === "sqlite") {
    // SQLite only.
  } else if (HAVE_POSTGRES !== null) console.log(`\nPostgreSQL skipped: ${HAVE_POSTGRES}`);
  else {
    const settings: Record<string, string> =
      TRACE > 0
        ? { log_min_duration_statement: String(TRACE / 2), log_autovacuum_min_duration: "0", log_checkpoints: "on", log_connections: "on", log_line_prefix: "%m [%p] ", log_timezone: "UTC" }
        : {};
    const server = await startPostgres({ settings, log: TRACE > 0 ? (c) => process.stdout.write(c.replace(/^/gm, "  pg: ")) : undefined });
    try {
      const c = await server.createDatabase("mambench");
      const store = await PgStore.open(c, silentLogger());
      t = performance.now();
      // Its own connection without the store's statement timeout: a million rows take longer than a query may.
      const filler = new pg.Client({ ...clientConfig(c), statement_timeout: 0, query_timeout: undefined });
      await filler.connect();
      await filler.query(`INSERT INTO archive (username, id, with_jid, with_resource, ts, outgoing, stanza)
        SELECT 'alice', 'id-' || n, ${WITH}, '', ${T0}::bigint + n * 1000, n % 2 = 0, ${STANZA} FROM generate_series(1, ${ROWS}) AS n`);
      await filler.query("ANALYZE archive");
      await filler.end();
      const pgs = store;
      // The backend the store's pool uses (its one connection, opened by the first query): for its schedstat.
      if (TRACE > 0) afterFirst = async () => void (backend = (await pgs.pool.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0].pid);
      console.log(`\nPostgreSQL filled in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      await measure("PostgreSQL 15 (loopback, one pooled connection at a time)", pgs.archive);
      await pgs.close();
    } finally {
      await server.stop();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
