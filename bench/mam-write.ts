/**
 * `node dist/bench/mam-write.js`: what the archive writer costs the worker per
 * row, on both stores: ROWS rows (default 200,000) for USERS users (2,000) in
 * batches of BATCH (500, xmpp.mam.maxBatch's default), each batch one
 * ArchiveStore.append as the ArchiveWriter calls it. CPU of this process per
 * row (on SQLite the whole write, on the event loop; on PostgreSQL the
 * client's part, the index work being in the server's processes) and wall
 * time, per slice of 50,000 rows as the table grows.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { SqliteStore } from "../src/store/sqlite-store.js";
import { PgStore } from "../src/store/postgres-store.js";
import type { ArchiveRow, ArchiveStore } from "../src/store/archive-store.js";
import { silentLogger } from "../src/log/logger.js";
import { HAVE_POSTGRES, startPostgres } from "../test/postgres.js";

const ROWS = Number(process.env.ROWS ?? 200_000);
const USERS = Number(process.env.USERS ?? 2000);
const BATCH = Number(process.env.BATCH ?? 500);
const SLICE = 50_000;
const STANZA = "<message xmlns='jabber:client' to='user1@localhost' type='chat' id='m1' from='user2@localhost/bench'><body>1763761234567.123</body></message>";

async function run(name: string, store: ArchiveStore): Promise<void> {
  let n = 0;
  const rows = (k: number): ArchiveRow[] =>
    Array.from({ length: k }, () => {
      n++;
      return { user: `user${n % USERS}`, id: `AbCdEf-${n.toString(36)}`, with: `user${(n * 7) % USERS}@localhost`, withResource: "bench", ts: Date.now(), outgoing: n % 2 === 0, stanza: STANZA };
    });
  const out: string[] = [];
  for (let done = 0; done < ROWS; done += SLICE) {
    const batches = Array.from({ length: SLICE / BATCH }, () => rows(BATCH));
    const cpu = process.cpuUsage();
    const t = performance.now();
    for (const b of batches) await store.append(b);
    const used = process.cpuUsage(cpu);
    out.push(`${(((used.user + used.system) / SLICE)).toFixed(1)} µs CPU, ${(((performance.now() - t) * 1000) / SLICE).toFixed(1)} µs wall`);
  }
  console.log(`${name}, per row by slices of ${SLICE.toLocaleString("en")} (table growing to ${ROWS.toLocaleString("en")}; ${USERS} users, batches of ${BATCH}): ${out.join(" | ")}`);
}

const dir = mkdtempSync(join(tmpdir(), "switchboard-mam-write-"));
try {
  const sqlite = new SqliteStore(join(dir, "a.db"));
  await run("SQLite (file, WAL)", sqlite.archive);
  await sqlite.close();
  if (HAVE_POSTGRES === null) {
    const server = await startPostgres();
    try {
      const pg = await PgStore.open(await server.createDatabase("mamwrite"), silentLogger());
      await run("PostgreSQL 15 (loopback)", pg.archive);
      await pg.close();
    } finally {
      await server.stop();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
