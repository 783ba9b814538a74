import { test } from "node:test";
import assert from "node:assert/strict";
import { FrameDecoder, RelayFrameError, decodeFrame, encodeFrame, encodeHead, type Header } from "../../../src/relay/codec.js";

interface Got {
  header: Header;
  body: Buffer;
}

function decoder(max = 1 << 20): { d: FrameDecoder; got: Got[] } {
  const got: Got[] = [];
  const d = new FrameDecoder(max, { frame: (header, body) => got.push({ header, body: Buffer.from(body) }) });
  return { d, got };
}

/** A raw frame: u32 length | u16 header length | header bytes | body, for writing what encodeFrame would refuse to. */
function raw(headerBytes: Buffer, body: Buffer = Buffer.alloc(0), headerLength = headerBytes.length): Buffer {
  const b = Buffer.alloc(6 + headerBytes.length + body.length);
  b.writeUInt32BE(2 + headerBytes.length + body.length, 0);
  b.writeUInt16BE(headerLength, 4);
  headerBytes.copy(b, 6);
  body.copy(b, 6 + headerBytes.length);
  return b;
}

function codeOf(fn: () => void): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof RelayFrameError, `not a RelayFrameError: ${e}`);
    return e.code;
  }
  assert.fail("no error");
}

const FRAMES: [Header, Buffer][] = [
  [{ t: "hello", v: 1 }, Buffer.alloc(0)],
  [{ t: "req", id: "1", to: "bob@localhost/x", ttl: 250 }, Buffer.from("payload ✓ bytes")],
  [{ t: "msg", to: "ünïcødé@localhost" }, Buffer.from([0, 1, 2, 255, 254, 0])],
  [{ t: "res", re: "1" }, Buffer.alloc(300, 7)],
];
const STREAM = Buffer.concat(FRAMES.map(([h, b]) => encodeFrame(h, b)));

function check(got: Got[]): void {
  assert.equal(got.length, FRAMES.length);
  got.forEach((g, i) => {
    assert.deepEqual(g.header, FRAMES[i][0]);
    assert.deepEqual(g.body, FRAMES[i][1]);
  });
}

test("decodes a stream of frames pushed whole", () => {
  const { d, got } = decoder();
  d.push(STREAM);
  check(got);
  assert.equal(d.pendingBytes, 0);
});

test("decodes the stream split in two at every byte position", () => {
  for (let cut = 0; cut <= STREAM.length; cut++) {
    const { d, got } = decoder();
    d.push(STREAM.subarray(0, cut));
    d.push(STREAM.subarray(cut));
    check(got);
    assert.equal(d.pendingBytes, 0, `cut ${cut}`);
  }
});

test("decodes the stream byte by byte", () => {
  const { d, got } = decoder();
  for (let i = 0; i < STREAM.length; i++) d.push(STREAM.subarray(i, i + 1));
  check(got);
});

test("decodes the stream in chunks of 3 and 7 bytes", () => {
  for (const n of [3, 7]) {
    const { d, got } = decoder();
    for (let i = 0; i < STREAM.length; i += n) d.push(STREAM.subarray(i, i + n));
    check(got);
  }
});

test("too-large is detected from the length prefix before the frame body arrives", () => {
  const { d, got } = decoder(1000);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(1001, 0);
  assert.equal(codeOf(() => d.push(len)), "too-large");
  assert.equal(got.length, 0);
  // Also when the prefix itself comes in pieces.
  const { d: d2 } = decoder(1000);
  d2.push(len.subarray(0, 3));
  assert.equal(codeOf(() => d2.push(len.subarray(3))), "too-large");
  // Exactly the limit is allowed.
  const { d: d3, got: got3 } = decoder(64);
  const h = Buffer.from('{"t":"x"}');
  d3.push(raw(h, Buffer.alloc(64 - 2 - h.length)));
  assert.equal(got3.length, 1);
});

test("a header longer than the frame is bad-frame", () => {
  const { d } = decoder();
  assert.equal(codeOf(() => d.push(raw(Buffer.from('{"t":"x"}'), Buffer.alloc(0), 50))), "bad-frame");
  assert.equal(codeOf(() => decodeFrame(Buffer.from([0]))), "bad-frame", "shorter than its u16");
});

test("a header that is not JSON, or JSON but not an object, is bad-frame", () => {
  for (const text of ["{not json", "", '"a string"', "42", "[1,2]", "null", "true"]) {
    const { d, got } = decoder();
    assert.equal(codeOf(() => d.push(raw(Buffer.from(text)))), "bad-frame", text);
    assert.equal(got.length, 0);
  }
});

test("encodeHead/encodeFrame round trip, header given as object or string", () => {
  const body = Buffer.from("abc");
  const head = encodeHead({ t: "msg", to: "a@b" }, body.length);
  assert.equal(head.readUInt32BE(0), head.length - 4 + body.length);
  assert.equal(head.readUInt16BE(4), head.length - 6);
  const f = decodeFrame(Buffer.concat([head.subarray(4), body]));
  assert.deepEqual(f.header, { t: "msg", to: "a@b" });
  assert.deepEqual(f.body, body);
  assert.deepEqual(encodeHead('{"t":"ping"}', 0), encodeFrame({ t: "ping" }));
  // Multi-byte UTF-8 in the header: lengths count bytes, not characters.
  const u = encodeFrame({ t: "msg", to: "日本@x" }, body);
  const { d, got } = decoder();
  d.push(u);
  assert.deepEqual(got[0].header, { t: "msg", to: "日本@x" });
  assert.throws(() => encodeHead({ t: "x".repeat(70000) }, 0), RangeError);
});

test("the body is a view into the chunk, not a copy, when the frame sits in one chunk", () => {
  const chunk = encodeFrame({ t: "msg" }, Buffer.from("hello body"));
  let seen: Buffer | null = null;
  const d = new FrameDecoder(1 << 20, { frame: (_h, body) => (seen = body) });
  d.push(chunk);
  const body = seen! as Buffer;
  assert.equal(body.toString(), "hello body");
  assert.equal(body.buffer, chunk.buffer);
  assert.equal(body.byteOffset, chunk.byteOffset + chunk.length - body.length);
  // Two frames in one chunk: both views.
  const two = Buffer.concat([chunk, chunk]);
  const views: Buffer[] = [];
  new FrameDecoder(1 << 20, { frame: (_h, b) => views.push(b) }).push(two);
  assert.equal(views.length, 2);
  for (const v of views) assert.equal(v.buffer, two.buffer);
});
