import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { waitUntil } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { Scrape } from "../../../bench/lib/scrape.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { hostDir, startHost, type Host } from "./host-proc.js";
import { workersOf } from "./host-log.js";
import { pingOk, rawLogin, type Raw } from "../xmpp/util.js";

// Riding confirmations under a stop (docs/architecture.md, "Custody"): on a host of two workers, a worker that
// delivers a message another worker holds in custody to a session without XEP-0198 lets the confirmation ride its
// next bus batch, and the client's output waits for that batch. A batch that goes out a heartbeat late (the worker
// was stopped between gathering and publishing) first takes those deliveries back (ProxyDaemon.lateFlush): output
// cut, confirmation withdrawn, receipt forgotten, and the custodian routes them again. Plain XMPP clients (no
// stream management: nothing is sent again by a client) message each other's bare JIDs steadily, so that nearly
// every bus batch carries deliveries, while one worker is stopped with SIGSTOP for longer than a heartbeat and
// less than the expiry window (three heartbeats), and then past it. Every message a client wrote must end exactly
// once: received online, stored offline (taken by a new login afterwards), or bounced to its sender. Several stops
// per test, since a stop lands in a batch's window (a millisecond or so) only now and then; the deliveries taken
// back at each are printed (switchboard_cluster_riding_voided_total).
//
// What it does not prove (2026-12-04, branch stall): with lateFlush disabled it still passed (6 runs, 95 stops).
// Riders were found at a late flush only after short stops (4 of 40 counted), and there the late confirmation
// still reaches a custodian that has not routed again (it waits cluster.custody.confirmTimeoutMs, 5 s), and a
// copy routed again to the same worker meets its receipt. The duplicate the void prevents needs a stop past the
// expiry window and the owners' hold (the "stored" test) that lands in the window, which no run here hit. STALL_STOPS_SHORT / _LONG / _STORED, STALL_BURST,
// STALL_EVERY_MS and STALL_SEND_MS change the scenario for a sharper try.
// The "long" test once bounced ~2.4 % of what was sent (each message routed maxTries times within seconds, by the
// stops' membership changes, to users who stayed online; main 9783e07 too): custody now gives up only after maxTries
// routings and as many confirmation timeouts (session 27), and the test asserts none bounced.
// The "stored" test's bounces are the offline queue's limit (xmpp offlineQueueMax, 100 a user). STALL_STOPS_HELD: the
// 3 s test's stops.

const HB = 300;
const USERS = 24;
const SEND_MS = Number(process.env.STALL_SEND_MS ?? 6000);
const EVERY_MS = Number(process.env.STALL_EVERY_MS ?? 25);
const BURST = Number(process.env.STALL_BURST ?? 2);

interface Counts {
  voided: number;
  rerouted: number;
  suppressed: number;
  staleDropped: number;
  offline: number;
  givenUp: number;
}

/** A message as a raw client read it. */
interface Got {
  type: string;
  id: string;
  body: string | null;
  delayed: boolean;
  /** Where in the client's received text it starts (to place it against the stop). */
  at: number;
}

/** The messages in the text a raw client received (no nested messages: nobody enables carbons here). */
function messagesIn(text: string): Got[] {
  const out: Got[] = [];
  for (const m of text.matchAll(/<message\b([^>]*?)(\/>|>([\s\S]*?)<\/message>)/g)) {
    const attrs = m[1];
    const inner = m[3] ?? "";
    out.push({
      type: /\btype=["']([^"']*)["']/.exec(attrs)?.[1] ?? "normal",
      id: /\bid=["']([^"']*)["']/.exec(attrs)?.[1] ?? "",
      body: /<body(?:\s[^>]*)?>([^<]*)<\/body>/.exec(inner)?.[1] ?? null,
      delayed: /<delay\b/.test(inner),
      at: m.index,
    });
  }
  return out;
}

interface Plain {
  user: string;
  r: Raw;
  /** The worker its session is on (from the host's "session started" line). */
  worker: string;
}

describe("riding confirmations under a stop: plain XMPP clients (no XEP-0198) on a host of two workers, every message ends once", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)", timeout: 300_000 }, () => {
  let nats: NatsServer;
  let host: Host;
  let port: number;
  let adminPort: number;
  let remove = () => {};
  const clients: Plain[] = [];

  before(async () => {
    nats = await startNats();
    port = await freePort();
    adminPort = await freePort();
    const d = hostDir(
      {
        log: { level: "info", format: "json" },
        listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port }],
        xmpp: { allowPlainWithoutTls: true },
        storage: { type: "sqlite", path: "db.sqlite" },
        // coalesceMs at its default (1 ms): the window in which a stop catches confirmations riding a gathered batch.
        cluster: { bus: "nats", workers: 2, nats: { servers: [nats.url], subject: "sbplain", heartbeatMs: HB } },
        admin: { port: adminPort },
        drainTimeoutMs: 2000,
      },
      USERS,
    );
    remove = d.remove;
    host = startHost(d.cfg);
    await waitUntil(() => host.log.logged("switchboard started").length === 2 || host.child.exitCode !== null, 30_000, () => `the host to start; stderr:\n${host.log.text}`, 20);
    for (let u = 0; u < USERS; u++) {
      const r = await rawLogin(port, `h${u}`, "pw");
      // Available (messages to the bare JID come to it) and its initial presence taken (nothing stored yet).
      r.send("<presence/>");
      await pingOk(r);
      clients.push({ user: `h${u}`, r, worker: "" });
    }
    await waitUntil(() => host.log.logged("session started").length >= USERS, 10_000, "every session's start logged", 20);
    for (const l of host.log.logged("session started")) {
      const c = clients.find((x) => String(l.address).startsWith(`${x.user}@`));
      if (c !== undefined) c.worker = String(l.worker);
    }
    const per = new Map<string, number>();
    for (const c of clients) per.set(c.worker, (per.get(c.worker) ?? 0) + 1);
    process.stdout.write(`# stall-plain: ${USERS} plain clients, sessions per worker ${JSON.stringify(Object.fromEntries(per))}\n`);
    assert.equal(per.size, 2, "both workers hold sessions");
  }, { timeout: 60_000 });

  after(async () => {
    for (const c of clients) c.r.destroy();
    host?.kill();
    await nats?.stop();
    remove();
  });

  const counts = async (): Promise<Counts> => {
    const s = await Scrape.of(adminPort);
    const n = (name: string) => {
      const v = s.get(name);
      return Number.isNaN(v) ? 0 : v;
    };
    return {
      voided: n("switchboard_cluster_riding_voided_total"),
      rerouted: n("switchboard_cluster_messages_rerouted_total"),
      suppressed: n("switchboard_cluster_duplicates_suppressed_total"),
      staleDropped: n("switchboard_cluster_stale_messages_dropped_total"),
      offline: n("switchboard_offline_messages_stored_total"),
      givenUp: n("switchboard_cluster_messages_given_up_total"),
    };
  };
  const minus = (a: Counts, b: Counts): Counts => ({
    voided: a.voided - b.voided,
    rerouted: a.rerouted - b.rerouted,
    suppressed: a.suppressed - b.suppressed,
    staleDropped: a.staleDropped - b.staleDropped,
    offline: a.offline - b.offline,
    givenUp: a.givenUp - b.givenUp,
  });
  const workerPid = (i: number) => {
    const p = workersOf(host.child.pid!).get(i);
    assert.ok(p !== undefined, `worker ${i} found`);
    return p;
  };

  interface Outcome {
    sent: number;
    online: number;
    offline: number;
    bounced: number;
    lost: number;
    duplicated: number;
    broken: number;
  }

  /**
   * Every client sends a chat message to another's bare JID every EVERY_MS for SEND_MS; a third of the way in,
   * worker `w` is stopped for `stopMs`. Then: the ring whole again, custody empty and the offline queue written,
   * each client pinged (what was written to it before has reached it), and a new login per user takes what was
   * stored offline. Each message written must have come once, online, from offline storage or as a bounce.
   */
  async function phase(tag: string, w: number, stopMs: number, stops: number): Promise<Outcome> {
    const before = await counts();
    const mark = host.log.lines.length;
    const pid = workerPid(w);
    const sent: { body: string; to: string; from: string; at: number }[] = [];
    // Each client's received text at the stop and at the continue: where a message came relative to the stop.
    let stoppedAt: number[] = [];
    let continuedAt: number[] = [];
    let stopDone: Promise<void> | null = null;
    let stopping = true;
    /** Deliveries taken back at each stop (riding_voided). */
    const perStop: number[] = [];
    const stop = async () => {
      let voided = before.voided;
      for (let k = 0; k < stops; k++) {
        if (k > 0) await new Promise((r) => setTimeout(r, 700));
        if (k === 0) stoppedAt = clients.map((c) => c.r.text.length);
        process.kill(pid, "SIGSTOP");
        await new Promise((r) => setTimeout(r, stopMs));
        process.kill(pid, "SIGCONT");
        // Healed before the next: both workers count both (after a stop past the expiry window, the others took it back).
        await waitUntil(async () => (await Scrape.of(adminPort)).get("switchboard_cluster_workers") === 4, 15_000, "both workers to count two", 100);
        const v = (await counts()).voided;
        perStop.push(v - voided);
        voided = v;
      }
      continuedAt = clients.map((c) => c.r.text.length);
      await new Promise((r) => setTimeout(r, 1000));
      stopping = false;
    };
    const start = Date.now();
    await Promise.all(
      clients.map(async (c, i) => {
        for (let n = 0; Date.now() - start < SEND_MS || stopping; ) {
          for (let b = 0; b < BURST; b++, n++) {
            const body = `${tag}:h${i}:${n}`;
            const to = `h${(i + 1 + ((n * 7) % (USERS - 1))) % USERS}`;
            if (!c.r.closed) {
              c.r.send(`<message to='${to}@localhost' type='chat' id='${body}'><body>${body}</body></message>`);
              sent.push({ body, to, from: c.user, at: Date.now() - start });
            }
          }
          if (stopDone === null && Date.now() - start > SEND_MS / 3) stopDone = stop();
          await new Promise((r) => setTimeout(r, EVERY_MS));
        }
      }),
    );
    await stopDone;
    // Healed: both workers count both (after a stop past the expiry window, the others took it back).
    await waitUntil(async () => (await Scrape.of(adminPort)).get("switchboard_cluster_workers") === 4, 15_000, "both workers to count two", 100);
    // Settled: nothing held in custody (a delivery taken back is routed again after cluster.custody.confirmTimeoutMs), nothing queued for the store.
    await waitUntil(
      async () => {
        const s = await Scrape.of(adminPort);
        return s.get("switchboard_cluster_messages_held") === 0 && s.get("switchboard_offline_write_queue") === 0;
      },
      40_000,
      "custody empty and the offline queue written",
      200,
    );
    const broken = clients.filter((c) => c.r.closed);
    // Everything written to a client before its ping's answer has reached it.
    await Promise.all(clients.filter((c) => !c.r.closed).map((c) => pingOk(c.r)));
    // What was stored offline: a new login's initial presence takes it, written before the answer to what it sends next.
    const fetched = new Map<string, string>();
    for (const c of clients) {
      const f = await rawLogin(port, c.user, "pw", `fetch-${tag}`);
      f.send("<presence/>");
      await pingOk(f);
      fetched.set(c.user, f.text);
      f.end("</stream:stream>");
      await f.whenClosed();
    }
    const d = minus(await counts(), before);

    // The tally: each body, every time it came (online, from offline storage) or bounced.
    const mine = (s: string | null): s is string => s !== null && s.startsWith(`${tag}:`);
    const seen = new Map<string, string[]>();
    const note = (body: string, how: string) => {
      const l = seen.get(body);
      if (l === undefined) seen.set(body, [how]);
      else l.push(how);
    };
    let online = 0;
    let offline = 0;
    let bounced = 0;
    for (const [i, c] of clients.entries()) {
      for (const m of messagesIn(c.r.text)) {
        if (m.type === "error") {
          if (!mine(m.id)) continue;
          bounced++;
          note(m.id, `bounced to ${c.user}`);
          continue;
        }
        if (!mine(m.body)) continue;
        const when = stoppedAt.length === 0 || m.at < stoppedAt[i] ? "before the stop" : continuedAt.length === 0 || m.at < continuedAt[i] ? "during the stop" : "after it";
        if (m.delayed) offline++;
        else online++;
        note(m.body, `${m.delayed ? "stored, pushed" : "online"} to ${c.user} (worker ${c.worker}) ${when}`);
      }
      for (const m of messagesIn(fetched.get(c.user)!)) {
        if (m.type === "error" || !mine(m.body)) continue;
        offline++;
        note(m.body, `from offline storage to ${c.user}`);
      }
    }
    const lost = sent.filter((s) => !seen.has(s.body));
    const dups = [...seen.entries()].filter(([, l]) => l.length > 1);
    const o: Outcome = { sent: sent.length, online, offline, bounced, lost: lost.length, duplicated: dups.length, broken: broken.length };
    const expired = host.log.logged("cluster worker not heard from: removed", mark).length;
    process.stdout.write(`# ${tag} (${new Date().toISOString()}): worker ${w} (pid ${pid}) stopped ${stopMs} ms: ${JSON.stringify(o)}; metrics ${JSON.stringify(d)}; expiries logged ${expired}; voided per stop ${perStop.join(" ")}\n`);
    const byWorker = (user: string) => clients.find((c) => c.user === user)?.worker;
    for (const s of lost.slice(0, 20)) process.stdout.write(`#   lost ${s.body} from ${s.from} (worker ${byWorker(s.from)}) to ${s.to} (worker ${byWorker(s.to)}), written at +${s.at} ms\n`);
    for (const [b, l] of dups.slice(0, 20)) {
      const s = sent.find((x) => x.body === b);
      process.stdout.write(`#   duplicated ${b} (from worker ${byWorker(s?.from ?? "")}, written at +${s?.at} ms): ${l.join("; ")}\n`);
    }
    if (broken.length > 0) process.stdout.write(`#   connections that broke: ${broken.map((c) => `${c.user} (worker ${c.worker})`).join(" ")}\n`);
    return o;
  }

  test("one worker stopped for 0.5 s (more than a heartbeat, less than the expiry window): nothing lost, nothing twice", { timeout: 120_000 }, async () => {
    const o = await phase("short", 1, 500, Number(process.env.STALL_STOPS_SHORT ?? 10));
    assert.equal(o.broken, 0, "no client connection broke");
    assert.ok(o.sent > 1000, `sent ${o.sent}`);
    assert.deepEqual([o.lost, o.duplicated], [0, 0], JSON.stringify(o));
  });

  test("one worker stopped for 1.5 s (past the expiry window: dropped from the ring, then back): nothing lost, nothing twice", { timeout: 120_000 }, async () => {
    const o = await phase("long", 1, 1500, Number(process.env.STALL_STOPS_LONG ?? 3));
    assert.equal(o.broken, 0, "no client connection broke");
    assert.ok(o.sent > 1000, `sent ${o.sent}`);
    assert.deepEqual([o.lost, o.duplicated], [0, 0], JSON.stringify(o));
    // Every recipient stayed online and its owner held what came meanwhile: nothing goes back as an error (custody
    // gave ~2.4 % up after maxTries routings when each stop's two membership changes counted as tries: session 27).
    assert.equal(o.bounced, 0, JSON.stringify(o));
  });

  test("one worker stopped for 3 s (past the expiry window, within the owners' hold, cluster.holdAfterExpiryMs 10 s by default): every message online, nothing lost, nothing twice", { timeout: 150_000 }, async () => {
    const o = await phase("held", 1, 3000, Number(process.env.STALL_STOPS_HELD ?? 4));
    assert.equal(o.broken, 0, "no client connection broke");
    assert.deepEqual([o.lost, o.duplicated], [0, 0], JSON.stringify(o));
    // Held at their owners for their sessions to bind again, not stored while they stayed connected (with the hold
    // at 0, its default until session 29, ~18 % of what was sent bounced here at the offline queue's limit).
    assert.deepEqual([o.offline, o.bounced], [0, 0], JSON.stringify(o));
  });

  test("one worker stopped for 12 s (past the expiry window and the owners' hold: what comes for its users meanwhile is stored offline, or bounced when a user's queue is full): nothing lost, nothing twice", { timeout: 150_000 }, async () => {
    const o = await phase("stored", 1, 12_000, Number(process.env.STALL_STOPS_STORED ?? 1));
    assert.equal(o.broken, 0, "no client connection broke");
    assert.deepEqual([o.lost, o.duplicated], [0, 0], JSON.stringify(o));
    assert.ok(o.offline + o.bounced > 0, `past the hold, some stored or bounced: ${JSON.stringify(o)}`);
  });
});
