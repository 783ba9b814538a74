import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as pathJoin } from "node:path";
import { xml } from "@xmpp/client";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";
import { SERVICE, admin, configure, errorOf, iq, itemOf, join, openRoom, startPair, usersOn } from "./muc-util.js";
import { waitUntil } from "../../helpers.js";

// XEP-0045 persistent rooms: configuration, affiliations and subject kept in the store (component "muc"),
// read back by the room's owner worker after both workers restart; temporary rooms are not kept. On
// SQLite and on PostgreSQL.

const USERS = ["alice", "bob", "carol"];

async function survivesRestart(storage: Record<string, unknown>): Promise<void> {
  const room = `keep@${SERVICE}`;
  const temp = `temp@${SERVICE}`;
  let pair = await startPair(USERS, {}, storage);
  try {
    const [al, bo] = await usersOn([pair.portA, pair.portB], "alice", "bob");
    await openRoom(al, room, "Alice");
    const set = await configure(al, room, { "muc#roomconfig_persistentroom": "1", "muc#roomconfig_roomname": "Kept", "muc#roomconfig_membersonly": "1" });
    assert.equal(set.attrs.type, "result");
    assert.equal((await admin(al, room, { jid: "bob@localhost", affiliation: "member" })).attrs.type, "result");
    await al.c.send(xml("message", { to: room, type: "groupchat" }, xml("subject", {}, "Persisted subject")));
    await al.waitFor((el) => el.is("message") && el.getChildText("subject") === "Persisted subject");
    await openRoom(bo, temp, "Bob");
    await waitUntil(async () => (await pair.a.store.muc.rooms()).length === 1 && (await pair.a.store.muc.room(room))?.includes("Persisted subject") === true, 5000, "the room written");
    await al.stop();
    await bo.stop();
  } finally {
    await pair.stop();
  }

  pair = await startPair(USERS, {}, storage);
  try {
    assert.deepEqual(await pair.a.store.muc.rooms(), [room], "only the persistent room is kept");
    const [al, bo, ca] = await usersOn([pair.portA, pair.portB], "alice", "bob", "carol");
    try {
      assert.equal(errorOf(await join(ca, room, "Carol")), "registration-required", "still members-only");
      const bob = await join(bo, room, "Bob");
      assert.equal(itemOf(bob).attrs.affiliation, "member", "Bob is still a member");
      const subject = await bo.waitFor((el) => el.is("message") && el.getChild("subject") !== undefined);
      assert.equal(subject.getChildText("subject"), "Persisted subject");
      const alice = await join(al, room, "Alice");
      assert.equal(itemOf(alice).attrs.affiliation, "owner");
      const info = (await iq(ca, room, "get", xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }))).getChild("query");
      assert.equal(info.getChild("identity").attrs.name, "Kept");
      assert.ok(info.getChildren("feature").some((f: any) => f.attrs.var === "muc_persistent"));
      assert.equal(errorOf(await iq(ca, temp, "get", xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }))), "item-not-found", "the temporary room is gone");
      // Destroyed: out of the store too.
      const d = await iq(al, room, "set", xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" }, xml("destroy")));
      assert.equal(d.attrs.type, "result");
      await waitUntil(async () => (await pair.a.store.muc.rooms()).length === 0, 5000, "the destroyed room removed from the store");
    } finally {
      await Promise.all([al.stop(), bo.stop(), ca.stop()]);
    }
  } finally {
    await pair.stop();
  }
}

test("SQLite: a persistent room's configuration, members and subject survive a restart of both workers", { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(pathJoin(tmpdir(), "switchboard-mucp-"));
  try {
    await survivesRestart({ type: "sqlite", path: pathJoin(dir, "db.sqlite") });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("PostgreSQL", { skip: HAVE_POSTGRES ?? false }, () => {
  let server: PostgresServer;
  before(async () => void (server = await startPostgres()), { timeout: 60_000 });
  after(() => server?.stop());

  test("the same, on one PostgreSQL database", { timeout: 60_000 }, async () => {
    await survivesRestart({ type: "postgres", postgres: await server.createDatabase("mucp") });
  });
});
