import { test } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import { startXmppServer, within } from "../../helpers.js";
import { online } from "./util.js";
import { componentOnline, echo, SLIXMPP_SKIP, spawnSlixmpp, type SlixmppScript } from "./slixmpp.js";

// XEP-0114 end to end: components written with slixmpp's ComponentXMPP, a user with @xmpp/client, one worker.
// Across workers: test/e2e/cluster/component-workers.test.ts.

const COMPONENTS = [
  { domain: "gw.localhost", secret: "gw-secret", name: "SMS gateway" },
  { domain: "mute.localhost", secret: "mute-secret" },
];

test("XEP-0114: a slixmpp component answers a user's IQs, messages go both ways, a silent one times out, a wrong secret is refused", { skip: SLIXMPP_SKIP, timeout: 90000 }, async () => {
  const ts = await startXmppServer(
    {
      listeners: [
        { protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 },
        { protocol: "component", transport: "tcp", host: "127.0.0.1", port: 0 },
      ],
      xmpp: { components: COMPONENTS },
      timeouts: { xmpp: { defaultMs: 2000, minMs: 500, byNamespace: { "urn:test:slow": 30000 } } },
    },
    { alice: "alice-pw" },
  );
  const port = ts.server.port("component", "tcp");
  const scripts: SlixmppScript[] = [];
  try {
    const gw = await componentOnline(port, "gw.localhost", "gw-secret", "answer");
    scripts.push(gw);
    const mute = await componentOnline(port, "mute.localhost", "mute-secret", "silent");
    scripts.push(mute);
    const alice = await online(ts.server.port("xmpp", "tcp"), "alice", "alice-pw", { resource: "phone" });
    try {
      // XEP-0030 §4.1: the components are the server's items.
      const items = await alice.c.iqCaller.get(xml("query", { xmlns: "http://jabber.org/protocol/disco#items" }), "localhost");
      assert.deepEqual(
        items.getChildren("item").map((i: any) => [i.attrs.jid, i.attrs.name]),
        [["gw.localhost", "SMS gateway"], ["mute.localhost", undefined]],
      );

      // An IQ to any address in the domain reaches the component, its answer comes back from that address.
      const answer = await echo(alice, "echo@gw.localhost/x", "hi");
      assert.equal(answer.attrs.type, "result");
      assert.equal(answer.attrs.from, "echo@gw.localhost/x");
      assert.equal(answer.getChildText("query", "urn:test:echo"), "echo hi");
      assert.equal(await gw.line(5000), `echo-asked ${alice.jid} echo@gw.localhost/x`);
      const toDomain = await echo(alice, "gw.localhost", "domain");
      assert.equal(toDomain.attrs.from, "gw.localhost");
      assert.equal(toDomain.getChildText("query", "urn:test:echo"), "echo domain");
      assert.equal(await gw.line(5000), `echo-asked ${alice.jid} gw.localhost`);

      // Messages both ways.
      await alice.c.send(xml("message", { to: "+15551234@gw.localhost", type: "chat" }, xml("body", {}, "hello gateway")));
      assert.equal(await gw.line(5000), `message ${alice.jid} +15551234@gw.localhost hello gateway`);
      gw.tell("send alice@localhost hello alice");
      const m = await alice.waitFor((el) => el.is("message") && el.getChildText("body") === "hello alice");
      assert.equal(m.attrs.from, "sms@gw.localhost/gw");
      // The component asks the user (XEP-0199): the user's client answers (@xmpp/client: an error, it serves no ping), back to the component.
      gw.tell(`ask ${alice.jid}`);
      assert.match(await gw.line(15000), /^asked (result|error \S+)$/);

      // A component that takes the IQ and never answers: the user gets a timeout error, from the domain, at the configured timeout.
      const t0 = Date.now();
      const late = await echo(alice, "x@mute.localhost", "anyone?", 10000);
      assert.equal(await mute.line(5000), `echo-asked ${alice.jid} x@mute.localhost`);
      assert.equal(late.attrs.type, "error");
      assert.ok(late.getChild("error")?.getChild("remote-server-timeout"), late.toString());
      assert.equal(late.attrs.from, "mute.localhost");
      assert.ok(Date.now() - t0 >= 1500, "not before the timeout");

      // A wrong secret, and an unknown domain: <not-authorized/>, that connection only.
      for (const [domain, secret] of [["gw.localhost", "wrong"], ["nobody.localhost", "x"]]) {
        const bad = spawnSlixmpp("slixmpp_component.py", [String(port), domain, secret, "answer"]);
        scripts.push(bad);
        assert.equal(await bad.line(15000), "stream-error not-authorized");
      }
      const still = await echo(alice, "echo@gw.localhost/x", "still there");
      assert.equal(still.getChildText("query", "urn:test:echo"), "echo still there");
      assert.equal(await gw.line(5000), `echo-asked ${alice.jid} echo@gw.localhost/x`);

      // A second connection for a connected domain takes it over (the core's rule for an address bound twice): the older one gets <conflict/>.
      const gw2 = await componentOnline(port, "gw.localhost", "gw-secret", "answer");
      scripts.push(gw2);
      assert.equal(await gw.line(5000), "stream-error conflict");
      const fresh = await echo(alice, "echo@gw.localhost/y", "the new one");
      assert.equal(fresh.getChildText("query", "urn:test:echo"), "echo the new one");
      assert.equal(await gw2.line(5000), `echo-asked ${alice.jid} echo@gw.localhost/y`);

      // The component goes while an IQ waits for it: that IQ fails then (service-unavailable, not its timeout), and so does a new one.
      const waiting = echo(alice, "y@mute.localhost", "still waiting", 20000, "urn:test:slow");
      assert.equal(await mute.line(5000), `echo-asked ${alice.jid} y@mute.localhost`);
      mute.tell("quit");
      assert.equal(await mute.line(5000), "disconnected");
      const failed = await waiting;
      assert.ok(failed.getChild("error")?.getChild("service-unavailable"), failed.toString());
      const gone = await within(echo(alice, "x@mute.localhost", "gone"), 1500, "an error at once, not at the timeout");
      assert.ok(gone.getChild("error")?.getChild("service-unavailable"), gone.toString());
      // Unknown domains are still not reachable (no server-to-server).
      const remote = await echo(alice, "x@elsewhere.example", "?");
      assert.ok(remote.getChild("error")?.getChild("remote-server-not-found"), remote.toString());

      // Directed presence reaches the component, and is undone when the user's session ends (RFC 6121 §4.6.3).
      await alice.c.send(xml("presence", { to: "watch@gw.localhost" }));
      assert.equal(await gw2.line(5000), `presence ${alice.jid} watch@gw.localhost available`);
      await alice.stop();
      assert.equal(await gw2.line(5000), `presence ${alice.jid} watch@gw.localhost unavailable`);
    } finally {
      await alice.stop();
    }
  } finally {
    for (const s of scripts) s.kill();
    await ts.stop();
  }
});
