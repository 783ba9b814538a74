import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import { waitUntil } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";
import { online, type Online } from "../xmpp/util.js";
import { hostDir, startHost, type Host } from "./host-proc.js";

// XEP-0191 on a real host of two worker processes (NATS between them), on each store: a block made
// through one worker reaches the user's resource on the other (the push travels like a roster push),
// is enforced there both ways, survives into a new login (read from the store at bind), and is undone the same way.

const BLOCKING = "urn:xmpp:blocking";
const NOT_NATS = HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)";

for (const kind of ["sqlite", "postgres"] as const) {
  const skip = NOT_NATS || (kind === "postgres" ? (HAVE_POSTGRES ?? false) : false);
  describe(`blocking across two workers of one host (${kind})`, { skip }, () => {
    let nats: NatsServer;
    let pgs: PostgresServer | null = null;
    let home: ReturnType<typeof hostDir>;
    let host: Host;
    let port: number;
    const clients: Online[] = [];

    before(async () => {
      nats = await startNats();
      port = await freePort();
      let storage: Record<string, unknown> = { type: "sqlite", path: "db.sqlite" };
      if (kind === "postgres") {
        pgs = await startPostgres();
        storage = { type: "postgres", postgres: await pgs.createDatabase("blocking") };
      }
      // h0 is alice, h1 is bob.
      home = hostDir(
        {
          log: { level: "info", format: "json" },
          listeners: [{ protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port }],
          storage,
          // Two sessions placed on different workers by the primary: the hand-off (cluster.handoff) would move both to their owner.
          cluster: { bus: "nats", workers: 2, handoff: false, nats: { servers: [nats.url], subject: `sb-block-${kind}`, heartbeatMs: 500 } },
          admin: { enabled: false },
        },
        2,
      );
      host = startHost(home.cfg);
      await waitUntil(() => host.log.logged("switchboard started").length === 2, 20_000, () => `both workers started; stderr:\n${host.log.text}`, 20);
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.stop()));
      host?.kill();
      await nats?.stop();
      await pgs?.stop();
      home?.remove();
    });

    const workerOf = (address: string) => String(host.log.logged("session started").filter((l) => l.address === address).at(-1)?.worker);
    const login = async (user: string, resource: string): Promise<Online> => {
      const c = await online(port, user, "pw", { resource });
      clients.push(c);
      await waitUntil(() => workerOf(c.jid) !== "undefined", 5000, `${c.jid}'s start line`, 20);
      return c;
    };
    const iq = (c: Online, type: string, child: any, to?: string): Promise<any> => c.c.iqCaller.request(xml("iq", to === undefined ? { type } : { type, to }, child), 5000);
    const errorOf = (el: any): string => el.getChild("error")?.children.find((k: any) => typeof k !== "string" && k.attrs.xmlns === "urn:ietf:params:xml:ns:xmpp-stanzas")?.name ?? "";
    const iqError = async (p: Promise<any>): Promise<string> => {
      try {
        await p;
        return "answered";
      } catch (e: any) {
        return e.condition ?? String(e);
      }
    };
    const fromAlice = (c: Online) => c.stanzas.filter((s) => String(s.attrs.from ?? "").startsWith("h0@localhost") && s.name !== "iq" && s.attrs.type !== "error");

    test("a block made on one worker is pushed to and enforced on the other, read back at a new login, and undone", { timeout: 60_000 }, async () => {
      const alice = await login("h0", "a");
      // Bob's two resources on different workers (the host hands connections out in turn; a few tries at most).
      const bobA = await login("h1", "a");
      let bobB: Online | null = null;
      for (let i = 0; i < 6 && bobB === null; i++) {
        const c = await login("h1", `b${i}`);
        if (workerOf(c.jid) !== workerOf(bobA.jid)) bobB = c;
      }
      assert.ok(bobB !== null, `bob on both workers; stderr:\n${host.log.text.slice(-2000)}`);

      // Alice subscribes to bob's presence; bob approves.
      await alice.c.send(xml("presence", { to: "h1@localhost", type: "subscribe" }));
      await bobA.waitFor((s) => s.name === "presence" && s.attrs.type === "subscribe");
      await bobA.c.send(xml("presence", { to: "h0@localhost", type: "subscribed" }));
      await alice.waitFor((s) => s.name === "presence" && s.attrs.from === bobB!.jid && s.attrs.type === undefined);

      for (const b of [bobA, bobB]) assert.equal((await iq(b, "get", xml("blocklist", { xmlns: BLOCKING }))).getChild("blocklist").getChildren("item").length, 0);
      await iq(bobA, "set", xml("block", { xmlns: BLOCKING }, xml("item", { jid: "h0@localhost" })));
      const push = await bobB.waitFor((s) => s.name === "iq" && s.attrs.type === "set" && s.getChild("block", BLOCKING) !== undefined);
      assert.equal(push.getChild("block").getChild("item").attrs.jid, "h0@localhost", "the push reached the resource on the other worker");
      // §3.3: alice saw each of bob's resources go unavailable.
      for (const b of [bobA, bobB]) await alice.waitFor((s) => s.name === "presence" && s.attrs.from === b.jid && s.attrs.type === "unavailable");

      // Alice to bob, every way: nothing arrives; to a full JID and an iq: <service-unavailable/>.
      await alice.c.send(xml("message", { to: "h1@localhost", type: "chat", id: "bare" }, xml("body", {}, "to bare")));
      await alice.c.send(xml("message", { to: bobB.jid, type: "chat", id: "full" }, xml("body", {}, "to full")));
      await alice.c.send(xml("presence", {}, xml("show", {}, "dnd")));
      const err = await alice.waitFor((s) => s.name === "message" && s.attrs.id === "full" && s.attrs.type === "error");
      assert.equal(errorOf(err), "service-unavailable");
      for (const b of [bobA, bobB]) assert.equal(await iqError(iq(alice, "get", xml("ping", { xmlns: "urn:xmpp:ping" }), b.jid)), "service-unavailable");
      // The pings passed each of bob's workers after the messages and the presence: nothing of alice's got through.
      for (const b of [bobA, bobB]) assert.deepEqual(fromAlice(b).map(String).filter((s) => !s.includes("unavailable") && !s.includes("subscribe")), [], `${b.jid} got nothing from alice`);

      // Bob's resource on the other worker refuses to send to alice: <not-acceptable/> with <blocked/>.
      await bobB.c.send(xml("message", { to: "h0@localhost", type: "chat", id: "out" }, xml("body", {}, "from bob")));
      const refused = await bobB.waitFor((s) => s.name === "message" && s.attrs.id === "out" && s.attrs.type === "error");
      assert.equal(errorOf(refused), "not-acceptable");
      assert.ok(refused.getChild("error").getChild("blocked", "urn:xmpp:blocking:errors"), String(refused));

      // A new login reads the list from the store at bind: enforced at once.
      const bobC = await login("h1", "c");
      assert.deepEqual((await iq(bobC, "get", xml("blocklist", { xmlns: BLOCKING }))).getChild("blocklist").getChildren("item").map((i: any) => i.attrs.jid), ["h0@localhost"]);
      assert.equal(await iqError(iq(alice, "get", xml("ping", { xmlns: "urn:xmpp:ping" }), bobC.jid)), "service-unavailable");

      // Alice logs in again: her probe of bob is answered by his owner, and the answer is not shown to her.
      const alice2 = await login("h0", "second");
      await alice2.waitFor((s) => s.name === "presence" && s.attrs.from === alice.jid);
      assert.deepEqual(alice2.stanzas.filter((s) => s.name === "presence" && String(s.attrs.from).startsWith("h1@") && s.attrs.type === undefined).map(String), []);

      // Unblocked from the other worker: the push reaches the first; alice sees bob again and reaches him.
      await iq(bobB, "set", xml("unblock", { xmlns: BLOCKING }, xml("item", { jid: "h0@localhost" })));
      await bobA.waitFor((s) => s.name === "iq" && s.attrs.type === "set" && s.getChild("unblock", BLOCKING) !== undefined);
      await alice.waitFor((s) => s.name === "presence" && s.attrs.from === bobA.jid && s.attrs.type === undefined);
      // Her second login asks again (the notice of the unblock makes it probe) and sees bob.
      await alice2.waitFor((s) => s.name === "presence" && String(s.attrs.from).startsWith("h1@") && s.attrs.type === undefined);
      await alice.c.send(xml("message", { to: bobA.jid, type: "chat", id: "after" }, xml("body", {}, "after unblock")));
      await bobA.waitFor((s) => s.name === "message" && s.getChildText("body") === "after unblock");
      assert.equal(await iqError(iq(alice, "get", xml("ping", { xmlns: "urn:xmpp:ping" }), bobB.jid)), "answered");
    });
  });
}
