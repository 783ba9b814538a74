import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as pathJoin } from "node:path";
import { validate } from "../../../src/config/config.js";
import { Server } from "../../../src/server/server.js";
import { LocalHub } from "../../../src/cluster/local-bus.js";
import { silentLogger } from "../../../src/log/logger.js";
import { deriveCredentials } from "../../../src/store/scram.js";
import { TLS_FILES } from "../../helpers.js";
import { SLIXMPP_SKIP, spawnSlixmpp } from "./slixmpp.js";
import { SERVICE } from "./muc-util.js";
import { ownerOn, roomsOf } from "./muc-move-util.js";

// slixmpp's xep_0045 in a room that moves when a third worker joins the ring (src/proxy/service-moves.ts):
// test/fixtures/slixmpp_muc_move.py talks in the room from two workers while the test adds the third.

test("slixmpp xep_0045: occupants on two workers keep talking while a third worker joins and the room moves to it", { timeout: 90_000, skip: SLIXMPP_SKIP }, async () => {
  const dir = mkdtempSync(pathJoin(tmpdir(), "switchboard-slix-move-"));
  const hub = new LocalHub(64);
  const config = validate({
    storage: { type: "sqlite", path: pathJoin(dir, "db.sqlite") },
    listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0, tls: TLS_FILES }],
    muc: { enabled: true },
  });
  const servers: Server[] = [];
  try {
    for (const id of ["w0", "w1"]) servers.push(await Server.start(config, { log: silentLogger(), hub, workerId: id }));
    for (const u of ["alice", "bob"]) await servers[0].store.putUser(u, await deriveCredentials(`${u}-pw`, 4096));
    const host = Object.keys(hub.membership().hosts)[0];
    const room = Array.from({ length: 400 }, (_, i) => `slix${i}@${SERVICE}`).find((r) => ownerOn({ [host]: ["w0", "w1"] }, 64, r) === "w0" && ownerOn({ [host]: ["w0", "w1", "w2"] }, 64, r) === "w2")!;
    const N = 40;
    const script = spawnSlixmpp("slixmpp_muc_move.py", [String(servers[0].port("xmpp", "tcp")), String(servers[1].port("xmpp", "tcp")), TLS_FILES.cert, room, String(N)]);
    try {
      const next = async () => {
        for (;;) {
          const l = await script.line(40_000);
          if (l.startsWith("= ")) return l.slice(2);
        }
      };
      assert.equal(await next(), "ready");
      assert.ok(roomsOf(servers[0]).has(room));
      script.tell("go");
      await new Promise((r) => setTimeout(r, 60));
      servers.push(await Server.start(config, { log: silentLogger(), hub, workerId: "w2" }));
      assert.equal(await next(), `alice got ${2 * N + 1} twice [] presences []`);
      assert.equal(await next(), `bob got ${2 * N + 1} twice [] presences []`);
      assert.equal(await next(), "room ['Slix moving room']");
      assert.ok(roomsOf(servers[2]).has(room), "the room lives on w2");
      assert.equal(servers[2].proxy.services.moves.stats.movedIn, 1);
    } finally {
      script.kill();
    }
  } finally {
    for (const s of servers) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
