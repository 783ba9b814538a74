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
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
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
      const t0 = performance.now();
      const page = await store.query({ ...q, user: "alice" });
      times.push(performance.now() - t0);
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
    const server = await startPostgres();
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
