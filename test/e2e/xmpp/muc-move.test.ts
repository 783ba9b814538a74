import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as pathJoin } from "node:path";
import { xml } from "@xmpp/client";
import { validate, type Config } from "../../../src/config/config.js";
import { Server } from "../../../src/server/server.js";
import { LocalHub } from "../../../src/cluster/local-bus.js";
import { Router, type Membership } from "../../../src/router/router.js";
import { silentLogger } from "../../../src/log/logger.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import type { MucService } from "../../../src/xmpp/muc/service.js";
import { online, type Online } from "./util.js";
import { MUC_ADMIN, SERVICE, admin, codes, configure, groupchat, iq, itemOf, join, openRoom } from "./muc-util.js";

// XEP-0045 rooms move with their whole state when the ring changes (docs/architecture.md, "Rooms on the ring";
// src/proxy/service-moves.ts): workers of one process on a LocalHub, real clients (@xmpp/client); a third
// worker joins, or the room's worker drains and leaves, while two occupants talk. Every message reaches every
// occupant once, nobody sees a presence from the room, and the room keeps its configuration, affiliations,
// subject, history, occupants and occupant ids on its new owner, the ring's.

const USERS = ["alice", "bob", "carol", "dave", "eve"];
const OCCUPANT_ID = "urn:xmpp:occupant-id:0";

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
  const host = Object.keys(hub.membership().hosts)[0];
  const m: Membership = { hosts: { [host]: workers }, vnodes: hub.vnodes };
  return new Router(m).ownerOf(room)!;
}

const roomsOf = (s: Server): Map<string, unknown> => (s.proxy.services.serviceOf(SERVICE) as MucService).rooms;

/** Every stanza a client gets from now on (waitFor takes from `stanzas`; this keeps its own list). */
function recorder(o: Online): any[] {
  const got: any[] = [];
  o.c.on("stanza", (el: any) => got.push(el));
  return got;
}

/** Waits (with a deadline) until `pred` holds. */
async function until(pred: () => boolean, ms: number, what: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `n` groupchat messages from `o`, one every `gapMs`, bodies `${tag}-${i}`. */
async function talk(o: Online, room: string, tag: string, n: number, gapMs: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await groupchat(o, room, `${tag}-${i}`);
    await new Promise((r) => setTimeout(r, gapMs));
  }
}

/** The bodies of groupchat messages from the room, each with how many times it came. */
function bodies(got: any[], room: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const el of got) {
    if (!el.is("message") || el.attrs.type !== "groupchat" || !String(el.attrs.from).startsWith(`${room}/`)) continue;
    const b = el.getChildText("body");
    if (b !== null && el.getChild("delay") === undefined) out.set(b, (out.get(b) ?? 0) + 1);
  }
  return out;
}

/** The room's state as one who joins later finds it: configuration, subject, history, occupants, affiliations. */
async function checkState(late: Online, room: string, expect: { history: string[]; occupants: string[] }): Promise<void> {
  const got = recorder(late);
  const self = await join(late, room, "Eve", xml("history", { maxstanzas: String(expect.history.length) }));
  assert.deepEqual(codes(self).includes(110), true, `${self}`);
  await until(() => got.some((el) => el.is("message") && el.getChild("subject") !== undefined), 8000, () => got.map(String).join("\n"));
  const occupants = got.filter((el) => el.is("presence") && String(el.attrs.from).startsWith(`${room}/`) && el.attrs.from !== `${room}/Eve`).map((el) => el.attrs.from.split("/")[1]);
  assert.deepEqual(occupants.sort(), [...expect.occupants].sort());
  const carol = got.find((el) => el.is("presence") && el.attrs.from === `${room}/Carol`);
  assert.equal(itemOf(carol).attrs.affiliation, "admin");
  assert.equal(itemOf(carol).attrs.role, "moderator");
  const hist = got.filter((el) => el.is("message") && el.getChild("delay") !== undefined).map((el) => el.getChildText("body"));
  assert.deepEqual(hist, expect.history);
  const subject = got.find((el) => el.is("message") && el.getChild("subject") !== undefined);
  assert.equal(subject.getChildText("subject"), "moving day");
  assert.equal(subject.attrs.from, `${room}/Alice`);
  const info = await iq(late, room, "get", xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }));
  assert.equal(info.getChild("query").getChild("identity").attrs.name, "The moving room");
  const members = await iq(late, room, "get", xml("query", { xmlns: MUC_ADMIN }, xml("item", { affiliation: "member" })));
  // Eve is no moderator: the list is refused, which the room's state decides too (§9.5); the owner asks below.
  assert.equal(members.attrs.type, "error");
}

/** Alice opens a room (instant, then named), Bob a member and Carol an admin, the subject set; all four in. */
async function setUp(al: Online, bo: Online, ca: Online, da: Online, room: string): Promise<void> {
  await openRoom(al, room, "Alice");
  const r = await configure(al, room, { "muc#roomconfig_roomname": "The moving room", "muc#roomconfig_whois": "anyone" });
  assert.equal(r.attrs.type, "result", `${r}`);
  assert.equal((await admin(al, room, { jid: "bob@localhost", affiliation: "member" })).attrs.type, "result");
  assert.equal((await admin(al, room, { jid: "carol@localhost", affiliation: "admin" })).attrs.type, "result");
  await join(bo, room, "Bob");
  await join(ca, room, "Carol");
  await join(da, room, "Dave");
  await al.c.send(xml("message", { to: room, type: "groupchat" }, xml("subject", {}, "moving day")));
  await da.waitFor((el) => el.is("message") && el.getChildText("subject") === "moving day", 8000);
}

/**
 * Alice and Bob each send `n` messages while `change` runs; every occupant gets each of the 2n exactly once,
 * and no presence from the room; Alice's occupant id as Dave sees it stays the same.
 */
async function chatThrough(os: { al: Online; bo: Online; ca: Online; da: Online }, room: string, n: number, change: () => Promise<void>): Promise<string[]> {
  const { al, bo, ca, da } = os;
  // Alice's occupant id before the move, as Dave sees it.
  await groupchat(al, room, "before");
  const before = await da.waitFor((el) => el.is("message") && el.getChildText("body") === "before", 8000);
  const idBefore = before.getChild("occupant-id", OCCUPANT_ID)?.attrs.id;
  assert.ok(idBefore);
  const recs = [al, bo, ca, da].map(recorder);
  const talking = Promise.all([talk(al, room, "a", n, 4), talk(bo, room, "b", n, 4)]);
  await new Promise((r) => setTimeout(r, 40));
  await change();
  await talking;
  const want = [...Array(n).keys()].flatMap((i) => [`a-${i}`, `b-${i}`]);
  // The last word after everything: anything late (a duplicate) would come before it on each occupant's path.
  await groupchat(al, room, "end");
  for (const got of recs) await until(() => (bodies(got, room).get("end") ?? 0) > 0 && want.every((w) => bodies(got, room).has(w)), 15_000, () => `missing ${want.filter((w) => !bodies(got, room).has(w)).join(" ")}`);
  for (const [i, got] of recs.entries()) {
    const seen = bodies(got, room);
    const twice = [...seen].filter(([, k]) => k !== 1).map(([b]) => b);
    assert.deepEqual(twice, [], `occupant ${i} got these more than once`);
    assert.equal(seen.size, 2 * n + 1, `occupant ${i}: ${[...seen.keys()].join(" ")}`);
    const presences = got.filter((el) => el.is("presence") && String(el.attrs.from).startsWith(room));
    assert.deepEqual(presences.map(String), [], `occupant ${i} saw presence from the room`);
    const errors = got.filter((el) => el.attrs.type === "error");
    assert.deepEqual(errors.map(String), [], `occupant ${i} got errors`);
  }
  const after = recs[3].filter((el) => el.is("message") && el.getChildText("body")?.startsWith("a-"));
  for (const m of after) assert.equal(m.getChild("occupant-id", OCCUPANT_ID)?.attrs.id, idBefore);
  // The order the room sent them in, as Dave got them.
  return recs[3].filter((el) => el.is("message") && el.attrs.type === "groupchat" && el.getChildText("body") !== null).map((el) => el.getChildText("body"));
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
      const ev = await online(w2.port("xmpp", "tcp"), "eve", "eve-pass", { resource: "r" });
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
      const ev = await online(b.servers.get(next)!.port("xmpp", "tcp"), "eve", "eve-pass", { resource: "r" });
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
