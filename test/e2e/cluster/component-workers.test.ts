import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { xml } from "@xmpp/client";
import { waitUntil } from "../../helpers.js";
import { freePort } from "../../../bench/lib/proc.js";
import { HAVE_NATS, startNats, type NatsServer } from "../../nats.js";
import { online, type Online } from "../xmpp/util.js";
import { componentOnline, echo, SLIXMPP_SKIP, spawnSlixmpp, type SlixmppScript } from "../xmpp/slixmpp.js";
import { hostDir, startHost, type Host } from "./host-proc.js";

// XEP-0114 on a real host of two worker processes (NATS between them): the user's session and the
// component's on different workers; IQs answered and timed out, messages both ways, a wrong secret
// refused while the rest goes on.

const NOT_NATS = HAVE_NATS ? false : "nats-server is not installed (apt-get install nats-server)";

describe("XEP-0114 components across two workers of one host", { skip: NOT_NATS || SLIXMPP_SKIP }, () => {
  let nats: NatsServer;
  let home: ReturnType<typeof hostDir>;
  let host: Host;
  let port: number;
  let cport: number;
  const clients: Online[] = [];
  const idle: Socket[] = [];
  const scripts: SlixmppScript[] = [];

  before(async () => {
    nats = await startNats();
    port = await freePort();
    cport = await freePort();
    home = hostDir(
      {
        log: { level: "info", format: "json" },
        listeners: [
          { protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port },
          { protocol: "component", transport: "tcp", host: "127.0.0.1", port: cport },
        ],
        storage: { type: "sqlite", path: "db.sqlite" },
        xmpp: { components: [{ domain: "gw.localhost", secret: "gw-secret" }, { domain: "mute.localhost", secret: "mute-secret" }] },
        timeouts: { xmpp: { defaultMs: 2000, minMs: 500 } },
        cluster: { bus: "nats", workers: 2, nats: { servers: [nats.url], subject: "sb-component", heartbeatMs: 500 } },
        admin: { enabled: false },
      },
      2,
    );
    host = startHost(home.cfg);
    await waitUntil(() => host.log.logged("switchboard started").length === 2, 20_000, () => `both workers started; stderr:\n${host.log.text}`, 20);
  });
  after(async () => {
    for (const so of idle) so.destroy();
    await Promise.all(clients.map((c) => c.stop()));
    for (const s of scripts) s.kill();
    host?.kill();
    await nats?.stop();
    home?.remove();
  });

  const workerOf = (address: string) => String(host.log.logged("session started").filter((l) => l.address === address).at(-1)?.worker);

  test("a user on one worker and the components on the other: IQs answered and timed out, messages both ways, a wrong secret refused", { timeout: 90_000 }, async () => {
    const gw = await componentOnline(cport, "gw.localhost", "gw-secret", "answer");
    scripts.push(gw);
    await waitUntil(() => workerOf("gw.localhost/component") !== "undefined", 5000, "the component's start line", 20);
    const gwWorker = workerOf("gw.localhost/component");
    // Within the accept gate's margin (src/host/balancer.ts) either worker may take a new connection, about evenly:
    // up to 12 logins put one on the other worker all but once in 4,096 runs (6 tries failed once in CI).
    let alice: Online | null = null;
    for (let i = 0; i < 12 && alice === null; i++) {
      const c = await online(port, "h0", "pw", { resource: `r${i}` });
      clients.push(c);
      await waitUntil(() => workerOf(c.jid) !== "undefined", 5000, `${c.jid}'s start line`, 20);
      if (workerOf(c.jid) !== gwWorker) alice = c;
    }
    assert.ok(alice !== null, "a login on the other worker");
    let mute: SlixmppScript | null = null;
    for (let i = 0; i < 12 && mute === null; i++) {
      // The workers accept within a ceiling set by the least loaded (src/host/balancer.ts): a component that quit
      // leaves its worker the least loaded again, so each try first adds idle connections, which go to the least loaded.
      if (i > 0) for (let k = 0; k < 2; k++) idle.push(await new Promise<Socket>((resolve) => { const so = connect(port, "127.0.0.1", () => resolve(so)); }));
      const m = await componentOnline(cport, "mute.localhost", "mute-secret", "silent");
      scripts.push(m);
      await waitUntil(() => host.log.logged("session started").filter((l) => l.address === "mute.localhost/component").length > i, 5000, "mute's start line", 20);
      if (workerOf("mute.localhost/component") !== workerOf(alice.jid)) mute = m;
      else m.tell("quit");
    }
    assert.ok(mute !== null, "the silent component on the other worker");

    const answer = await echo(alice, "echo@gw.localhost/x", "across");
    assert.equal(answer.attrs.type, "result");
    assert.equal(answer.attrs.from, "echo@gw.localhost/x");
    assert.equal(answer.getChildText("query", "urn:test:echo"), "echo across");
    assert.equal(await gw.line(5000), `echo-asked ${alice.jid} echo@gw.localhost/x`);

    await alice.c.send(xml("message", { to: "+1555@gw.localhost", type: "chat" }, xml("body", {}, "to the gateway")));
    assert.equal(await gw.line(5000), `message ${alice.jid} +1555@gw.localhost to the gateway`);
    gw.tell(`send ${alice.jid} from the gateway`);
    const m = await alice.waitFor((el) => el.is("message") && el.getChildText("body") === "from the gateway");
    assert.equal(m.attrs.from, "sms@gw.localhost/gw");

    const late = await echo(alice, "x@mute.localhost", "anyone?", 10000);
    assert.ok(late.getChild("error")?.getChild("remote-server-timeout"), late.toString());

    const bad = spawnSlixmpp("slixmpp_component.py", [String(cport), "gw.localhost", "wrong", "answer"]);
    scripts.push(bad);
    assert.equal(await bad.line(15000), "stream-error not-authorized");
    const still = await echo(alice, "gw.localhost", "still");
    assert.equal(still.getChildText("query", "urn:test:echo"), "echo still");
  });
});
