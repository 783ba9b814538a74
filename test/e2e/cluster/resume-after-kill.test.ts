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

const USERS = 6;
const SEND_MS = 4500;
const EVERY_MS = 40;
/** The resumption window: long enough for a resumption after a death, short enough to pass in the second test. */
const WINDOW_MS = 6000;

/**
 * XEP-0198 resumption after a worker's death (issue 14): a real host of two
 * worker processes on a real nats-server, @xmpp/client users with stream
 * management sending chat messages to each other's bare JIDs, and SIGKILL to
 * the worker holding most of them. Each of its clients reconnects and resumes
 * on the surviving worker (or the restarted one) from the resume record its
 * keeper kept: <resumed/>, no new login. A message counts as accepted when the
 * server acknowledged it to its sender; every accepted one reaches its
 * recipient once, both towards and from the resumed clients. Then the case
 * where resumption is impossible (the window passed): a clean <failed/>, a
 * login, the stored messages, once.
 */
describe("resumption after a worker's death", { timeout: 150_000, skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  let port: number;
  let home: ReturnType<typeof hostDir>;
  let host: Host;
  const clients: SmClient[] = [];

  before(async () => {
    nats = await startNats();
    port = await freePort();
    home = hostDir(
      {
        log: { level: process.env.RESUME_DEBUG ? "debug" : "info", format: "json" },
        listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port }],
        xmpp: { allowPlainWithoutTls: true, sm: { resumeTimeoutMs: WINDOW_MS } },
        storage: { type: "sqlite", path: "db.sqlite" },
        cluster: { bus: "nats", workers: 2, nats: { servers: [nats.url], subject: "sbrevive", heartbeatMs: 300 } },
        admin: { enabled: false },
        drainTimeoutMs: 3000,
      },
      USERS,
    );
    host = startHost(home.cfg);
    await waitUntil(() => host.log.logged("switchboard started").length === 2, 20_000, () => `both workers started; stderr:\n${host.log.text}`, 20);
  }, { timeout: 30_000 });

  after(async () => {
    if (process.env.RESUME_LOG) writeFileSync(process.env.RESUME_LOG, host.log.text);
    await Promise.all(clients.map((s) => s.stop()));
    host.kill();
    await nats.stop();
    home.remove();
  });

  const workerOf = (address: string): string => String(host.log.logged("session started").filter((l) => l.address === address).at(-1)?.worker);
  const pidOf = (worker: string): number => {
    const pid = workersOf(host.child.pid!).get(Number(worker.slice(worker.lastIndexOf("w") + 1)));
    assert.ok(pid !== undefined, `the pid of ${worker}`);
    return pid;
  };

  /** Messages the server acknowledged to their senders, by body; and those it failed. */
  const accepted = new Set<string>();
  const notAccepted = new Set<string>();

  /** Waits until every accepted message to `to` (all clients when omitted) arrived; then counts. */
  async function delivered(what: string, only?: Set<number>, run?: number): Promise<{ lost: number; duplicated: number; dups: string[] }> {
    const received = new Map<string, number>();
    const mine = (b: string) => (only === undefined || only.has(Number(b.slice(b.indexOf(">") + 1, b.indexOf(":"))))) && (run === undefined || b.includes(`:${run}-`));
    const tally = () => {
      received.clear();
      for (const s of clients) for (const b of s.got) received.set(b, (received.get(b) ?? 0) + 1);
    };
    const missing = () => [...accepted].filter((b) => mine(b) && !received.has(b));
    await waitUntil(
      async () => {
        for (const s of clients) await settleAcks(s, 3000).catch(() => {});
        tally();
        return missing().length === 0;
      },
      30_000,
      () => {
        const pairs = new Map<string, string[]>();
        for (const b of missing()) pairs.set(b.slice(0, b.indexOf(":")), [...(pairs.get(b.slice(0, b.indexOf(":"))) ?? []), b.slice(b.lastIndexOf("-") + 1)]);
        return `${what}: missing ${missing().length}: ${[...pairs].map(([p, ns]) => `${p}: ${ns.join(",")}`).join("; ")}; stderr:\n${host.log.text.slice(-3000)}`;
      },
      500,
    );
    tally();
    const dups = [...received.entries()].filter(([b, n]) => n > 1 && mine(b)).map(([b]) => b);
    return { lost: missing().length, duplicated: dups.length, dups };
  }

  /** Each client sends to the others' bare JIDs every EVERY_MS for `ms`, bodies "<from>><to>:<run>-<n>"; `during` runs once, a third in. */
  async function traffic(ms: number, during: () => void, onStart: (run: number) => void = () => {}): Promise<number> {
    let sent = 0;
    let fired = false;
    const start = Date.now();
    onStart(start);
    await Promise.all(
      clients.map(async (s, i) => {
        for (let n = 0; Date.now() - start < ms; n++) {
          const to = (i + 1 + (n % (USERS - 1))) % USERS;
          if (s.c.status === "online") {
            s.c.send(xml("message", { to: `h${to}@localhost`, type: "chat", id: `${i}-${n}-${start}` }, xml("body", {}, `${i}>${to}:${start}-${n}`))).catch(() => {});
            sent++;
          }
          if (!fired && Date.now() - start > ms / 3) {
            fired = true;
            during();
          }
          await new Promise((r) => setTimeout(r, EVERY_MS));
        }
      }),
    );
    return sent;
  }

  test("SIGKILL of the clients' worker: they resume on a surviving worker, every accepted message once, both ways", { timeout: 70_000 }, async () => {
    for (let i = 0; i < USERS; i++) clients.push(await smClient(port, `h${i}`, "pw", "r", { ackIntervalMs: 200, ackTimeoutMs: 1500 }));
    clients.forEach((s) => {
      s.c.streamManagement.on("ack", (el: any) => accepted.add(el.getChildText("body")));
      s.c.streamManagement.on("fail", (el: any) => notAccepted.add(el.getChildText("body")));
    });
    await waitUntil(() => clients.every((_, i) => workerOf(`h${i}@localhost/r`) !== "undefined"), 5000, "every start line");
    const count = new Map<string, number>();
    for (let i = 0; i < USERS; i++) count.set(workerOf(`h${i}@localhost/r`), (count.get(workerOf(`h${i}@localhost/r`)) ?? 0) + 1);
    const victimId = [...count.entries()].sort((a, b) => b[1] - a[1])[0][0];
    const onVictim = clients.map((_, i) => i).filter((i) => workerOf(`h${i}@localhost/r`) === victimId);
    const victim = pidOf(victimId);
    const resumedBefore = clients.map((s) => s.resumed);
    let killedAt = 0;
    const sent = await traffic(SEND_MS, () => {
      killedAt = Date.now();
      process.kill(victim, "SIGKILL");
    });
    await waitUntil(() => clients.every((s) => s.c.status === "online"), 20_000, "every client back online");
    const back = Date.now() - killedAt;
    process.stdout.write(`# onVictim ${onVictim.join(",")} resumed ${onVictim.map((i) => clients[i].resumed - resumedBefore[i]).join(",")} sessions ${onVictim.map((i) => clients[i].sessions).join(",")} now on ${onVictim.map((i) => workerOf(`h${i}@localhost/r`)).join(",")}\n`);
    const r = await delivered("after the kill");
    const resumed = onVictim.filter((i) => clients[i].resumed > resumedBefore[i]).length;
    const loggedIn = onVictim.filter((i) => clients[i].sessions > 1).length;
    const where = onVictim.map((i) => workerOf(`h${i}@localhost/r`));
    const report = { victim: victimId, onVictim: onVictim.length, resumed, loggedInAgain: loggedIn, resumedOn: where.join(","), sent, accepted: accepted.size, notAccepted: notAccepted.size, lost: r.lost, duplicated: r.duplicated, backAfterMs: back };
    process.stdout.write(`# resume-after-kill: ${JSON.stringify(report)}\n`);
    if (r.duplicated > 0) process.stdout.write(`# duplicated: ${r.dups.join(" ")}\n`);
    assert.ok(onVictim.length > 0, "a client on the killed worker");
    assert.equal(loggedIn, 0, `no client logged in again (resumed instead): ${JSON.stringify(report)}`);
    assert.equal(resumed, onVictim.length, `every client of the killed worker resumed: ${JSON.stringify(report)}`);
    assert.ok(where.every((w) => w !== "undefined"), "the resumed sessions started somewhere");
    assert.equal(r.lost, 0, "lost");
    assert.equal(r.duplicated, 0, `duplicated: ${JSON.stringify(report)}`);
  });

  test("resumption impossible (the window passed): <failed/>, a login, the stored messages once", { timeout: 70_000 }, async () => {
    // The client on a worker the test kills; it comes back only after the window.
    await waitUntil(() => host.log.logged("switchboard started").length >= 3, 15_000, "the killed worker restarted");
    const i = clients.findIndex((_, k) => workerOf(`h${k}@localhost/r`) !== "undefined");
    const x = clients[i];
    const w = workerOf(`h${i}@localhost/r`);
    const sessionsBefore = x.sessions;
    const resumedBefore = x.resumed;
    let failed = 0;
    x.c.on("nonza", (el: any) => {
      if (el.is("failed", "urn:xmpp:sm:3")) failed++;
    });
    x.c.reconnect.delay = WINDOW_MS + 3000;
    let run = 0;
    const sent = await traffic(3000, () => process.kill(pidOf(w), "SIGKILL"), (r) => (run = r));
    await waitUntil(() => clients.every((s) => s.c.status === "online"), 30_000, "every client back online");
    const r = await delivered("after the window", new Set([i]), run);
    const report = { client: `h${i}`, worker: w, failed, loggedIn: x.sessions - sessionsBefore, resumed: x.resumed - resumedBefore, fromOffline: x.delayed.length, sent, lost: r.lost, duplicated: r.duplicated };
    process.stdout.write(`# resume-after-kill, window passed: ${JSON.stringify(report)}\n`);
    if (r.duplicated > 0) process.stdout.write(`# duplicated: ${r.dups.map((b) => b + (x.delayed.includes(b) ? "+delay" : "")).join(" ")}\n`);
    assert.equal(failed, 1, `one <failed/>: ${JSON.stringify(report)}`);
    assert.equal(x.resumed, resumedBefore, "not resumed");
    assert.equal(x.sessions, sessionsBefore + 1, "logged in again");
    assert.ok(x.delayed.length > 0, "got stored messages");
    assert.equal(r.lost, 0, "lost");
    assert.equal(r.duplicated, 0, `duplicated: ${JSON.stringify(report)}`);
  });
});
