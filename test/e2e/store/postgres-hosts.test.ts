import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { xml } from "@xmpp/client";
import { waitUntil } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { online } from "../xmpp/util.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";

// Two hosts, each `switchboard start` with its own config, one PostgreSQL between them: accounts made
// with the CLI on either, a roster and an offline message written through one and read through the other.
// Host B runs two workers over NATS where nats-server is installed: its primary applies the migrations,
// its workers only check them.

const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "src", "cli", "main.js");

interface Host {
  child: ChildProcess;
  port: number;
  stderr: () => string;
  stop(): Promise<number | null>;
}

describe("two hosts on one PostgreSQL", { skip: HAVE_POSTGRES ?? false }, () => {
  let pgs: PostgresServer;
  let nats: NatsServer | null = null;
  let dir: string;
  let db: pg.Client;
  const cfgA = () => join(dir, "a.json");
  const cfgB = () => join(dir, "b.json");

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "switchboard-hosts-"));
    pgs = await startPostgres();
    const postgres = await pgs.createDatabase("hosts");
    if (HAVE_NATS) nats = await startNats();
    const base = (port: number) => ({
      log: { level: "info", format: "json" },
      listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port }],
      storage: { type: "postgres", postgres },
      admin: { enabled: false },
    });
    writeFileSync(cfgA(), JSON.stringify({ ...base(await freePort()), cluster: { hostAddress: "host-a" } }));
    const clusterB = nats === null ? { hostAddress: "host-b" } : { hostAddress: "host-b", bus: "nats", workers: 2, nats: { servers: [nats.url], subject: "sb-pg-hosts" } };
    writeFileSync(cfgB(), JSON.stringify({ ...base(await freePort()), cluster: clusterB }));
    db = new pg.Client({ host: "127.0.0.1", port: pgs.port, user: "postgres", database: "hosts" });
    await db.connect();
  });
  after(async () => {
    await db?.end();
    await nats?.stop();
    await pgs?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 30_000 });

  async function start(cfg: string, workers: number): Promise<Host> {
    const port = (JSON.parse(readFileSync(cfg, "utf8")) as { listeners: { port: number }[] }).listeners[0].port;
    const child = spawn(process.execPath, [CLI, "start", "--config", cfg], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (b: Buffer) => (stderr += b));
    const started = () => stderr.split("\n").filter((l) => l.includes('"switchboard started"')).length;
    await waitUntil(() => started() >= workers || child.exitCode !== null, 20_000, () => `${cfg} to start; stderr:\n${stderr}`, 20);
    assert.equal(child.exitCode, null, `${cfg} exited: ${stderr}`);
    return {
      child,
      port,
      stderr: () => stderr,
      stop: () =>
        new Promise((resolve) => {
          if (child.exitCode !== null) return resolve(child.exitCode);
          child.once("exit", (code) => resolve(code));
          child.kill("SIGTERM");
        }),
    };
  }

  test("every `switchboard users` command works against PostgreSQL, from either host's config", { timeout: 60_000 }, async () => {
    let r = cli("users", "add", "Alice", "a-pw", "--config", cfgA());
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /added alice@localhost/);
    assert.equal(cli("users", "add", "bob", "b-pw", "--config", cfgA()).status, 0);
    writeFileSync(join(dir, "users.csv"), "carol,c-pw\ndave,d-pw\n");
    r = cli("users", "import", join(dir, "users.csv"), "--config", cfgB());
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /imported 2 users/);
    r = cli("users", "list", "--config", cfgB());
    assert.deepEqual(r.stdout.trim().split("\n"), ["alice", "bob", "carol", "dave"]);
    assert.equal(cli("users", "delete", "dave", "--config", cfgA()).status, 0);
    r = cli("users", "delete", "dave", "--config", cfgB());
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /no such user: dave/);
    assert.deepEqual(cli("users", "list", "--config", cfgA()).stdout.trim().split("\n"), ["alice", "bob", "carol"]);
    // Only SCRAM keys are kept.
    const rows = await db.query("SELECT * FROM users");
    for (const row of rows.rows) for (const v of Object.values(row)) assert.ok(!String(v).includes("a-pw"));
  });

  test("a user made on one host logs in on the other; a roster and an offline message written through A are read through B", { timeout: 90_000 }, async () => {
    const a = await start(cfgA(), 1);
    const b = await start(cfgB(), nats === null ? 1 : 2);
    try {
      const alice = await online(a.port, "alice", "a-pw", { resource: "on-a" });
      try {
        // A roster item, a subscription request to bob, and a message for him: he is offline everywhere.
        await alice.c.iqCaller.set(xml("query", { xmlns: "jabber:iq:roster" }, xml("item", { jid: "carol@localhost", name: "Carol" }, xml("group", {}, "Friends"))));
        await alice.c.send(xml("presence", { type: "subscribe", to: "bob@localhost" }));
        await alice.c.send(xml("message", { type: "chat", to: "bob@localhost", id: "hello-1" }, xml("body", {}, "stored on A, read on B")));
        await waitUntil(async () => (await db.query("SELECT count(*)::int AS n FROM offline WHERE username = 'bob'")).rows[0].n === 1, 10_000, "the message in PostgreSQL");

        // Alice's second resource, on host B, sees the roster host A wrote.
        const alice2 = await online(b.port, "alice", "a-pw", { resource: "on-b" });
        try {
          const roster = await alice2.c.iqCaller.get(xml("query", { xmlns: "jabber:iq:roster" }));
          const items = Object.fromEntries(roster.getChildren("item").map((i: any) => [i.attrs.jid, `${i.attrs.subscription}${i.attrs.ask ? "+ask" : ""}:${i.attrs.name ?? ""}:${i.getChildText("group") ?? ""}`]));
          assert.deepEqual(items, { "bob@localhost": "none+ask::", "carol@localhost": "none:Carol:Friends" });
        } finally {
          await alice2.stop();
        }

        // Bob logs in on host B: the subscription request and the message stored through A.
        const bob = await online(b.port, "bob", "b-pw");
        try {
          const request = await bob.waitFor((el) => el.is("presence") && el.attrs.type === "subscribe", 5000);
          assert.equal(request.attrs.from, "alice@localhost");
          const msg = await bob.waitFor((el) => el.is("message") && el.getChildText("body") === "stored on A, read on B", 5000);
          assert.equal(msg.attrs.from, alice.jid);
          assert.ok(msg.getChild("delay", "urn:xmpp:delay"), "delivered late, with a XEP-0203 stamp");
          assert.equal((await db.query("SELECT count(*)::int AS n FROM offline")).rows[0].n, 0, "taken from the store");
        } finally {
          await bob.stop();
        }
      } finally {
        await alice.stop();
      }
      // The migrations were applied once: by the CLI's first run, before either host started.
      assert.deepEqual((await db.query("SELECT component, version FROM schema_versions ORDER BY component")).rows, [
        { component: "accounts", version: 1 },
        { component: "archive", version: 2 },
        { component: "blocking", version: 1 },
        { component: "fast", version: 1 },
        { component: "muc", version: 1 },
        { component: "muc_directory", version: 1 },
        { component: "pep", version: 1 },
        { component: "vcard", version: 1 },
        { component: "xmpp", version: 2 },
      ]);
      assert.match(a.stderr(), /store: postgres/);
    } finally {
      assert.equal(await a.stop(), 0, "host A exits 0 on SIGTERM");
      assert.equal(await b.stop(), 0, "host B exits 0 on SIGTERM");
    }
  });
});
