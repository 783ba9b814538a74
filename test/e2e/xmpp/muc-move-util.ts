import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import { Router, type Membership } from "../../../src/router/router.js";
import type { Server } from "../../../src/server/server.js";
import type { MucService } from "../../../src/xmpp/muc/service.js";
import { online, type Online } from "./util.js";
import { MUC_ADMIN, SERVICE, admin, codes, configure, groupchat, iq, itemOf, join, openRoom } from "./muc-util.js";

// Rooms moving between workers with real clients (muc-move.test.ts on a LocalHub, test/e2e/cluster/nats-muc-move.test.ts
// over nats-server): the room is set up, talked in through the ring change, and checked on its new owner.

const OCCUPANT_ID = "urn:xmpp:occupant-id:0";

/** The owner of `room` on a ring of these hosts and workers. */
export function ownerOn(hosts: Record<string, string[]>, vnodes: number, room: string): string {
  const m: Membership = { hosts, vnodes };
  return new Router(m).ownerOf(room)!;
}

export const roomsOf = (s: Server): Map<string, unknown> => (s.proxy.services.serviceOf(SERVICE) as MucService).rooms;

/** Every stanza a client gets from now on (waitFor takes from `stanzas`; this keeps its own list). */
export function recorder(o: Online): any[] {
  const got: any[] = [];
  o.c.on("stanza", (el: any) => got.push(el));
  return got;
}

/** Waits (with a deadline) until `pred` holds. */
export async function until(pred: () => boolean, ms: number, what: () => string): Promise<void> {
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
export async function checkState(late: Online, room: string, expect: { history: string[]; occupants: string[] }): Promise<void> {
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
export async function setUp(al: Online, bo: Online, ca: Online, da: Online, room: string): Promise<void> {
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
export async function chatThrough(os: { al: Online; bo: Online; ca: Online; da: Online }, room: string, n: number, change: () => Promise<void>, round = ""): Promise<string[]> {
  const { al, bo, ca, da } = os;
  // Alice's occupant id before the move, as Dave sees it.
  await groupchat(al, room, `${round}before`);
  const before = await da.waitFor((el) => el.is("message") && el.getChildText("body") === `${round}before`, 8000);
  const idBefore = before.getChild("occupant-id", OCCUPANT_ID)?.attrs.id;
  assert.ok(idBefore);
  const recs = [al, bo, ca, da].map(recorder);
  const talking = Promise.all([talk(al, room, `${round}a`, n, 4), talk(bo, room, `${round}b`, n, 4)]);
  await new Promise((r) => setTimeout(r, 40));
  await change();
  await talking;
  const want = [...Array(n).keys()].flatMap((i) => [`${round}a-${i}`, `${round}b-${i}`]);
  // The last word after everything: anything late (a duplicate) would come before it on each occupant's path.
  const end = `${round}end`;
  await groupchat(al, room, end);
  for (const got of recs) await until(() => (bodies(got, room).get(end) ?? 0) > 0 && want.every((w) => bodies(got, room).has(w)), 15_000, () => `missing ${want.filter((w) => !bodies(got, room).has(w)).join(" ")}`);
  for (const [i, got] of recs.entries()) {
    // Alice's own `before` may come back after her recorder started: only this round's talk counts.
    const seen = new Map([...bodies(got, room)].filter(([b]) => b !== `${round}before`));
    const twice = [...seen].filter(([, k]) => k !== 1).map(([b]) => b);
    assert.deepEqual(twice, [], `occupant ${i} got these more than once`);
    assert.equal(seen.size, 2 * n + 1, `occupant ${i}: ${[...seen.keys()].join(" ")}`);
    const presences = got.filter((el) => el.is("presence") && String(el.attrs.from).startsWith(room));
    assert.deepEqual(presences.map(String), [], `occupant ${i} saw presence from the room`);
    const errors = got.filter((el) => el.attrs.type === "error");
    assert.deepEqual(errors.map(String), [], `occupant ${i} got errors`);
  }
  const after = recs[3].filter((el) => el.is("message") && el.getChildText("body")?.startsWith(`${round}a-`));
  for (const m of after) assert.equal(m.getChild("occupant-id", OCCUPANT_ID)?.attrs.id, idBefore);
  // The order the room sent them in, as Dave got them.
  return recs[3].filter((el) => el.is("message") && el.attrs.type === "groupchat" && el.getChildText("body") !== null).map((el) => el.getChildText("body"));
}


/**
 * A late joiner, online with its initial presence sent once XEP-0198 is enabled: @xmpp/client 0.14 may count the
 * echoes of a presence sent before <enabled/> into its `h` (its counter is reset when the enable procedure
 * resolves, after the echoes' middleware ran late), and the server then ends the stream for acknowledging too
 * much (§6 handled-count-too-high); a login whose presence waits for its owner's barrier on another host shows it.
 */
export async function lateJoiner(port: number, user: string, resource: string): Promise<Online> {
  const o = await online(port, user, `${user}-pass`, { resource, presence: false });
  await until(() => o.c.streamManagement?.enabled === true, 5000, () => "XEP-0198 enabled");
  await o.c.send(xml("presence"));
  return o;
}
