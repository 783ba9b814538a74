import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import { waitUntil } from "../../helpers.js";
import { silentLogger } from "../../../src/log/logger.js";
import { RoomDirectory } from "../../../src/xmpp/muc/directory.js";
import type { Online } from "./util.js";
import { SERVICE, configure, errorOf, iq, MUC_OWNER, openRoom, startPair, usersOn } from "./muc-util.js";

// XEP-0045 §6.3 on two workers: the service's disco#items lists the public rooms of both workers, from
// the directory their owners write (src/xmpp/muc/directory.ts), with XEP-0059 paging, asked on either worker.

const DISCO_ITEMS = "http://jabber.org/protocol/disco#items";
const RSM = "http://jabber.org/protocol/rsm";

let pair: Awaited<ReturnType<typeof startPair>>;

before(async () => {
  pair = await startPair(["alice", "bob"]);
}, { timeout: 15_000 });
after(async () => {
  await pair?.stop();
});

async function list(o: Online, ...set: any[]): Promise<{ answer: any; items: [string, string][]; set: any }> {
  const answer = await iq(o, SERVICE, "get", xml("query", { xmlns: DISCO_ITEMS }, ...(set.length === 0 ? [] : [xml("set", { xmlns: RSM }, ...set)])));
  const q = answer.getChild("query", DISCO_ITEMS);
  return { answer, items: (q?.getChildren("item") ?? []).map((i: any) => [i.attrs.jid, i.attrs.name]), set: q?.getChild("set", RSM) };
}
const jids = (r: { items: [string, string][] }) => r.items.map(([j]) => j);
const listedNow = async (o: Online, want: string[]) => {
  await waitUntil(async () => JSON.stringify(jids(await list(o))) === JSON.stringify(want), 8000, `listing ${want.join(" ")}`);
};

test("public rooms of both workers, asked on either; hidden ones not; names; paging; renamed, hidden, destroyed, emptied", { timeout: 60_000 }, async () => {
  const [al, bo] = await usersOn([pair.portA, pair.portB], "alice", "bob");
  try {
    assert.deepEqual((await list(al)).items, [], "no room is public yet");
    const names = Array.from({ length: 10 }, (_, i) => `room${String(i).padStart(2, "0")}@${SERVICE}`);
    for (const [i, room] of names.entries()) {
      const owner = i % 2 === 0 ? al : bo;
      await openRoom(owner, room, "Owner");
      // Every third stays hidden (the default); the others made public, some persistent.
      if (i % 3 !== 2) assert.equal((await configure(owner, room, { "muc#roomconfig_publicroom": "1", "muc#roomconfig_roomname": `Room ${i}`, "muc#roomconfig_persistentroom": i % 4 === 0 ? "1" : "0" })).attrs.type, "result");
    }
    const owners = new Set(names.map((r) => pair.a.proxy.ownerOf(r)));
    assert.equal(owners.size, 2, "the rooms live on both workers");
    const pub = names.filter((_, i) => i % 3 !== 2);
    await listedNow(al, pub);
    const fromB = await list(bo);
    assert.deepEqual(fromB.items, pub.map((r) => [r, `Room ${Number(r.slice(4, 6))}`]), "the same on the other worker, with names");
    assert.equal(fromB.set, undefined, "one page: no <set/> unasked");

    // XEP-0059: 3 a page forwards, then backwards from the end.
    const p1 = await list(al, xml("max", {}, "3"));
    assert.deepEqual(jids(p1), pub.slice(0, 3));
    assert.equal(p1.set.getChildText("count"), String(pub.length));
    assert.equal(p1.set.getChildText("first"), pub[0]);
    const p2 = await list(bo, xml("max", {}, "3"), xml("after", {}, p1.set.getChildText("last")));
    assert.deepEqual(jids(p2), pub.slice(3, 6));
    const p3 = await list(al, xml("max", {}, "3"), xml("after", {}, p2.set.getChildText("last")));
    assert.deepEqual(jids(p3), pub.slice(6));
    const lastPage = await list(al, xml("max", {}, "3"), xml("before"));
    assert.deepEqual(jids(lastPage), pub.slice(-3));
    const prev = await list(al, xml("max", {}, "3"), xml("before", {}, lastPage.set.getChildText("first")));
    assert.deepEqual(jids(prev), pub.slice(-6, -3));
    const countOnly = await list(al, xml("max", {}, "0"));
    assert.deepEqual(countOnly.items, []);
    assert.equal(countOnly.set.getChildText("count"), String(pub.length));
    // Bad input.
    assert.equal(errorOf((await list(al, xml("max", {}, "many"))).answer), "bad-request");
    assert.equal(errorOf((await list(al, xml("after", {}, "not a jid@@"))).answer), "bad-request");
    assert.equal(errorOf((await list(al, xml("after", {}, "someone@elsewhere.example"))).answer), "bad-request");
    assert.equal(errorOf((await list(al, xml("index", {}, "2"))).answer), "feature-not-implemented");

    // Renamed; made hidden; destroyed; a temporary public room emptied.
    const [r0, r1, r3] = [pub[0], pub[1], pub[2]];
    assert.equal((await configure(al, r0, { "muc#roomconfig_roomname": "Renamed" })).attrs.type, "result");
    assert.equal((await configure(bo, r1, { "muc#roomconfig_publicroom": "0" })).attrs.type, "result");
    assert.equal((await iq(bo, r3, "set", xml("query", { xmlns: MUC_OWNER }, xml("destroy")))).attrs.type, "result");
    const left = pub.filter((r) => r !== r1 && r !== r3);
    await listedNow(bo, left);
    assert.deepEqual((await list(bo)).items[0], [r0, "Renamed"]);
    // room07: public and temporary, bob alone in it.
    const temp = `room07@${SERVICE}`;
    assert.ok(left.includes(temp));
    await bo.c.send(xml("presence", { to: `${temp}/Owner`, type: "unavailable" }));
    await listedNow(al, left.filter((r) => r !== temp));
  } finally {
    await Promise.all([al.stop(), bo.stop()]);
  }
});

test("a temporary room of a worker that stopped renewing drops out after the lease, and is swept", { timeout: 30_000 }, async () => {
  const [al] = await usersOn([pair.portA, pair.portB], "alice");
  const store = pair.a.store.mucDirectory;
  try {
    const before = jids(await list(al));
    const now = Date.now();
    const fresh = `ghost-fresh@${SERVICE}`;
    const stale = `ghost-stale@${SERVICE}`;
    // Rows of a worker that died: one renewed 170 s ago (within the 180 s lease), one 200 s ago.
    await store.put(fresh, "Fresh ghost", false, "dead-worker", now - 170_000);
    await store.put(stale, "Stale ghost", false, "dead-worker", now - 200_000);
    const got = jids(await list(al));
    assert.ok(got.includes(fresh) && !got.includes(stale), got.join(" "));
    // Any worker's renewal sweeps the lapsed row; its own rows stay.
    await new RoomDirectory(store, silentLogger()).renew(now);
    assert.equal(await store.remove(stale), false, "swept");
    assert.equal(await store.remove(fresh), true);
    assert.deepEqual(jids(await list(al)), before);
    // A new room is hidden until its owner makes it public.
    await openRoom(al, `hidden@${SERVICE}`, "A");
    assert.ok(!jids(await list(al)).includes(`hidden@${SERVICE}`));
  } finally {
    await al.stop();
  }
});
