import { test } from "node:test";
import assert from "node:assert/strict";
import { parse as ltxParse, type Element } from "ltx";
import { StreamParser, type StreamSink } from "../../../../src/xmpp/stream/parser.js";
import { StreamError } from "../../../../src/xmpp/errors.js";
import { parseStanza } from "../../../../src/xmpp/stream/xml.js";

class Recorder implements StreamSink {
  events: string[] = [];
  streamStart(name: string, attrs: Record<string, string>): void {
    this.events.push(`start ${name} ${attrs.to}`);
  }
  stanza(el: Element): void {
    this.events.push(`stanza ${el.toString()}`);
  }
  streamEnd(): void {
    this.events.push("end");
  }
}

const LIMITS = { maxStanzaBytes: 1024, maxDepth: 8 };
const HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";
const STREAM = Buffer.from(
  HEADER +
    "<message to='b@localhost' type='chat'><body>h\u00e9llo \u2713 \ud83d\ude00 &amp; &lt;tag&gt; &#x41;</body></message> \n" +
    "<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>" +
    "<message><body><![CDATA[<not markup> ]] > ]]></body></message>" +
    "</stream:stream>",
);

function run(chunks: Buffer[], limits = LIMITS): string[] {
  const r = new Recorder();
  const p = new StreamParser(r, limits);
  for (const c of chunks) p.push(c);
  return r.events;
}

function conditionOf(chunks: Buffer[], limits = LIMITS): string {
  try {
    run(chunks, limits);
  } catch (e) {
    assert.ok(e instanceof StreamError, String(e));
    return e.condition;
  }
  return "no error";
}

const bytes = (b: Buffer) => [...b].map((x) => Buffer.from([x]));
const whole = run([STREAM]);

test("a whole stream gives header, each stanza, and the end", () => {
  assert.equal(whole.length, 5);
  assert.equal(whole[0], "start stream:stream localhost");
  assert.match(whole[1], /h\u00e9llo \u2713 \ud83d\ude00 &amp; &lt;tag&gt; A/);
  assert.match(whole[3], /&lt;not markup&gt; ]] &gt; /);
  assert.equal(whole[4], "end");
});

test("split at every position gives the same events", () => {
  for (let i = 1; i < STREAM.length; i++) assert.deepEqual(run([STREAM.subarray(0, i), STREAM.subarray(i)]), whole, `split at ${i}`);
});

test("byte by byte (UTF-8 characters split across chunks) gives the same events", () => {
  assert.deepEqual(run(bytes(STREAM)), whole);
});

test("restricted XML: comments, DOCTYPE, processing instructions after the header", () => {
  for (const bad of ["<!-- hi -->", "<!DOCTYPE x>", "<?php x ?>"]) {
    const input = Buffer.from(HEADER + bad);
    assert.equal(conditionOf([input]), "restricted-xml", bad);
    assert.equal(conditionOf(bytes(input)), "restricted-xml", `${bad} byte by byte`);
  }
  assert.equal(conditionOf([Buffer.from(HEADER + "<message><body><!-- x --></body></message>")]), "restricted-xml");
});

test("not well-formed: mismatched tags, bad entities, stray text, control characters", () => {
  for (const bad of ["<a></b>", "<message><body>&nbsp;</body></message>", "hello<message/>", "<message><body>\u0001</body></message>", "<message>&#0;</message>"]) {
    assert.equal(conditionOf([Buffer.from(HEADER + bad)]), "not-well-formed", bad);
  }
});

test("a stanza over the size limit is a policy violation, before it is all read", () => {
  const big = Buffer.from(HEADER + `<message><body>${"x".repeat(20000)}`);
  assert.equal(conditionOf([big]), "policy-violation");
  assert.equal(conditionOf([Buffer.from(HEADER + `<message a='${"x".repeat(20000)}`)]), "policy-violation");
  // Many stanzas in one chunk, each within the limit, pass.
  const many = Buffer.from(HEADER + "<message><body>ok</body></message>".repeat(2000));
  assert.equal(run([many]).length, 2001);
});

test("nesting deeper than the limit is a policy violation", () => {
  const deep = "<a>".repeat(20);
  assert.equal(conditionOf([Buffer.from(HEADER + "<message>" + deep)]), "policy-violation");
});

test("restart drops the old stream's state and reads a new header", () => {
  const r = new Recorder();
  const p = new StreamParser(
    {
      streamStart: (n, a) => r.streamStart(n, a),
      stanza: (el) => {
        r.stanza(el);
        p.restart();
      },
      streamEnd: () => r.streamEnd(),
    },
    LIMITS,
  );
  p.push(Buffer.from(HEADER + "<auth/>"));
  p.push(Buffer.from(HEADER + "<iq/>"));
  assert.deepEqual(r.events, ["start stream:stream localhost", "stanza <auth/>", "start stream:stream localhost", "stanza <iq/>"]);
});

// The stanza parser against ltx's own parser, on stanzas both must read the same way.
const SAME_AS_LTX = [
  "<message to='b@localhost' type='chat' id='1'><body>hi</body></message>",
  `<message to="b@localhost"><body>a &amp; b &lt; c &gt; d &quot;e&apos; &#x1F600; &#65;</body><thread>t</thread></message>`,
  "<iq type='set' id='x'><query xmlns='jabber:iq:roster'><item jid='c@localhost' name='C &amp; D'><group>friends</group></item></query></iq>",
  "<presence><show>away</show><status>out  &#10; back soon</status><priority>5</priority><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/></presence>",
  "<message><body><![CDATA[<b>bold</b> & more]]></body></message>",
  "<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>",
  "<message><x:y xmlns:x='urn:x' x:a='1'>z</x:y><body/></message>",
  "<message a = 'spaced' b=\"q'uote\" c='d\"q' ><body >x</body ></message >",
  "<presence to='r@muc/nick'>\n  <x xmlns='http://jabber.org/protocol/muc'/>\n</presence>",
];

test("parses stanzas the way ltx does (tree, text, attributes, entities, CDATA)", () => {
  for (const s of SAME_AS_LTX) {
    const ours = run([Buffer.from(HEADER + s)])[1];
    assert.equal(ours, `stanza ${ltxParse(s).toString()}`, s);
  }
});

test("text after a CDATA section is kept (ltx's own parser drops it)", () => {
  const r = run([Buffer.from(HEADER + "<message><body>a <![CDATA[<b>]]> c</body></message>")]);
  assert.equal(r[1], "stanza <message><body>a &lt;b&gt; c</body></message>");
});

test("attribute values: literal white space becomes a space, character references stay (XML 1.0 §3.3.3)", () => {
  const r = run([Buffer.from(HEADER + "<message a='x\ty\nz' b='x&#10;y'/>")]);
  assert.equal(r[1], `stanza <message a="x y z" b="x\ny"/>`);
});

test("not well-formed tags and attributes", () => {
  for (const bad of [
    "<message a='1' a='2'/>",
    "<message a=1/>",
    "<message a/>",
    "<message a='1'b='2'/>",
    "<message a='x<y'/>",
    "<1message/>",
    "<message><body>x</bod></message>",
    "<message>&amp</message>",
    "<message>&#xZZ;</message>",
    "<message>&#xD800;</message>",
    "<stream:features/>junk",
  ]) {
    const code = conditionOf([Buffer.from(HEADER + bad)]);
    assert.ok(code === "not-well-formed", `${bad}: ${code}`);
  }
});

test("a '>' inside a quoted attribute value does not end the tag, in one piece or split anywhere", () => {
  const s = Buffer.from(HEADER + "<message to='b@localhost' x='a>b' y=\"/>\"><body>1 > 0</body></message>");
  const one = run([s]);
  assert.equal(one[1], `stanza <message to="b@localhost" x="a&gt;b" y="/&gt;"><body>1 &gt; 0</body></message>`);
  for (let i = 1; i < s.length; i++) assert.deepEqual(run([s.subarray(0, i), s.subarray(i)]), one, `split at ${i}`);
});

test("the XML declaration is allowed before each stream header only, and may be cut anywhere", () => {
  const decl = Buffer.from("<?xml version='1.0' encoding='UTF-8'?>\n" + HEADER.slice(HEADER.indexOf("<stream")) + "<presence/>");
  const want = ["start stream:stream localhost", "stanza <presence/>"];
  assert.deepEqual(run(bytes(decl)), want);
  assert.equal(conditionOf([Buffer.from(HEADER + "<?xml version='1.0'?>")]), "restricted-xml");
});

test("the stream's end tag must match its header", () => {
  assert.deepEqual(run([Buffer.from(HEADER + "<presence/></stream:stream>")]).at(-1), "end");
  assert.equal(conditionOf([Buffer.from(HEADER + "</stream:streamx>")]), "not-well-formed");
  // Nothing after the end is read.
  assert.deepEqual(run([Buffer.from(HEADER + "</stream:stream><junk")]).at(-1), "end");
});

test("a multi-byte stanza is measured in bytes against the limit", () => {
  const limits = { maxStanzaBytes: 300, maxDepth: 8 };
  // 120 three-byte characters: 120 UTF-16 units, 360 bytes.
  assert.equal(conditionOf([Buffer.from(HEADER + `<message><body>${"\u2713".repeat(120)}</body></message>`)], limits), "policy-violation");
  assert.equal(run([Buffer.from(HEADER + `<message><body>${"\u2713".repeat(60)}</body></message>`)], limits).length, 2);
});

test("stanzas that share a read with others are parsed within their bounds, the same as alone (no slice of the read)", () => {
  // Every stanza of SAME_AS_LTX, each followed and preceded by others in one read: each is parsed where it lies.
  const all = SAME_AS_LTX.join("");
  const events = run([Buffer.from(HEADER + all)]);
  assert.deepEqual(events.slice(1), SAME_AS_LTX.map((s) => `stanza ${ltxParse(s).toString()}`));
  // A multi-byte stanza next to another is still measured alone against the limit.
  const limits = { maxStanzaBytes: 300, maxDepth: 8 };
  assert.equal(run([Buffer.from(HEADER + `<presence/><message><body>${"\u2713".repeat(60)}</body></message><presence/>`)], limits).length, 4);
  assert.equal(conditionOf([Buffer.from(HEADER + `<presence/><message><body>${"\u2713".repeat(120)}</body></message><presence/>`)], limits), "policy-violation");
});

test("parseStanza reads only s[from, to)", () => {
  assert.equal(parseStanza("<a/><b/>", 0, 4).toString(), "<a/>");
  assert.equal(parseStanza("<a/><b/>", 4, 8).toString(), "<b/>");
  const s = "xx<message to='b'><body>hi &amp; bye</body></message><r xmlns='urn:xmpp:sm:3'/>";
  const end = s.indexOf("<r ");
  assert.equal(parseStanza(s, 2, end).toString(), parseStanza(s.slice(2, end)).toString());
  // What lies past `to` is not the stanza's: an end tag or a CDATA section that would end only there does not end.
  assert.throws(() => parseStanza("<a></a>", 0, 6), StreamError);
  assert.throws(() => parseStanza("<a><![CDATA[x]]></a>", 0, 14), StreamError);
  assert.throws(() => parseStanza("<a>text<b/></a>", 0, 7), StreamError);
});
