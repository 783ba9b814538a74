import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "ltx";
import { MessageFraming } from "../../../../src/xmpp/stream/framing.js";
import type { StreamSink } from "../../../../src/xmpp/stream/parser.js";
import { StreamError } from "../../../../src/xmpp/errors.js";

class Recorder implements StreamSink {
  events: string[] = [];
  streamStart(name: string, attrs: Record<string, string>): void {
    this.events.push(`open ${name} ${attrs.to}`);
  }
  stanza(el: Element): void {
    this.events.push(`stanza ${el.toString()}`);
  }
  streamEnd(): void {
    this.events.push("close");
  }
}

const LIMITS = { maxStanzaBytes: 256, maxDepth: 4 };
const OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";

function framing(): { f: MessageFraming; r: Recorder } {
  const r = new Recorder();
  return { f: new MessageFraming(r, LIMITS), r };
}

function condition(fn: () => void): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof StreamError) return e.condition;
    throw e;
  }
  return "none";
}

test("RFC 7395 messages: <open/>, stanzas, restart with a new <open/>, <close/>", { timeout: 5000 }, () => {
  const { f, r } = framing();
  f.push(Buffer.from(OPEN), false);
  f.push(Buffer.from(" <message xmlns='jabber:client' to='b@localhost'><body>h\u00e9 &amp; \u2713</body></message>\n"), false);
  f.restart();
  f.push(Buffer.from(OPEN), false);
  f.push(Buffer.from("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"), false);
  assert.deepEqual(r.events, [
    "open open localhost",
    `stanza <message xmlns="jabber:client" to="b@localhost"><body>h\u00e9 &amp; \u2713</body></message>`,
    "open open localhost",
    "close",
  ]);
});

test("RFC 7395 messages: each fault is its stream error", { timeout: 5000 }, () => {
  const cases: [string, string | Buffer, boolean][] = [
    ["bad-format", "<presence/>", false], // before <open/>
    ["bad-format", Buffer.from(OPEN), true],
    ["not-well-formed", "<a/><b/>", false],
    ["not-well-formed", "<a>", false],
    ["not-well-formed", "", false],
    ["not-well-formed", "</a>", false],
    ["not-well-formed", "text", false],
    ["restricted-xml", "<!-- c -->", false],
    ["restricted-xml", "<!DOCTYPE x>", false],
    ["restricted-xml", "<?xml version='1.0'?>", false],
    ["policy-violation", `<a>${"x".repeat(300)}</a>`, false],
    ["policy-violation", "<a><b><c><d><e><f/></e></d></c></b></a>", false],
  ];
  for (const [want, frame, binary] of cases) {
    const { f } = framing();
    assert.equal(condition(() => f.push(Buffer.from(frame), binary)), want, String(frame));
  }
  const { f } = framing();
  f.push(Buffer.from(OPEN), false);
  assert.equal(condition(() => f.push(Buffer.from(OPEN), false)), "bad-format");
  assert.equal(condition(() => f.checkOpen("open", { xmlns: "jabber:client" })), "invalid-namespace");
});

test("RFC 7395 output: elements declare their namespace, stream errors their prefix", { timeout: 5000 }, () => {
  const { f } = framing();
  assert.equal(f.element("<message to='a'><body/></message>"), "<message xmlns='jabber:client' to='a'><body/></message>");
  assert.equal(f.element("<iq/>"), "<iq xmlns='jabber:client'/>");
  assert.equal(f.element(`<iq xmlns="jabber:client" id='x xmlns=y'/>`), `<iq xmlns="jabber:client" id='x xmlns=y'/>`);
  assert.equal(f.element("<presence id='xmlns=z'/>"), "<presence xmlns='jabber:client' id='xmlns=z'/>");
  assert.equal(f.element("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"), "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
  assert.equal(f.features().toString(), `<stream:features xmlns:stream="http://etherx.jabber.org/streams"/>`);
  assert.match(f.streamError(new StreamError("not-well-formed")), /^<stream:error xmlns:stream='http:\/\/etherx.jabber.org\/streams'><not-well-formed /);
  assert.equal(f.close(), "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
});
