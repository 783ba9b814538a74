import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { xml } from "@xmpp/client";
import { waitUntil } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { smClient, settleAcks, type SmClient } from "../xmpp/fault-util.js";
import { workersOf } from "./host-log.js";
import { hostDir, startHost, type Host } from "./host-proc.js";
import { Router } from "../../../src/router/router.js";
import { FdChannel } from "../../../src/transport/fd-channel.js";
import { defaults } from "../../../src/config/config.js";
import { workerIdOf } from "../../../src/cluster/nats-bus.js";

const USERS = 12;
const HOST = defaults().cluster.hostAddress;
const W = [workerIdOf(HOST, 0), workerIdOf(HOST, 1)];
const ring = new Router({ hosts: { [HOST]: W }, vnodes: defaults().cluster.vnodes });
const ownerOf = (user: string): string => ring.ownerOf(`${user}@localhost`)!;

/**
 * Connections on their owner (cluster.handoff): a real host of two worker
 * processes on a real nats-server, real @xmpp/client logins over plain TCP.
 * Each session must start on the worker that owns its user, whichever worker
 * the primary gave the connection to; messages go through with none lost or
 * duplicated; and a login whose hand-off cannot happen (its owner stopped or
 * killed at that moment) goes on where it was accepted. Twice: the workers
 * passing connections straight to each other (the addon's descriptor channel,
 * where it is built), and through the host's primary (Node's IPC, the
 * addon's absence made by naming a file that does not exist).
 */
const NO_ADDON = { SWITCHBOARD_WRITER_ADDON: "/nonexistent/sbwriter.node" };
const direct = FdChannel.native();
for (const path of ["direct", "primary"] as const) {
  describe(`connections handed to their owner worker (${path === "direct" ? "straight from worker to worker" : "through the primary"})`, { timeout: 150_000, skip: !HAVE_NATS ? "nats-server is not installed (apt-get install nats-server)" : path === "direct" && typeof direct === "string" ? `no direct path here: ${direct}` : false }, () => {
    let nats: NatsServer;
    let port: number;
    let adminPort: number;
    let home: ReturnType<typeof hostDir>;
    let host: Host;
    const clients: SmClient[] = [];

    before(async () => {
      nats = await startNats();
      port = await freePort();
      adminPort = await freePort();
      home = hostDir(
        {
          log: { level: process.env.HANDOFF_LOG ?? "info", format: "json" },
          listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port }],
          // The hand-off happens at RFC 6120 SASL's stream restart; a SASL2 login has none and stays where it was accepted.
          xmpp: { allowPlainWithoutTls: true, sasl2: { enabled: false }, sm: { resumeTimeoutMs: 20_000 } },
          storage: { type: "sqlite", path: "db.sqlite" },
          cluster: { bus: "nats", workers: 2, handoff: true, nats: { servers: [nats.url], subject: "sbhandoff", heartbeatMs: 2000 } },
          admin: { enabled: true, host: "127.0.0.1", port: adminPort },
          drainTimeoutMs: 3000,
        },
        USERS + 4,
      );
      host = startHost(home.cfg, path === "primary" ? NO_ADDON : undefined);
      await waitUntil(() => host.log.logged("switchboard started").length === 2, 20_000, () => `both workers started; stderr:\n${host.log.text}`, 20);
    }, { timeout: 30_000 });

    after(async () => {
      await Promise.all(clients.map((s) => s.stop()));
      // The host's whole log, for reading afterwards (HANDOFF_DUMP=<file>, with HANDOFF_LOG=debug).
      if (process.env.HANDOFF_DUMP) writeFileSync(process.env.HANDOFF_DUMP, host.log.text);
      host.kill();
      await nats.stop();
      home.remove();
    });

    const workerOf = (address: string): string => String(host.log.logged("session started").filter((l) => l.address === address).at(-1)?.worker);
    /** switchboard_cluster_handoffs_total by worker and direction, from the host's /metrics. */
    const handoffs = async (): Promise<Record<string, number>> => {
      const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
      const out: Record<string, number> = {};
      for (const m of text.matchAll(/^switchboard_cluster_handoffs_total\{([^}]*)\} (\d+)/gm)) {
        const dir = /direction="(\w+)"/.exec(m[1])?.[1];
        const worker = /worker="([^"]+)"/.exec(m[1])?.[1];
        out[`${worker} ${dir}`] = Number(m[2]);
      }
      return out;
    };
    const direct = async (): Promise<number> => {
      const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
      return [...text.matchAll(/^switchboard_cluster_handoffs_direct_total(?:\{[^}]*\})? (\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);
    };
    const sum = (h: Record<string, number>, dir: string) => Object.entries(h).filter(([k]) => k.endsWith(` ${dir}`)).reduce((a, [, v]) => a + v, 0);

    test("every session starts on its user's owner, and messages arrive once", { timeout: 60_000 }, async () => {
      // h0 with SCRAM (the success answers the client's final message at once), the others with PLAIN (after a store read).
      for (let i = 0; i < USERS; i++) clients.push(await smClient(port, `h${i}`, "pw", "r", { plain: i !== 0, timeoutMs: 10_000 }));
      await waitUntil(() => clients.every((s) => workerOf(String(s.c.jid)) !== "undefined"), 5000, "every start line");
      for (let i = 0; i < USERS; i++) assert.equal(workerOf(String(clients[i].c.jid)), ownerOf(`h${i}`), `h${i}'s session is on its owner; stderr:\n${host.log.text.slice(-3000)}`);
      // Both workers own some of them, and the primary spread the connections evenly: some had to move.
      assert.ok(new Set(clients.map((_, i) => ownerOf(`h${i}`))).size === 2, "both workers own users");
      const h = await handoffs();
      assert.ok(sum(h, "out") >= 1, `some connections moved: ${JSON.stringify(h)}`);
      assert.equal(sum(h, "out"), sum(h, "in"), `every connection sent was adopted: ${JSON.stringify(h)}`);
      // Each move took the path this suite is about.
      assert.equal(await direct(), path === "direct" ? sum(h, "out") : 0, `moves straight to the owner, of ${sum(h, "out")}`);

      const sent = new Set<string>();
      for (let n = 0; n < 10; n++)
        for (let i = 0; i < USERS; i++) {
          const body = `u${i}:${n}`;
          sent.add(body);
          clients[i].c.send(xml("message", { to: `h${(i + 1 + n) % USERS}@localhost`, type: "chat", id: body }, xml("body", {}, body))).catch(() => {});
        }
      const got = () => clients.flatMap((s) => s.got);
      await waitUntil(() => got().length >= sent.size, 10_000, () => `all ${sent.size} messages; got ${got().length}`, 20);
      for (const s of clients) await settleAcks(s);
      assert.equal(got().length, sent.size, "none duplicated");
      assert.deepEqual(new Set(got()), sent, "none lost");
    });

    /** A user owned by worker `w` that has not logged in yet. */
    let next = USERS;
    const userOwnedBy = (w: string): string => {
      for (let i = next; i < USERS + 4; i++)
        if (ownerOf(`h${i}`) === w) {
          next = i + 1;
          return `h${i}`;
        }
      throw new Error(`no spare user owned by ${w}`);
    };

    /** `user` logged in (on some worker) exchanges a message both ways with h0. */
    const works = async (s: SmClient, user: string): Promise<void> => {
      await s.c.send(xml("message", { to: "h0@localhost", type: "chat" }, xml("body", {}, `from ${user}`)));
      await clients[0].c.send(xml("message", { to: `${user}@localhost`, type: "chat" }, xml("body", {}, `to ${user}`)));
      const state = (c: SmClient) => `${c.c.status} sessions ${c.sessions} resumed ${c.resumed} got ${JSON.stringify(c.got.slice(-3))}`;
      await waitUntil(() => clients[0].got.includes(`from ${user}`) && s.got.includes(`to ${user}`), 20_000, () => `${user} and h0 exchanged; h0: ${state(clients[0])}; ${user}: ${state(s)}; stderr:\n${host.log.text.slice(-3000)}`, 20);
    };

    test("a login whose owner is stopped at that moment stays where it was accepted, and works", { timeout: 40_000 }, async () => {
      // The owner is SIGSTOPped: silent for over a second, the primary does not offer it the connection (SILENT_MS).
      const victimId = W[1];
      const user = userOwnedBy(victimId);
      const pid = workersOf(host.child.pid!).get(1)!;
      const before = await handoffs();
      process.kill(pid, "SIGSTOP");
      let s: SmClient;
      try {
        // Silent for over a second, the stopped worker gets no new connection from the primary (balancer.ts, QUIET_MS):
        // the login lands on the other worker, whose offer the primary refuses at once (silent owner). The ring
        // keeps the stopped worker for three heartbeats (6 s), so it is still the owner throughout.
        await new Promise((r) => setTimeout(r, 1300));
        const login = smClient(port, user, "pw", "r", { plain: true, timeoutMs: 10_000 });
        await new Promise((r) => setTimeout(r, 3000));
        process.kill(pid, "SIGCONT");
        s = await login;
      } finally {
        process.kill(pid, "SIGCONT");
      }
      clients.push(s);
      await works(s, user);
      const after = await handoffs();
      const stayed = sum(after, "stayed") - sum(before, "stayed");
      const moved = sum(after, "out") - sum(before, "out");
      // At least this login's; clients of the stopped worker that reconnected meanwhile (their acks timed out) may have moved or stayed too.
      assert.ok(stayed >= 1, `the hand-off stayed (moved ${moved}): ${JSON.stringify(before)} ${JSON.stringify(after)}`);
      assert.equal(workerOf(String(s.c.jid)), W[0], "the session is where the connection was accepted");
    });

    test("a login whose owner was just killed goes on, wherever it ends up", { timeout: 60_000 }, async () => {
      const victimId = W[0];
      const user = userOwnedBy(victimId);
      const pid = workersOf(host.child.pid!).get(0)!;
      const restarts = host.log.logged("worker died; restarting it").length;
      // h0, the other end of the exchange, is owned by the victim too, so its session is there (the first test).
      const h0 = clients[0];
      assert.equal(workerOf("h0@localhost/r"), victimId, "h0's session is on the worker killed");
      const h0Back = h0.sessions + h0.resumed;
      process.kill(pid, "SIGKILL");
      // The primary gives the connection to the survivor; the ring still names the dead worker as the owner.
      const s = await smClient(port, user, "pw", "r", { plain: true, timeoutMs: 10_000 });
      clients.push(s);
      await waitUntil(() => host.log.logged("worker died; restarting it").length > restarts, 5000, "the primary saw the death");
      // h0 lost its stream with the victim: it is back (resumed from its record, or logged in again) before it sends.
      // What @xmpp/client sends while reconnecting is written to a socket that is not a session yet and queued nowhere
      // (its stream management is off until <resumed/>): the cause of this case's timeouts in session 12 ("to <user>"
      // sent by h0 during its resumption, traced: never routed; "from <user>" reached h0 once it was back).
      await waitUntil(() => h0.sessions + h0.resumed > h0Back && h0.c.status === "online", 20_000, () => `h0 back online (${h0.c.status}); stderr:\n${host.log.text.slice(-3000)}`, 20);
      await works(s, user);
    });
  });
}
