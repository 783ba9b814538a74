import { test } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import { RelayClient, RelayError } from "../../../src/relay/client.js";
import { startXmppServer } from "../../helpers.js";
import { online } from "./util.js";

test("relay and XMPP share one account store; messages and requests cross between them", { timeout: 15_000 }, async () => {
  const ts = await startXmppServer({}, { dave: "d-pass", erin: "e-pass" });
  try {
    // The same account logs in by both protocols at once.
    const x = await online(ts.port("xmpp", "tcp"), "dave", "d-pass", { resource: "im" });
    const r = await RelayClient.connect({ port: ts.port("relay", "tcp") });
    assert.equal(await r.login({ user: "dave", password: "d-pass", resource: "gw" }), "dave@localhost/gw");
    const e = await RelayClient.connect({ port: ts.port("relay", "tcp") });
    await e.login({ user: "erin", password: "e-pass", resource: "gw" });

    // XMPP → relay: the relay side gets the stanza as text.
    const got = new Promise<{ from: string; body: Buffer }>((res) => e.once("message", res));
    await x.c.send(xml("message", { to: "erin@localhost/gw", type: "chat" }, xml("body", {}, "from xmpp")));
    const m = await got;
    assert.equal(m.from, x.jid);
    assert.match(m.body.toString(), /<body>from xmpp<\/body>/);

    // relay → XMPP: a message with a <body>.
    e.message(x.jid, "from relay \u2713");
    const msg = await x.waitFor((el) => el.is("message"));
    assert.equal(msg.getChildText("body"), "from relay \u2713");
    assert.equal(msg.attrs.from, "erin@localhost/gw");

    // An XMPP iq answered by a relay `res`: the iq result carries the body element.
    e.on("request", (req) => req.respond("<answer xmlns='urn:example'>42</answer>"));
    await x.c.send(xml("iq", { type: "get", to: "erin@localhost/gw", id: "q1" }, xml("question", { xmlns: "urn:example" })));
    const res = await x.waitFor((el) => el.is("iq") && el.attrs.id === "q1");
    assert.equal(res.attrs.type, "result");
    assert.equal(res.getChild("answer", "urn:example").getText(), "42");

    // A relay request to an XMPP session is refused at once (no XMPP form for an opaque request).
    await assert.rejects(e.request(x.jid, "opaque"), (err: unknown) => err instanceof RelayError && err.code === "unavailable");

    await x.stop();
    await Promise.all([r.close(), e.close()]);
  } finally {
    await ts.stop();
  }
});
