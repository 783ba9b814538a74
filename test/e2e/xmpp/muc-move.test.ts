import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as pathJoin } from "node:path";
import { xml } from "@xmpp/client";
import { validate, type Config } from "../../../src/config/config.js";
import { Server } from "../../../src/server/server.js";
import { LocalHub } from "../../../src/cluster/local-bus.js";
import { silentLogger } from "../../../src/log/logger.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { online } from "./util.js";
import { MUC_ADMIN, SERVICE, codes, configure, iq, itemOf, join, openRoom } from "./muc-util.js";
import { chatThrough, checkState, lateJoiner, ownerOn as ownerOnRing, roomsOf, setUp } from "./muc-move-util.js";

// XEP-0045 rooms move with their whole state when the ring changes (docs/architecture.md, "Rooms on the ring";
// src/proxy/service-moves.ts): workers of one process on a LocalHub, real clients (@xmpp/client); a third
// worker joins, or the room's worker drains and leaves, while two occupants talk. Every message reaches every
// occupant once, nobody sees a presence from the room, and the room keeps its configuration, affiliations,
// subject, history, occupants and occupant ids on its new owner, the ring's.

const USERS = ["alice", "bob", "carol", "dave", "eve"];

interface Bed {
  hub: LocalHub;
  config: Config;
  servers: Map<string, Server>;
  add(id: string): Promise<Server>;
  stop(): Promise<void>;
}

async function bed(ids: string[]): Promise<Bed> {
  const dir = mkdtempSync(pathJoin(tmpdir(), "switchboard-muc-move-"));
  const hub = new LocalHub(64);
  const config = validate({
    storage: { type: "sqlite", path: pathJoin(dir, "db.sqlite") },
    listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 }],
    muc: { enabled: true, historyMessages: 10 },
  });
  const servers = new Map<string, Server>();
  const add = async (id: string) => {
    const s = await Server.start(config, { log: silentLogger(), hub, workerId: id });
    servers.set(id, s);
    return s;
  };
  for (const id of ids) await add(id);
  const first = servers.get(ids[0])!;
  for (const u of USERS) await first.store.putUser(u, await deriveCredentials(`${u}-pass`, config.auth.scramIterations));
  return {
    hub,
    config,
    servers,
    add,
    async stop() {
      for (const s of servers.values()) await s.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The owner of `room` on a ring of these workers (one host, as the hub has). */
function ownerOn(hub: LocalHub, workers: string[], room: string): string {
  return ownerOnRing({ [Object.keys(hub.membership().hosts)[0]]: workers }, hub.vnodes, room);
}

test("a third worker joins: the room moves to it with its occupants, and no message is lost or doubled", { timeout: 60_000 }, async () => {
  const b = await bed(["w0", "w1"]);
  try {
    const room = Array.from({ length: 400 }, (_, i) => `move${i}@${SERVICE}`).find((r) => ownerOn(b.hub, ["w0", "w1"], r) === "w0" && ownerOn(b.hub, ["w0", "w1", "w2"], r) === "w2")!;
    assert.ok(room);
    const p0 = b.servers.get("w0")!.port("xmpp", "tcp");
    const p1 = b.servers.get("w1")!.port("xmpp", "tcp");
    // Alice and Carol on w0 (the room's worker), Bob and Dave on w1.
    const [al, bo, ca, da] = await Promise.all([online(p0, "alice", "alice-pass", { resource: "r" }), online(p1, "bob", "bob-pass", { resource: "r" }), online(p0, "carol", "carol-pass", { resource: "r" }), online(p1, "dave", "dave-pass", { resource: "r" })]);
    try {
      await setUp(al, bo, ca, da, room);
      assert.ok(roomsOf(b.servers.get("w0")!).has(room));
      const order = await chatThrough({ al, bo, ca, da }, room, 40, async () => {
        await b.add("w2");
      });
      const w2 = b.servers.get("w2")!;
      assert.equal(ownerOn(b.hub, ["w0", "w1", "w2"], room), "w2");
      assert.ok(roomsOf(w2).has(room), "the room lives on its new owner");
      assert.ok(!roomsOf(b.servers.get("w0")!).has(room), "and not on its old one");
      assert.equal(w2.proxy.services.moves.stats.movedIn, 1);
      // The owner still sees the member list: affiliations came along.
      const members = await iq(al, room, "get", xml("query", { xmlns: MUC_ADMIN }, xml("item", { affiliation: "member" })));
      assert.deepEqual(members.getChild("query").getChildren("item").map((i: any) => i.attrs.jid), ["bob@localhost"]);
      const ev = await lateJoiner(w2.port("xmpp", "tcp"), "eve", "r");
      try {
        await checkState(ev, room, { history: order.slice(-3), occupants: ["Alice", "Bob", "Carol", "Dave"] });
      } finally {
        await ev.stop();
      }
    } finally {
      await Promise.all([al.stop(), bo.stop(), ca.stop(), da.stop()]);
    }
  } finally {
    await b.stop();
  }
});

test("the room's worker drains and leaves: the room moves to the owner without it, and no message is lost or doubled", { timeout: 60_000 }, async () => {
  const b = await bed(["w0", "w1", "w2"]);
  try {
    const room = Array.from({ length: 400 }, (_, i) => `drain${i}@${SERVICE}`).find((r) => ownerOn(b.hub, ["w0", "w1", "w2"], r) === "w2")!;
    const next = ownerOn(b.hub, ["w0", "w1"], room);
    const p0 = b.servers.get("w0")!.port("xmpp", "tcp");
    const p1 = b.servers.get("w1")!.port("xmpp", "tcp");
    const [al, bo, ca, da] = await Promise.all([online(p0, "alice", "alice-pass", { resource: "r" }), online(p1, "bob", "bob-pass", { resource: "r" }), online(p0, "carol", "carol-pass", { resource: "r" }), online(p1, "dave", "dave-pass", { resource: "r" })]);
    try {
      await setUp(al, bo, ca, da, room);
      assert.ok(roomsOf(b.servers.get("w2")!).has(room));
      const order = await chatThrough({ al, bo, ca, da }, room, 40, async () => {
        await b.servers.get("w2")!.stop();
        b.servers.delete("w2");
      });
      assert.ok(roomsOf(b.servers.get(next)!).has(room), `the room lives on ${next}`);
      const ev = await lateJoiner(b.servers.get(next)!.port("xmpp", "tcp"), "eve", "r");
      try {
        await checkState(ev, room, { history: order.slice(-2), occupants: ["Alice", "Bob", "Carol", "Dave"] });
      } finally {
        await ev.stop();
      }
    } finally {
      await Promise.all([al.stop(), bo.stop(), ca.stop(), da.stop()]);
    }
  } finally {
    await b.stop();
  }
});

test("the room's worker dies: its occupants elsewhere are told they are out (110, 333) and join again; a persistent room keeps what the store has", { timeout: 60_000 }, async () => {
  const beds = await bed(["w0", "w1"]);
  try {
    const rooms = Array.from({ length: 400 }, (_, i) => `gone${i}@${SERVICE}`).filter((r) => ownerOn(beds.hub, ["w0", "w1"], r) === "w1");
    const [temp, kept] = rooms;
    const p0 = beds.servers.get("w0")!.port("xmpp", "tcp");
    const p1 = beds.servers.get("w1")!.port("xmpp", "tcp");
    const [al, ca, bo] = await Promise.all([online(p0, "alice", "alice-pass", { resource: "r" }), online(p0, "carol", "carol-pass", { resource: "r" }), online(p1, "bob", "bob-pass", { resource: "r" })]);
    try {
      for (const room of [temp, kept]) {
        await openRoom(al, room, "Alice");
        await join(ca, room, "Carol");
        await join(bo, room, "Bob");
      }
      assert.equal((await configure(al, kept, { "muc#roomconfig_persistentroom": "1", "muc#roomconfig_roomname": "Kept" })).attrs.type, "result");
      // w1 leaves the ring without a word, as when it dies.
      beds.servers.get("w1")!.bus.close();
      for (const [o, nick] of [[al, "Alice"], [ca, "Carol"]] as const) {
        for (const room of [temp, kept]) {
          const out = await o.waitFor((el) => el.is("presence") && el.attrs.from === `${room}/${nick}` && el.attrs.type === "unavailable", 8000);
          assert.deepEqual(codes(out).sort(), [110, 333]);
          assert.equal(itemOf(out).attrs.role, "none");
        }
      }
      // The temporary room is gone: joining again makes a new one (201); the persistent one is read from the store.
      assert.deepEqual(codes(await join(al, temp, "Alice")).sort(), [110, 201]);
      assert.deepEqual(codes(await join(al, kept, "Alice")), [110]);
      const info = await iq(al, kept, "get", xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }));
      assert.equal(info.getChild("query").getChild("identity").attrs.name, "Kept");
      assert.ok(roomsOf(beds.servers.get("w0")!).has(kept));
    } finally {
      await Promise.all([al.stop(), ca.stop(), bo.stop()]);
    }
  } finally {
    await beds.stop();
  }
});
