import { test } from "node:test";
import assert from "node:assert/strict";
import { SlabFrames, SLAB_BYTES } from "../../../src/cluster/slab-frames.js";

// The host link's inbound framing (src/cluster/slab-frames.ts), fed as a socket would: each "read" puts some of
// the stream's bytes into `next`, as many as fit.

const frame = (body: Buffer): Buffer => {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
};

/** A deterministic generator (xorshift32), so a failure can be run again. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

/** Reads `stream` into the frames in reads of random sizes (at most what `next` offers): the views handed out. */
function feed(frames: SlabFrames, stream: Buffer, next: () => number): void {
  let at = 0;
  while (at < stream.length) {
    const room = frames.next.length;
    assert.ok(room > 0, "a read is always offered some room");
    const n = Math.min(room, stream.length - at, 1 + Math.floor(next() * 9000));
    stream.copy(frames.next, 0, at, at + n);
    at += n;
    assert.equal(frames.read(n), true);
  }
}

test("every message whole and in order, however the reads cut them; bytes handed out are never written again", { timeout: 20_000 }, () => {
  for (let seed = 1; seed <= 40; seed++) {
    const r = rng(seed);
    // Mostly small messages, some empty, a few larger than a slab.
    const bodies = Array.from({ length: 400 }, (_, i) => {
      const p = r();
      const len = p < 0.05 ? 0 : p < 0.97 ? Math.floor(r() * 700) : SLAB_BYTES + Math.floor(r() * 3 * SLAB_BYTES);
      return Buffer.alloc(len, (i * 31 + seed) & 0xff);
    });
    const views: Buffer[] = [];
    const frames = new SlabFrames((data, start, end) => views.push(data.subarray(start, end)), 1 << 20);
    feed(frames, Buffer.concat(bodies.map(frame)), r);
    assert.equal(views.length, bodies.length, `seed ${seed}: ${views.length} of ${bodies.length} messages`);
    // Checked only now, after every later read: a view kept from an early read still holds its message.
    for (let i = 0; i < bodies.length; i++) assert.ok(views[i].equals(bodies[i]), `seed ${seed}: message ${i} changed after it was handed out`);
  }
});

test("a message split across reads is handed out in place when it fits, copied only into a new slab", { timeout: 5000 }, () => {
  const got: { data: Buffer; start: number }[] = [];
  const frames = new SlabFrames((data, start) => got.push({ data, start }), 1 << 20);
  const stream = Buffer.concat([frame(Buffer.from("first")), frame(Buffer.from("second"))]);
  // The second message in two reads, cut inside its body.
  const cut = 9 + 4 + 3;
  stream.copy(frames.next, 0, 0, cut);
  frames.read(cut);
  stream.copy(frames.next, 0, cut);
  frames.read(stream.length - cut);
  assert.equal(got.length, 2);
  assert.equal(got[0].data, got[1].data, "both in the one slab");
  assert.equal(got[1].start, 13);
});

test("a length past the maximum is refused: read() is false and nothing after it is handed out", { timeout: 5000 }, () => {
  const got: string[] = [];
  const frames = new SlabFrames((data, start, end) => got.push(data.toString("utf8", start, end)), 100);
  const big = Buffer.alloc(4);
  big.writeUInt32BE(101);
  const stream = Buffer.concat([frame(Buffer.from("ok")), big, frame(Buffer.from("never"))]);
  stream.copy(frames.next);
  assert.equal(frames.read(stream.length), false);
  assert.deepEqual(got, ["ok"]);
  assert.equal(frames.refused, 101);
});

test("push() copies chunks of any size in (a socket with Node's own reads)", { timeout: 5000 }, () => {
  const want = Array.from({ length: 200 }, (_, i) => Buffer.alloc(i * 50, i));
  const got: Buffer[] = [];
  const frames = new SlabFrames((data, start, end) => got.push(data.subarray(start, end)), 1 << 20);
  const stream = Buffer.concat(want.map(frame));
  // Chunks larger than a slab, and single bytes.
  for (let at = 0; at < 100; at++) assert.equal(frames.push(stream.subarray(at, at + 1)), true);
  for (let at = 100; at < stream.length; at += 3 * SLAB_BYTES) assert.equal(frames.push(stream.subarray(at, at + 3 * SLAB_BYTES)), true);
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++) assert.ok(got[i].equals(want[i]), `message ${i}`);
});
