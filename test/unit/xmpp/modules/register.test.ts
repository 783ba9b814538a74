import { test } from "node:test";
import assert from "node:assert/strict";
import { Element, parse } from "ltx";
import { Phase } from "../../../../src/xmpp/client-session.js";
import { Ev } from "../../../../src/xmpp/hooks.js";
import { StreamError } from "../../../../src/xmpp/errors.js";
import { discoModule } from "../../../../src/xmpp/modules/disco.js";
import { registerModule } from "../../../../src/xmpp/modules/register.js";
import { verifyPassword } from "../../../../src/store/scram.js";
import type { XmppContext } from "../../../../src/xmpp/context.js";
import { errorOf, fakeContext, fakeSession, fromClient, type Fake } from "./fake-session.js";

/** A connection before authentication, from `ip`, on TLS or not. */
function negotiating(ip = "10.0.0.1", secure = true): Fake {
  const s = fakeSession("", "");
  Object.assign(s, { phase: Phase.Negotiating, user: "", bare: "", address: "", secure, conn: { remoteAddress: ip, secure } });
  return s;
}

/** Fires the element as the session's negotiation would, and waits until what it started is done. */
async function negotiate(x: XmppContext, s: Fake, xml: string): Promise<Element> {
  const n = s.written.length;
  assert.equal(x.hooks.fire(Ev.Negotiation, { session: s, stanza: parse(xml) as Element, to: "" }), true, "handled");
  // PBKDF2 runs on the thread pool: on a loaded machine that takes a while (the deadline keeps the loop honest).
  for (const end = Date.now() + 10000; (s.holds > 0 || s.written.length === n) && Date.now() < end; ) await pause();
  assert.equal(s.holds, 0, "input released");
  return s.written.at(-1)!;
}

const pause = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

const reg = (user: string, pw: string) => `<iq type='set' id='r'><query xmlns='jabber:iq:register'><username>${user}</username><password>${pw}</password></query></iq>`;

async function untilWritten(s: Fake, n: number): Promise<Element> {
  for (const end = Date.now() + 10000; s.written.length <= n && Date.now() < end; ) await pause();
  return s.written.at(-1)!;
}

test("XEP-0077 before authentication: feature, form, creation; conflict, not-acceptable, the per-IP limit, TLS first", { timeout: 20000 }, async () => {
  const x = await fakeContext(["alice"], { register: { enabled: true, maxPerIp: 4 } });
  registerModule(x.hooks, x, discoModule(x.hooks));
  const s = negotiating();
  const features = new Element("stream:features");
  x.hooks.fire(Ev.StreamFeatures, { session: s, features });
  assert.ok(features.getChild("register", "http://jabber.org/features/iq-register"));

  const form = await negotiate(x, s, "<iq type='get' id='f'><query xmlns='jabber:iq:register'/></iq>");
  assert.equal(form.attrs.type, "result");
  assert.deepEqual(form.getChild("query")!.getChildElements().map((c) => c.name), ["instructions", "username", "password"]);

  assert.equal((await negotiate(x, s, reg("Carol", "pw1"))).attrs.type, "result");
  const creds = await x.accounts.credentials("carol");
  assert.ok(creds !== undefined && (await verifyPassword(creds, "pw1")), "created, name case-folded");
  assert.equal(errorOf(await negotiate(x, s, reg("alice", "x"))), "conflict");
  assert.ok(await verifyPassword((await x.accounts.credentials("alice"))!, "pw"), "a taken account is not touched");
  assert.equal(errorOf(await negotiate(x, s, reg("a b", "x"))), "not-acceptable");
  assert.equal(errorOf(await negotiate(x, s, reg("dave", ""))), "not-acceptable", "an empty password");
  const limited = await negotiate(x, s, reg("erin", "pw"));
  assert.equal(errorOf(limited), "policy-violation");
  assert.equal(limited.getChild("error")!.attrs.type, "wait");
  assert.equal(await x.accounts.hasUser("erin"), false);
  // Another address is not limited by this one.
  assert.equal((await negotiate(x, negotiating("10.0.0.9"), reg("erin", "pw"))).attrs.type, "result");
  // Not on TLS (and not loopback) where encryption is required: not offered, and refused.
  const plain = negotiating("10.0.0.2", false);
  const none = new Element("stream:features");
  x.hooks.fire(Ev.StreamFeatures, { session: plain, features: none });
  assert.equal(none.getChild("register"), undefined);
  assert.equal(errorOf(await negotiate(x, plain, reg("frank", "pw"))), "policy-violation");
  assert.equal(errorOf(await negotiate(x, negotiating("10.0.0.3"), "<iq type='set' id='x'><query xmlns='jabber:iq:register'><remove/></query></iq>")), "not-allowed");
});

test("XEP-0077 off: no feature, the negotiation event is not taken", { timeout: 5000 }, async () => {
  const x = await fakeContext([]);
  registerModule(x.hooks, x, discoModule(x.hooks));
  const s = negotiating();
  const features = new Element("stream:features");
  x.hooks.fire(Ev.StreamFeatures, { session: s, features });
  assert.equal(features.getChild("register"), undefined);
  assert.equal(x.hooks.fire(Ev.Negotiation, { session: s, stanza: parse(reg("z", "pw")) as Element, to: "" }), false);
});

test("XEP-0077 logged in: registered info, password change (on by default, only one's own), removal", { timeout: 20000 }, async () => {
  const x = await fakeContext(["alice", "bob"]);
  registerModule(x.hooks, x, discoModule(x.hooks));
  const s = fakeSession("alice");
  fromClient(x, s, "<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>");
  const info = s.written.at(-1)!.getChild("query")!;
  assert.ok(info.getChild("registered"));
  assert.equal(info.getChildText("username"), "alice");

  let n = s.written.length;
  fromClient(x, s, "<iq type='set' id='p' to='localhost'><query xmlns='jabber:iq:register'><username>alice</username><password>new-pw</password></query></iq>");
  assert.equal((await untilWritten(s, n)).attrs.type, "result");
  assert.ok(await verifyPassword((await x.accounts.credentials("alice"))!, "new-pw"));
  fromClient(x, s, "<iq type='set' id='q'><query xmlns='jabber:iq:register'><username>bob</username><password>mine</password></query></iq>");
  assert.equal(errorOf(s.written.at(-1)!), "bad-request", "not another account");
  assert.ok(await verifyPassword((await x.accounts.credentials("bob"))!, "pw"));

  n = s.written.length;
  fromClient(x, s, "<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>");
  assert.equal((await untilWritten(s, n)).attrs.type, "result");
  assert.ok(s.failed instanceof StreamError && s.failed.condition === "not-authorized", "then the stream ends");
  assert.equal(await x.accounts.hasUser("alice"), false);
});

test("XEP-0077 logged in with passwordChange and remove off: not-allowed", { timeout: 5000 }, async () => {
  const x = await fakeContext(["alice"], { register: { passwordChange: false, remove: false } });
  registerModule(x.hooks, x, discoModule(x.hooks));
  const s = fakeSession("alice");
  fromClient(x, s, "<iq type='set' id='p'><query xmlns='jabber:iq:register'><password>x</password></query></iq>");
  assert.equal(errorOf(s.written.at(-1)!), "not-allowed");
  fromClient(x, s, "<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>");
  assert.equal(errorOf(s.written.at(-1)!), "not-allowed");
  assert.equal(await x.accounts.hasUser("alice"), true);
});
