import { test } from "node:test";
import assert from "node:assert/strict";
import { Element } from "ltx";
import { Ev, Hooks, type EventName, type IqEvent, type StanzaEvent } from "../../../src/xmpp/hooks.js";
import type { XmppSession } from "../../../src/xmpp/xmpp-session.js";

// Hooks only passes events along: no session is needed to see what it does with them.
const session = undefined as unknown as XmppSession;

function message(): StanzaEvent {
  return { session, stanza: new Element("message", { to: "bob@localhost" }), to: "bob@localhost" };
}

function iq(ns: string): IqEvent {
  const child = new Element("query", { xmlns: ns });
  const stanza = new Element("iq", { type: "get", id: "q1" }).cnode(child).root();
  return { session, stanza, to: "", type: "get", child, ns };
}

test("higher priority runs first; equal priorities run in the order they were hooked", () => {
  const hooks = new Hooks();
  const ran: string[] = [];
  const h = (name: string) => () => void ran.push(name);
  hooks.on(Ev.MessageBare, h("a0"));
  hooks.on(Ev.MessageBare, h("b10"), 10);
  hooks.on(Ev.MessageBare, h("c0"));
  hooks.on(Ev.MessageBare, h("d-5"), -5);
  hooks.on(Ev.MessageBare, h("e10"), 10);
  hooks.on(Ev.MessageBare, h("f0"));
  assert.equal(hooks.fire(Ev.MessageBare, message()), false, "nobody returned true");
  assert.deepEqual(ran, ["b10", "e10", "a0", "c0", "f0", "d-5"]);
});

test("a handler that returns true stops the rest and makes fire() report handled; false or nothing goes on", () => {
  const hooks = new Hooks();
  const ran: string[] = [];
  hooks.on(Ev.MessageFull, () => void ran.push("nothing"), 3);
  hooks.on(Ev.MessageFull, () => (ran.push("false"), false), 2);
  hooks.on(Ev.MessageFull, () => (ran.push("true"), true), 1);
  hooks.on(Ev.MessageFull, () => (ran.push("after"), true), 0);
  assert.equal(hooks.fire(Ev.MessageFull, message()), true);
  assert.deepEqual(ran, ["nothing", "false", "true"]);
});

test("each event has its own handlers", () => {
  const hooks = new Hooks();
  const ran: string[] = [];
  hooks.on(Ev.MessageBare, () => (ran.push("bare"), true));
  hooks.on(Ev.MessageFull, () => (ran.push("full"), true));
  assert.equal(hooks.fire(Ev.MessageFull, message()), true);
  assert.deepEqual(ran, ["full"]);
});

test("iq(): only the handler of the child's namespace runs; it counts as handled unless it returns false", () => {
  const hooks = new Hooks();
  const ran: string[] = [];
  hooks.iq("host", "urn:xmpp:ping", (e) => void ran.push(`ping ${e.ns}`));
  hooks.iq("host", "jabber:iq:version", () => (ran.push("version"), false));
  hooks.iq("self", "urn:xmpp:ping", () => void ran.push("self ping"));
  hooks.on(Ev.IqHost, (e) => (ran.push(`fallback ${e.ns}`), true), -10);

  assert.equal(hooks.fire(Ev.IqHost, iq("urn:xmpp:ping")), true);
  assert.deepEqual(ran, ["ping urn:xmpp:ping"], "handled: neither the other namespace, the other target nor the fallback ran");

  ran.length = 0;
  assert.equal(hooks.fire(Ev.IqHost, iq("jabber:iq:version")), true);
  assert.deepEqual(ran, ["version", "fallback jabber:iq:version"], "returning false hands it on");

  ran.length = 0;
  assert.equal(hooks.fire(Ev.IqHost, iq("urn:example:unknown")), true);
  assert.deepEqual(ran, ["fallback urn:example:unknown"]);

  ran.length = 0;
  assert.equal(hooks.fire(Ev.IqSelf, iq("urn:xmpp:ping")), true);
  assert.deepEqual(ran, ["self ping"]);
  assert.equal(hooks.fire(Ev.IqBare, iq("urn:xmpp:ping")), false, "no handler for iq/bare");
});

test("an event nobody hooked is not handled, and fire() calls nothing", () => {
  const hooks = new Hooks();
  let ran = 0;
  hooks.on(Ev.MessageBare, () => (ran++, true));
  assert.equal(hooks.fire(Ev.SessionClosing, { session }), false);
  // A name outside Events (only reachable past the type checker) is no event at all.
  assert.equal(hooks.fire("message/everyone" as EventName, message() as never), false);
  assert.equal(ran, 0);
});

test("the Ev constants name every event once", () => {
  const names = Object.values(Ev);
  assert.equal(new Set(names).size, names.length);
});
