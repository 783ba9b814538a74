import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { xml } from "@xmpp/client";
import { waitUntil } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { HostLog } from "./host-log.js";
import { CLI } from "./host-proc.js";
import { online, type Online } from "../xmpp/util.js";
import { SERVICE, admin, bodyFrom, codes, configure, errorOf, groupchat, instant, iq, itemOf, join as joinRoom, presenceFrom } from "../xmpp/muc-util.js";

/**
 * XEP-0045 on a real host: `switchboard start` with two worker processes on a real nats-server, so
 * the room's stanzas and its fan-out cross between processes in the bus's wire format (service and
 * fanout ops). The primary hands connections to the workers in turn: occupants on both. With room
 * archives on: a query reaches the room's process, and an iq to room/nick the occupant's, over the bus.
 */
describe("MUC on a host of two worker processes", { skip: HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)" }, () => {
  let nats: NatsServer;
  let dir: string;
  let port: number;
  let host: ChildProcess;
  const hostLog = new HostLog();
  const clients: Online[] = [];
  const workerOf = (jid: string): string => String(hostLog.logged("session started").filter((l) => l.address === jid).pop()?.worker ?? "");

  before(async () => {
    nats = await startNats();
    dir = mkdtempSync(join(tmpdir(), "switchboard-muchost-"));
    port = await freePort();
    const cfg = join(dir, "config.json");
    writeFileSync(
      cfg,
      JSON.stringify({
        log: { level: "info", format: "json" },
        listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port }],
        storage: { type: "sqlite", path: "db.sqlite" },
        muc: { enabled: true, mam: { enabled: true } },
        cluster: { bus: "nats", workers: 2, nats: { servers: [nats.url], subject: "sbmuc", heartbeatMs: 1000 } },
        admin: { enabled: false },
        drainTimeoutMs: 2000,
      }),
    );
    writeFileSync(join(dir, "users.csv"), Array.from({ length: 5 }, (_, i) => `m${i},pw`).join("\n"));
    const imp = spawnSync(process.execPath, [CLI, "users", "import", join(dir, "users.csv"), "--config", cfg], { encoding: "utf8" });
    assert.equal(imp.status, 0, imp.stderr);
    host = spawn(process.execPath, [CLI, "start", "--config", cfg], { stdio: ["ignore", "ignore", "pipe"] });
    host.stderr!.on("data", hostLog.onData);
    await waitUntil(() => hostLog.logged("switchboard started").length === 2, 20_000, () => `both workers started; stderr:\n${hostLog.text}`, 20);
    for (let i = 0; i < 4; i++) clients.push(await online(port, `m${i}`, "pw", { resource: "r" }));
    await waitUntil(() => clients.every((c) => workerOf(c.jid) !== ""), 5000, () => `sessions logged; stderr:\n${hostLog.text}`, 20);
  }, { timeout: 40_000 });

  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    if (host.exitCode === null) {
      const exited = new Promise((r) => host.once("exit", r));
      host.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 8000))]);
      if (host.exitCode === null) host.kill("SIGKILL");
    }
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("occupants on both workers: join, conflict, groupchat to all, history, private messages, kick, in the wire format", { timeout: 60_000 }, async () => {
    assert.equal(new Set(clients.map((c) => workerOf(c.jid))).size, 2, `occupants on both workers: ${clients.map((c) => `${c.jid} ${workerOf(c.jid)}`).join(", ")}`);
    // Several rooms: their owners are spread over the workers by the ring.
    for (const name of ["alpha", "beta", "gamma"]) {
      const room = `${name}@${SERVICE}`;
      const [a, b, c, d] = clients;
      assert.deepEqual(codes(await joinRoom(a, room, "A")).sort(), [110, 201]);
      await instant(a, room);
      for (let i = 0; i < 3; i++) await groupchat(a, room, `${name} early ${i}`);
      await a.waitFor(bodyFrom(`${room}/A`, `${name} early 2`));
      assert.deepEqual(codes(await joinRoom(b, room, "B", xml("history", { maxstanzas: "2" }))), [110]);
      const hist = await b.waitFor((el) => el.is("message") && el.getChild("subject") !== undefined).then(() => b.stanzas.filter((el) => el.is("message") && el.getChild("body") !== undefined));
      assert.deepEqual(hist.map((m) => m.getChildText("body")), [`${name} early 1`, `${name} early 2`]);
      b.stanzas.length = 0;
      await joinRoom(c, room, "C");
      assert.equal(errorOf(await joinRoom(d, room, "C")), "conflict");
      await joinRoom(d, room, "D");
      for (const o of [a, b, c, d]) o.stanzas.length = 0;

      for (const [i, o] of [a, b, c, d].entries()) await groupchat(o, room, `${name} ${i}`);
      for (const o of [a, b, c, d]) for (const [i, n] of ["A", "B", "C", "D"].entries()) await o.waitFor(bodyFrom(`${room}/${n}`, `${name} ${i}`), 8000);

      await d.c.send(xml("message", { to: `${room}/B`, type: "chat" }, xml("body", {}, `${name} pm`)));
      await b.waitFor(bodyFrom(`${room}/D`, `${name} pm`));
      assert.equal((await admin(a, room, { nick: "C", role: "none" }, "test")).attrs.type, "result");
      const kicked = await c.waitFor((el) => presenceFrom(`${room}/C`, 110, 307)(el) && el.attrs.type === "unavailable");
      assert.equal(itemOf(kicked).getChildText("reason"), "test");
      await d.waitFor((el) => presenceFrom(`${room}/C`, 307)(el));
      for (const o of [a, b, d]) await o.c.send(xml("presence", { to: `${room}/x`, type: "unavailable" }));
      await a.waitFor((el) => presenceFrom(`${room}/A`, 110)(el) && el.attrs.type === "unavailable");
      for (const o of clients) o.stanzas.length = 0;
    }
  });

  test("room archives, the room list and iqs to occupants across the two processes", { timeout: 60_000 }, async () => {
    const [a, b, c] = clients;
    const VERSION = "jabber:iq:version";
    b.c.iqCallee.get(VERSION, "query", () => xml("query", { xmlns: VERSION }, xml("name", {}, "b's client")));
    const rooms = ["delta", "epsilon", "zeta"].map((n) => `${n}@${SERVICE}`);
    for (const room of rooms) {
      await joinRoom(a, room, "A");
      assert.equal((await configure(a, room, { "muc#roomconfig_publicroom": "1", "muc#roomconfig_roomname": room.slice(0, room.indexOf("@")) })).attrs.type, "result");
      await joinRoom(b, room, "B");
      await groupchat(a, room, `${room} archived`);
      const got = await b.waitFor(bodyFrom(`${room}/A`, `${room} archived`), 8000);
      assert.equal(got.getChild("stanza-id", "urn:xmpp:sid:0")?.attrs.by, room);
      // The archive, read by b from wherever the room lives.
      const fin = await iq(b, room, "set", xml("query", { xmlns: "urn:xmpp:mam:2", queryid: room }));
      assert.equal(fin.attrs.type, "result", `${fin}`);
      const results = b.stanzas.filter((el) => el.is("message") && el.getChild("result", "urn:xmpp:mam:2")?.attrs.queryid === room);
      assert.deepEqual(results.map((m) => m.getChild("result", "urn:xmpp:mam:2").getChild("forwarded", "urn:xmpp:forward:0").getChild("message").getChildText("body")), [`${room} archived`]);
      // An iq to room/B answered by b's own client, back to a from room/B.
      const v = await iq(a, `${room}/B`, "get", xml("query", { xmlns: VERSION }));
      assert.equal(v.attrs.type, "result", `${v}`);
      assert.equal(v.attrs.from, `${room}/B`);
      assert.equal(v.getChild("query", VERSION).getChildText("name"), "b's client");
    }
    // The list, asked by c on its worker: the public rooms of both workers.
    await waitUntil(async () => {
      const items = await iq(c, SERVICE, "get", xml("query", { xmlns: "http://jabber.org/protocol/disco#items" }));
      const jids = items.getChild("query").getChildren("item").map((i: any) => i.attrs.jid);
      return rooms.every((r) => jids.includes(r));
    }, 8000, "the three rooms listed");
    for (const room of rooms) for (const o of [a, b]) await o.c.send(xml("presence", { to: `${room}/x`, type: "unavailable" }));
    for (const o of clients) o.stanzas.length = 0;
  });
});
