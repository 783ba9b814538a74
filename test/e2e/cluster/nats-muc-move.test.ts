import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { xml } from "@xmpp/client";
import { validate } from "../../../src/config/config.js";
import { Server } from "../../../src/server/server.js";
import { silentLogger } from "../../../src/log/logger.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { waitUntil } from "../../helpers.js";
import { online } from "../xmpp/util.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { MUC_ADMIN, SERVICE, iq } from "../xmpp/muc-util.js";
import { chatThrough, checkState, lateJoiner, ownerOn, roomsOf, setUp } from "../xmpp/muc-move-util.js";

/**
 * A room moving between hosts over a real nats-server, where workers learn of a ring change up to a heartbeat
 * apart (src/proxy/service-moves.ts): hosts A and B, one worker each, the room on A with occupants on both;
 * host C joins while two occupants talk, and the room moves to C (its owner on the ring of three); then C
 * drains and leaves, and the room moves back to A. Real clients (@xmpp/client); each move keeps every message
 * once for every occupant, no presence from the room, and the room's configuration, affiliations, subject,
 * history and occupants.
 */
describe("a room moving between hosts when the ring changes", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  let dir: string;
  const workers = new Map<string, Server>();
  const HOSTS: Record<string, [string, string]> = { A: ["hostA-w0", "10.0.0.1"], B: ["hostB-w0", "10.0.0.2"], C: ["hostC-w0", "10.0.0.3"] };
  const VNODES = 256;
  const ring = (...hs: string[]) => Object.fromEntries(hs.map((h) => [HOSTS[h][1], [HOSTS[h][0]]]));
  const configOf = (hostAddress: string) =>
    validate({
      storage: { type: "sqlite", path: join(dir, "db.sqlite") },
      listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 }],
      muc: { enabled: true, historyMessages: 10 },
      cluster: { bus: "nats", hostAddress, vnodes: VNODES, nats: { servers: [nats.url], subject: "sbmucmove", heartbeatMs: 200 } },
    });
  const start = async (h: string) => {
    const [id, host] = HOSTS[h];
    const s = await Server.start(configOf(host), { log: silentLogger(), workerId: id, expectWorkers: 1 });
    workers.set(h, s);
    return s;
  };
  const hostsSeen = (n: number) => [...workers.values()].every((s) => Object.keys(s.bus.membership().hosts).length === n);

  before(async () => {
    nats = await startNats();
    dir = mkdtempSync(join(tmpdir(), "switchboard-natsmucmove-"));
    const [a] = await Promise.all([start("A"), start("B")]);
    for (const u of ["alice", "bob", "carol", "dave", "eve"]) await a.store.putUser(u, await deriveCredentials(`${u}-pass`, 4096));
    await waitUntil(() => hostsSeen(2), 5000, "both hosts in the ring", 20);
  }, { timeout: 30_000 });
  after(async () => {
    for (const s of workers.values()) await s.stop();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("host C joins: the room moves to it; C drains and leaves: the room moves back; nothing lost or doubled", { timeout: 120_000 }, async () => {
    const room = Array.from({ length: 2000 }, (_, i) => `hop${i}@${SERVICE}`).find((r) => ownerOn(ring("A", "B"), VNODES, r) === HOSTS.A[0] && ownerOn(ring("A", "B", "C"), VNODES, r) === HOSTS.C[0])!;
    assert.ok(room, "a room that moves from A to C");
    const pA = workers.get("A")!.port("xmpp", "tcp");
    const pB = workers.get("B")!.port("xmpp", "tcp");
    const [al, bo, ca, da] = await Promise.all([online(pA, "alice", "alice-pass", { resource: "r" }), online(pB, "bob", "bob-pass", { resource: "r" }), online(pA, "carol", "carol-pass", { resource: "r" }), online(pB, "dave", "dave-pass", { resource: "r" })]);
    try {
      await setUp(al, bo, ca, da, room);
      assert.ok(roomsOf(workers.get("A")!).has(room));

      const order = await chatThrough({ al, bo, ca, da }, room, 60, async () => {
        await start("C");
        await waitUntil(() => hostsSeen(3), 5000, "three hosts in the ring", 20);
      });
      const c = workers.get("C")!;
      assert.ok(roomsOf(c).has(room), "the room lives on C, its owner now");
      assert.ok(!roomsOf(workers.get("A")!).has(room));
      assert.equal(c.proxy.services.moves.stats.movedIn, 1);
      const members = await iq(al, room, "get", xml("query", { xmlns: MUC_ADMIN }, xml("item", { affiliation: "member" })));
      assert.deepEqual(members.getChild("query").getChildren("item").map((i: any) => i.attrs.jid), ["bob@localhost"]);
      const ev = await lateJoiner(c.port("xmpp", "tcp"), "eve", "r");
      try {
        await checkState(ev, room, { history: order.slice(-4), occupants: ["Alice", "Bob", "Carol", "Dave"] });
        // Eve leaves, so that the next move is checked with the four who were there.
        await ev.c.send(xml("presence", { to: `${room}/Eve`, type: "unavailable" }));
        await al.waitFor((el) => el.is("presence") && el.attrs.from === `${room}/Eve` && el.attrs.type === "unavailable", 8000);
      } finally {
        await ev.stop();
      }
      for (const o of [bo, ca, da]) await o.waitFor((el) => el.is("presence") && el.attrs.from === `${room}/Eve` && el.attrs.type === "unavailable", 8000);

      const order2 = await chatThrough({ al, bo, ca, da }, room, 60, async () => {
        await c.stop();
        workers.delete("C");
      }, "2:");
      await waitUntil(() => hostsSeen(2), 5000, "two hosts in the ring", 20);
      assert.ok(roomsOf(workers.get("A")!).has(room), "back on A, its owner without C");
      const ev2 = await lateJoiner(pB, "eve", "r2");
      try {
        await checkState(ev2, room, { history: order2.slice(-2), occupants: ["Alice", "Bob", "Carol", "Dave"] });
      } finally {
        await ev2.stop();
      }
    } finally {
      await Promise.all([al.stop(), bo.stop(), ca.stop(), da.stop()]);
    }
  });
});
