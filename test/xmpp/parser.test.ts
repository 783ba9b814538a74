import { test } from "node:test";
import assert from "node:assert/strict";
import type { Element } from "ltx";
import { StreamParser, type StreamSink } from "../../src/xmpp/stream/parser.js";
import { StreamError } from "../../src/xmpp/errors.js";

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
