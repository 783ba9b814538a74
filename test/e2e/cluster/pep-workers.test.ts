import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { TLS_FILES, waitUntil } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";
import { SLIXMPP_SKIP } from "../xmpp/slixmpp.js";
import { PEP_EXPECTED, PEP_LIMITS, runPepScript } from "../xmpp/pep-script.js";
import { CLI, hostDir, startHost, type Host } from "./host-proc.js";

// XEP-0163 on a real host of two worker processes (NATS between them), on each store: the same
// slixmpp script as on one worker (OMEMO device lists, +notify by caps, last items, options, limits),
// with alice and bob's first resource on different workers: each notification crosses the bus to the
// contact's owner and on to the worker of each resource, whose own caps decide whether it is written.

const NOT_NATS = HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)";

for (const kind of ["sqlite", "postgres"] as const) {
  const skip = SLIXMPP_SKIP || NOT_NATS || (kind === "postgres" ? (HAVE_POSTGRES ?? false) : false);
  describe(`PEP across two workers of one host (${kind})`, { skip }, () => {
    let nats: NatsServer;
    let pgs: PostgresServer | null = null;
    let home: ReturnType<typeof hostDir>;
    let host: Host;
    let port: number;

    before(async () => {
      nats = await startNats();
      port = await freePort();
      let storage: Record<string, unknown> = { type: "sqlite", path: "db.sqlite" };
      if (kind === "postgres") {
        pgs = await startPostgres();
        storage = { type: "postgres", postgres: await pgs.createDatabase("pep") };
      }
      home = hostDir({
        log: { level: "info", format: "json" },
        listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port, tls: TLS_FILES }],
        storage,
        xmpp: PEP_LIMITS,
        cluster: { bus: "nats", workers: 2, nats: { servers: [nats.url], subject: `sb-pep-${kind}`, heartbeatMs: 500 } },
        admin: { enabled: false },
      });
      const users = join(home.dir, "users.csv");
      writeFileSync(users, "alice,alice-pw\nbob,bob-pw\ncarol,carol-pw\n");
      const imp = spawnSync(process.execPath, [CLI, "users", "import", users, "--config", home.cfg], { encoding: "utf8", cwd: home.dir });
      assert.equal(imp.status, 0, imp.stderr);
      host = startHost(home.cfg);
      await waitUntil(() => host.log.logged("switchboard started").length === 2, 20_000, () => `both workers started; stderr:\n${host.log.text}`, 20);
    });
    after(async () => {
      host?.kill();
      await nats?.stop();
      await pgs?.stop();
      home?.remove();
    });

    const workerOf = (address: string) => String(host.log.logged("session started").filter((l) => l.address === address).at(-1)?.worker);

    test("device lists, caps, last items and limits with the two accounts on different workers", { timeout: 120_000 }, async () => {
      const out = await runPepScript([`127.0.0.1:${port}`], 100_000);
      assert.deepEqual(out, PEP_EXPECTED);
      const a = workerOf("alice@localhost/sx");
      const b = workerOf("bob@localhost/one");
      assert.ok(a !== "undefined" && b !== "undefined", host.log.text.slice(-2000));
      assert.notEqual(a, b, "alice and bob/one were on different workers");
    });
  });
}
