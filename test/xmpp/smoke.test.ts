import { test } from "node:test";
import assert from "node:assert/strict";
import { xml } from "@xmpp/client";
import { startXmppServer } from "../helpers.js";
import { online } from "./util.js";

test("smoke: two clients log in with SCRAM and exchange a message", async () => {
  const ts = await startXmppServer({}, { alice: "a-pass", bob: "b-pass" });
  try {
    const port = ts.port("xmpp", "tcp");
    const a = await online(port, "alice", "a-pass", { resource: "phone" });
    const b = await online(port, "bob", "b-pass", { resource: "desk" });
    await a.c.send(xml("message", { to: "bob@localhost", type: "chat", id: "m1" }, xml("body", {}, "hello bob")));
    const m = await b.waitFor((el) => el.is("message"));
    assert.equal(m.getChildText("body"), "hello bob");
    assert.equal(m.attrs.from, "alice@localhost/phone");
    await a.stop();
    await b.stop();
  } finally {
    await ts.stop();
  }
});
