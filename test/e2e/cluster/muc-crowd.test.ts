import { test } from "node:test";
import assert from "node:assert/strict";
import { waitUntil } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { HAVE_NATS, startNats } from "../../nats.js";
import { hostDir, startHost } from "./host-proc.js";
import { rawLogin, type Raw } from "../xmpp/util.js";

/**
 * A room of 200 occupants on a host of two worker processes (host links between them, a real nats-server for
 * membership): every occupant takes every occupant's join presence exactly once — the occupant list of the
 * ones already there as one bus message per newcomer on the other worker, and each newcomer's presence as
 * one bus message per worker — and then every room message exactly once. 200 raw clients, all joining at once.
 */
const N = 200;
const ROOM = "crowd@conference.localhost";
const MUC = "http://jabber.org/protocol/muc";

/** The available presences from the room in what `r` received, per nick. */
function presencesByNick(r: Raw): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of r.text.matchAll(/<presence\b[^>]*>/g)) {
    const tag = m[0];
    if (/ type=["']/.test(tag)) continue;
    const nick = /from=["']crowd@conference\.localhost\/([^"']+)["']/.exec(tag)?.[1];
    if (nick !== undefined) out.set(nick, (out.get(nick) ?? 0) + 1);
  }
  return out;
}

function bodies(r: Raw): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of r.text.matchAll(/<body>(room-[0-9-]+)<\/body>/g)) out.set(m[1], (out.get(m[1]) ?? 0) + 1);
  return out;
}

test(`a room of ${N} on two worker processes: each occupant takes each join presence and each message exactly once`, { timeout: 240_000, skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, async () => {
  const nats = await startNats();
  const port = await freePort();
  const h = hostDir(
    {
      log: { level: "info", format: "json" },
      listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port }],
      xmpp: { allowPlainWithoutTls: true },
      storage: { type: "sqlite", path: "db.sqlite" },
      muc: { enabled: true, maxOccupants: N, maxPresencePerSecond: 10 },
      cluster: { bus: "nats", workers: 2, nats: { servers: [nats.url], subject: "sbcrowd", heartbeatMs: 1000 } },
      admin: { enabled: false },
      drainTimeoutMs: 2000,
    },
    N,
  );
  const host = startHost(h.cfg);
  const clients: Raw[] = [];
  try {
    await waitUntil(() => host.log.logged("switchboard started").length === 2, 30_000, () => `both workers started; stderr:\n${host.log.text}`, 20);
    for (let i = 0; i < N; i += 20) clients.push(...(await Promise.all(Array.from({ length: Math.min(20, N - i) }, (_, k) => rawLogin(port, `h${i + k}`, "pw", "r")))));
    console.error("muc-crowd: logged in", Date.now());
    const workers = new Set(host.log.logged("session started").map((l) => String(l.worker)));
    assert.equal(workers.size, 2, "sessions on both workers");

    // h0 makes the room and accepts the default configuration (an instant room).
    const [owner] = clients;
    owner.send(`<presence to='${ROOM}/h0'><x xmlns='${MUC}'/></presence>`);
    await owner.until(/status code=["']201["']/, 10_000);
    owner.send(`<iq type='set' id='inst' to='${ROOM}'><query xmlns='${MUC}#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`);
    await owner.until(/<iq[^>]*id=["']inst["'][^>]*type=["']result["']|<iq[^>]*type=["']result["'][^>]*id=["']inst["']/, 10_000);
    console.error("muc-crowd: room made", Date.now());
    // Everyone else at once.
    for (let i = 1; i < N; i++) clients[i].send(`<presence to='${ROOM}/h${i}'><x xmlns='${MUC}'><history maxstanzas='0'/></x></presence>`);
    // Each client's text is scanned until it has seen everyone, then no more (200 × ~80 KB every 50 ms otherwise).
    const done = new Set<number>();
    const seen = () => {
      for (const [i, c] of clients.entries()) if (!done.has(i) && presencesByNick(c).size === N) done.add(i);
      return done.size;
    };
    await waitUntil(() => seen() === N, 60_000, () => `${seen()} of ${N} occupants saw all ${N} presences`, 50);

    console.error("muc-crowd: joined", Date.now());
    // Two senders, 10 room messages each.
    for (let k = 0; k < 10; k++) for (const s of [1, N - 1]) clients[s].send(`<message type='groupchat' to='${ROOM}'><body>room-${s}-${k}</body></message>`);
    const got = new Set<number>();
    const full = () => {
      for (const [i, c] of clients.entries()) if (!got.has(i) && bodies(c).size === 20) got.add(i);
      return got.size;
    };
    await waitUntil(() => full() === N, 30_000, () => `${full()} of ${N} occupants got all 20 room messages`, 50);

    // Exactly once each: the join presences (which all came before these messages on each stream) and the messages.
    for (const [i, c] of clients.entries()) {
      const p = presencesByNick(c);
      const twice = [...p].filter(([, n]) => n !== 1);
      assert.deepEqual(twice, [], `h${i}: presences not taken exactly once`);
      const b = bodies(c);
      assert.deepEqual([...b].filter(([, n]) => n !== 1), [], `h${i}: room messages not taken exactly once`);
    }
    assert.doesNotMatch(host.log.text, /peer not reading|link dropped|not heard from|too large/, "no link dropped, no worker lost");
  } finally {
    for (const c of clients) c.destroy();
    host.kill();
    await host.exited;
    await nats.stop();
    h.remove();
  }
});
