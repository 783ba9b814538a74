import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { startXmppServer, type TestServer } from "../../helpers.js";
import { Raw, rawLogin, pingOk } from "./util.js";

// XEP-0114 on raw sockets: what a component's stream must look like, and what a bad one costs (that connection only).

const COMPONENT_HEADER = (ns = "jabber:component:accept", to = "gw.localhost") =>
  `<?xml version='1.0'?><stream:stream xmlns='${ns}' xmlns:stream='http://etherx.jabber.org/streams' to='${to}'>`;

async function start(xmpp: Record<string, unknown> = {}): Promise<TestServer> {
  return startXmppServer(
    {
      listeners: [
        { protocol: "xmpp", transport: "tcp", host: "127.0.0.1", port: 0 },
        { protocol: "component", transport: "tcp", host: "127.0.0.1", port: 0 },
      ],
      xmpp: { components: [{ domain: "gw.localhost", secret: "gw-secret" }], allowPlainWithoutTls: true, mam: { enabled: true }, ...xmpp },
    },
    { alice: "alice-pw", bob: "bob-pw" },
  );
}

/** A component stream up to its handshake's answer (`secret` wrong: the stream error). */
async function component(ts: TestServer, secret = "gw-secret", domain = "gw.localhost"): Promise<Raw> {
  const r = new Raw(ts.server.port("component", "tcp"));
  await r.ready();
  r.send(COMPONENT_HEADER(undefined, domain));
  const id = (await r.until(/<stream:stream [^>]*id='([^']+)'/)).match(/id='([^']+)'/)![1];
  r.send(`<handshake>${createHash("sha1").update(id + secret).digest("hex")}</handshake>`);
  await r.until(/<handshake\/>|<\/stream:stream>/);
  return r;
}

const answer = (r: Raw, id: string) => r.until(new RegExp(`<(iq|message)[^>]*id=["']${id}["'][^>]*(/>|>[\\s\\S]*?</(iq|message)>)`)).then((t) => t.match(new RegExp(`<(iq|message)[^>]*id=["']${id}["'][^>]*(/>|>[\\s\\S]*?</(iq|message)>)`))![0]);

test("XEP-0114 streams: the header's namespace, the handshake, addresses a component may use; errors cost that connection only", { timeout: 30000 }, async () => {
  const ts = await start({ maxAuthFailuresPerIp: 4 });
  try {
    // Not jabber:component:accept: invalid-namespace.
    const wrongNs = new Raw(ts.server.port("component", "tcp"));
    await wrongNs.ready();
    wrongNs.send(COMPONENT_HEADER("jabber:client"));
    await wrongNs.until(/<invalid-namespace /);
    await wrongNs.whenClosed();
    // Something else than a handshake first: not-authorized.
    const noHandshake = new Raw(ts.server.port("component", "tcp"));
    await noHandshake.ready();
    noHandshake.send(COMPONENT_HEADER() + "<message to='alice@localhost'><body>x</body></message>");
    await noHandshake.until(/<not-authorized /);
    await noHandshake.whenClosed();

    const gw = await component(ts);
    assert.match(gw.text, /<handshake\/>/);
    gw.text = "";
    // To the server: a ping is answered; no `to`: bad-request; another domain: remote-server-not-found.
    gw.send("<iq type='get' id='p1' from='gw.localhost' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert.match(await answer(gw, "p1"), /type=["']result["']/);
    gw.send("<message id='m1' from='a@gw.localhost'><body>nowhere</body></message>");
    assert.match(await answer(gw, "m1"), /<bad-request /);
    gw.send("<message id='m2' from='a@gw.localhost' to='x@elsewhere.example'><body>far</body></message>");
    assert.match(await answer(gw, "m2"), /<remote-server-not-found /);
    gw.send("<iq type='get' id='v1' from='a@gw.localhost' to='bob@localhost'><vCard xmlns='vcard-temp'/></iq>");
    assert.match(await answer(gw, "v1"), /<service-unavailable /);

    // A chat message to a user who is offline is stored like any other, and delivered at login.
    gw.send("<message id='m3' type='chat' from='+1555@gw.localhost/sms' to='bob@localhost'><body>while you were away</body></message>");
    const alice = await rawLogin(ts.server.port("xmpp", "tcp"), "alice", "alice-pw");
    await pingOk(alice);
    const bob = await rawLogin(ts.server.port("xmpp", "tcp"), "bob", "bob-pw");
    bob.send("<presence/>");
    const stored = await answer(bob, "m3");
    assert.match(stored, /from=["']\+1555@gw.localhost\/sms["']/);
    assert.match(stored, /while you were away/);
    // …and kept in bob's archive (XEP-0313), from the address in the component's domain.
    bob.send("<iq type='set' id='mq'><query xmlns='urn:xmpp:mam:2' queryid='q1'/></iq>");
    const archived = await bob.until(/<fin [^>]*complete=["']true["']/);
    assert.match(archived, /<result xmlns=["']urn:xmpp:mam:2["'] queryid=["']q1["'][\s\S]*from=["']\+1555@gw.localhost\/sms["'][\s\S]*while you were away/);

    // A user's chat to the component: the user's other resource that enabled carbons gets a sent copy, and the
    // user's archive keeps it, both naming the address written to (not the domain the envelope travels to).
    const desk = await rawLogin(ts.server.port("xmpp", "tcp"), "alice", "alice-pw", "desk");
    desk.send("<iq type='set' id='cb'><enable xmlns='urn:xmpp:carbons:2'/></iq>");
    await answer(desk, "cb");
    gw.text = "";
    alice.send("<message id='s1' type='chat' to='+1555@gw.localhost'><body>text to sms</body></message>");
    await gw.until(/text to sms/);
    assert.match(gw.text, /<message [^>]*from="alice@localhost\/raw"[^>]*to="\+1555@gw.localhost"|<message [^>]*to="\+1555@gw.localhost"[^>]*from="alice@localhost\/raw"/);
    const copy = await desk.until(/<sent xmlns=["']urn:xmpp:carbons:2["'][\s\S]*?<\/sent>/);
    assert.match(copy, /<sent [\s\S]*to="\+1555@gw.localhost"[\s\S]*text to sms/);
    alice.send("<iq type='set' id='aq'><query xmlns='urn:xmpp:mam:2' queryid='q2'/></iq>");
    const mine = await alice.until(/<fin [^>]*complete=["']true["']/);
    assert.match(mine, /queryid=["']q2["'][\s\S]*to="\+1555@gw.localhost"[\s\S]*text to sms/);
    desk.destroy();

    // From outside its domain: invalid-from, and the stream ends; the server goes on.
    gw.send("<message from='mallory@localhost' to='alice@localhost'><body>spoofed</body></message>");
    await gw.until(/<invalid-from /);
    await gw.whenClosed();
    assert.doesNotMatch(alice.text, /spoofed/);
    // The component is gone: a user's message to its domain comes back with service-unavailable, at once.
    alice.send("<message id='u1' type='chat' to='x@gw.localhost'><body>anyone?</body></message>");
    assert.match(await answer(alice, "u1"), /<service-unavailable /);

    // Wrong secrets count against the address like failed logins: past the limit, refused at once.
    for (let i = 0; i < 4; i++) {
      const bad = await component(ts, "wrong");
      assert.match(bad.text, /<not-authorized /);
      await bad.whenClosed();
    }
    const refused = new Raw(ts.server.port("component", "tcp"));
    await refused.ready();
    await refused.until(/<policy-violation /);
    await refused.whenClosed();
    await pingOk(alice);
    alice.destroy();
    bob.destroy();
  } finally {
    await ts.stop();
  }
});
