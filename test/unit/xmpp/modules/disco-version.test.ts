import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { discoModule } from "../../../../src/xmpp/modules/disco.js";
import { packageVersion, versionModule } from "../../../../src/xmpp/modules/version.js";
import { errorOf, fakeContext, fakeSession, fromClient } from "./fake-session.js";

test("disco#items of the server lists the services modules add, none at first; a node is not found", { timeout: 5000 }, async () => {
  const x = await fakeContext([]);
  const disco = discoModule(x.hooks);
  const s = fakeSession("alice");
  const items = () => {
    fromClient(x, s, "<iq to='localhost' type='get' id='i'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    return s.written.at(-1)!.getChild("query")!.getChildren("item").map((i) => `${i.attrs.jid} ${i.attrs.name ?? ""}`);
  };
  assert.deepEqual(items(), []);
  disco.serverItem({ jid: "conference.localhost", name: "Rooms" });
  disco.serverItem({ jid: "conference.localhost", name: "Rooms" });
  assert.deepEqual(items(), ["conference.localhost Rooms"], "once");
  fromClient(x, s, "<iq to='localhost' type='get' id='n'><query xmlns='http://jabber.org/protocol/disco#items' node='x'/></iq>");
  assert.equal(errorOf(s.written.at(-1)!), "item-not-found");
  disco.serverFeature("urn:example");
  fromClient(x, s, "<iq to='localhost' type='get' id='f'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
  assert.ok(s.written.at(-1)!.getChild("query")!.getChildren("feature").some((f) => f.attrs.var === "urn:example"));
});

test("XEP-0092: Switchboard and package.json's version; the OS only when xmpp.versionShowsOs is on", { timeout: 5000 }, async () => {
  assert.equal(packageVersion(), JSON.parse(readFileSync(new URL("../../../../../package.json", import.meta.url), "utf8")).version);
  for (const shows of [false, true]) {
    const x = await fakeContext([], { versionShowsOs: shows });
    versionModule(x.hooks, x, discoModule(x.hooks));
    const s = fakeSession("alice");
    fromClient(x, s, "<iq to='localhost' type='get' id='v'><query xmlns='jabber:iq:version'/></iq>");
    const q = s.written.at(-1)!.getChild("query", "jabber:iq:version")!;
    assert.equal(q.getChildText("name"), "Switchboard");
    assert.equal(q.getChildText("version"), packageVersion());
    assert.equal(q.getChild("os") !== undefined, shows);
    fromClient(x, s, "<iq to='localhost' type='set' id='w'><query xmlns='jabber:iq:version'/></iq>");
    assert.equal(errorOf(s.written.at(-1)!), "service-unavailable", "only get");
  }
});
