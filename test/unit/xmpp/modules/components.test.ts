import { test } from "node:test";
import assert from "node:assert/strict";
import { Element } from "ltx";
import { Envelope, ErrorCode, Flag, Kind } from "../../../../src/envelope/envelope.js";
import { discoModule } from "../../../../src/xmpp/modules/disco.js";
import { componentsModule, domainOf, routedEnvelope, toComponent } from "../../../../src/xmpp/modules/components.js";
import { StanzaCondition } from "../../../../src/xmpp/errors.js";
import { Ev } from "../../../../src/xmpp/hooks.js";
import { errorOf, fakeContext, fakeSession, fromClient } from "./fake-session.js";

const COMPONENTS = [{ domain: "gw.example", secret: "s", name: "Gateway" }, { domain: "bot.example", secret: "t" }];
const ttl = (ns: string) => (ns === "urn:slow" ? 60000 : 0);

test("domainOf: the domain of a bare or full address, with or without a local part", () => {
  assert.equal(domainOf("gw.example"), "gw.example");
  assert.equal(domainOf("gw.example/r"), "gw.example");
  assert.equal(domainOf("a@gw.example/r@x"), "gw.example");
  assert.equal(domainOf("a@gw.example"), "gw.example");
});

test("routedEnvelope: the kind the stanza asks for, addressed to the route, the stanza keeping its real to; answers not readdressed", () => {
  const msg = new Element("message", { to: "x@gw.example", type: "chat", id: "m" });
  const m = routedEnvelope("alice@localhost/r", "gw.example", msg, ttl) as Envelope;
  assert.equal(m.kind, Kind.Message);
  assert.equal(m.to, "gw.example");
  assert.equal(m.flags, Flag.Bounce, "nobody there: an error to the sender");
  assert.equal((m.payload as Element).attrs.to, "x@gw.example");
  assert.equal((routedEnvelope("a@localhost/r", "gw.example", new Element("message", { type: "headline" }), ttl) as Envelope).flags, 0, "headlines are dropped");
  assert.equal((routedEnvelope("a@localhost/r", "gw.example", new Element("presence"), ttl) as Envelope).kind, Kind.Presence);

  const get = new Element("iq", { type: "get", id: "q", to: "x@gw.example/y" });
  get.c("query", { xmlns: "urn:slow" });
  const req = routedEnvelope("a@localhost/r", "gw.example", get, ttl) as Envelope;
  assert.equal(req.kind, Kind.Request);
  assert.equal(req.id, "q");
  assert.equal(req.ttl, 60000, "timeouts.xmpp.byNamespace applies");
  get.c("second");
  assert.equal(routedEnvelope("a@localhost/r", "gw.example", get, ttl), StanzaCondition.BadRequest, "exactly one child");
  assert.equal(routedEnvelope("a@localhost/r", "gw.example", new Element("iq", { type: "get" }), ttl), StanzaCondition.BadRequest, "an id");
  assert.equal(routedEnvelope("a@localhost/r", "gw.example", new Element("iq", { type: "result" }), ttl), null, "an answer without an id is dropped");

  const result = routedEnvelope("a@localhost/r", "gw.example", new Element("iq", { type: "result", id: "c1", to: "x@gw.example/y" }), ttl) as Envelope;
  assert.equal(result.kind, Kind.Response);
  assert.equal(result.to, "x@gw.example/y", "an answer goes by its ref, to whoever asked");
  assert.equal(result.responseFor, "c1");
  const err = new Element("iq", { type: "error", id: "c2", to: "x@gw.example/y" });
  err.c("error", { type: "cancel" }).c("item-not-found", { xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas" });
  const e = routedEnvelope("a@localhost/r", "gw.example", err, ttl) as Envelope;
  assert.equal(e.kind, Kind.Error);
  assert.equal(e.code, ErrorCode.Unavailable);
  assert.equal(routedEnvelope("a@localhost/r", "gw.example", new Element("handshake"), ttl), StanzaCondition.BadRequest);
});

test("toComponent: presence to a component's address goes to its domain with its real to; a probe becomes one for the component", () => {
  const domains = new Set(["gw.example"]);
  const el = new Element("presence", { type: "unavailable" });
  el.c("status").t("bye");
  const env = toComponent(Envelope.presence({ from: "a@localhost/r", to: "x@gw.example", protocol: "xmpp", payload: el }), domains)!;
  assert.equal(env.to, "gw.example");
  const p = env.payload as Element;
  assert.equal(p.attrs.to, "x@gw.example");
  assert.equal(p.attrs.from, "a@localhost/r");
  assert.equal(p.getChildText("status"), "bye");
  assert.equal(el.attrs.to, undefined, "the original, shared by other recipients, is not changed");
  const probe = toComponent(Envelope.presence({ from: "a@localhost", to: "x@gw.example", protocol: "xmpp", payload: null, flags: Flag.Probe }), domains)!;
  assert.equal(probe.flags & Flag.Probe, 0, "delivered, not answered by the owner");
  assert.equal((probe.payload as Element).attrs.type, "probe");
  assert.equal(toComponent(Envelope.presence({ from: "a@localhost/r", to: "b@localhost", protocol: "xmpp", payload: el }), domains), null);
  assert.equal(toComponent(Envelope.message({ from: "a@localhost/r", to: "x@gw.example", protocol: "xmpp", payload: el }), domains), null, "presence only");
});

test("componentsModule: stanzas from a client to a component's domain are submitted to the domain; others unreachable; disco#items lists them", { timeout: 5000 }, async () => {
  const x = await fakeContext([]);
  const disco = discoModule(x.hooks);
  componentsModule(x.hooks, COMPONENTS, ttl, disco);
  const s = fakeSession("alice");
  fromClient(x, s, "<iq type='get' id='q1' to='Echo@GW.example/x'><query xmlns='urn:test'/></iq>");
  const req = s.submitted.at(-1)!;
  assert.equal(req.kind, Kind.Request);
  assert.equal(req.from, "alice@localhost/r");
  assert.equal(req.to, "gw.example");
  assert.equal((req.payload as Element).attrs.to, "echo@gw.example/x", "canonical");
  fromClient(x, s, "<message type='chat' to='bot.example'><body>hi</body></message>");
  assert.equal(s.submitted.at(-1)!.to, "bot.example");
  fromClient(x, s, "<presence type='subscribe' to='x@gw.example'/>");
  assert.equal(s.submitted.at(-1)!.kind, Kind.Presence, "subscription stanzas pass through");
  fromClient(x, s, "<iq type='get' id='q2' to='gw.example'><a xmlns='urn:a'/><b xmlns='urn:b'/></iq>");
  assert.equal(errorOf(s.written.at(-1)!), "bad-request");
  const n = s.submitted.length;
  fromClient(x, s, "<iq type='get' id='q3' to='x@elsewhere.example'><query xmlns='urn:test'/></iq>");
  assert.equal(errorOf(s.written.at(-1)!), "remote-server-not-found");
  assert.equal(s.submitted.length, n);
  // Available and unavailable directed presence go the presence module's way (here: nobody hooks it, so unreachable).
  assert.equal(x.hooks.fire(Ev.Service, { session: s, stanza: new Element("presence", { to: "x@gw.example" }), to: "x@gw.example", domain: "gw.example" }), false);

  fromClient(x, s, "<iq to='localhost' type='get' id='i'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
  const items = s.written.at(-1)!.getChild("query")!.getChildren("item").map((i) => [i.attrs.jid, i.attrs.name]);
  assert.deepEqual(items, [["gw.example", "Gateway"], ["bot.example", undefined]]);
});

test("componentsModule without components hooks nothing: other domains stay unreachable", { timeout: 5000 }, async () => {
  const x = await fakeContext([]);
  assert.equal(componentsModule(x.hooks, [], ttl, discoModule(x.hooks)).size, 0);
  const s = fakeSession("alice");
  fromClient(x, s, "<message type='chat' id='m' to='gw.example'><body>hi</body></message>");
  assert.equal(errorOf(s.written.at(-1)!), "remote-server-not-found");
  assert.equal(s.submitted.length, 0);
});
