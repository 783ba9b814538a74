import { test } from "node:test";
import assert from "node:assert/strict";
import { hash32 } from "../../../src/router/hash.js";

/** MurmurHash3 x86_32 over bytes, written from the reference (SMHasher MurmurHash3.cpp), independent of hash32. */
function murmur3Bytes(data: Uint8Array, seed = 0): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  const rotl = (x: number, r: number) => ((x << r) | (x >>> (32 - r))) >>> 0;
  const nblocks = data.length >> 2;
  let h1 = seed >>> 0;
  for (let i = 0; i < nblocks; i++) {
    const o = i * 4;
    let k1 = (data[o] | (data[o + 1] << 8) | (data[o + 2] << 16) | (data[o + 3] << 24)) >>> 0;
    k1 = Math.imul(k1, c1) >>> 0;
    k1 = rotl(k1, 15);
    k1 = Math.imul(k1, c2) >>> 0;
    h1 = (h1 ^ k1) >>> 0;
    h1 = rotl(h1, 13);
    h1 = (Math.imul(h1, 5) + 0xe6546b64) >>> 0;
  }
  const tail = nblocks * 4;
  let k1 = 0;
  const rest = data.length & 3;
  if (rest >= 3) k1 ^= data[tail + 2] << 16;
  if (rest >= 2) k1 ^= data[tail + 1] << 8;
  if (rest >= 1) {
    k1 ^= data[tail];
    k1 = Math.imul(k1, c1) >>> 0;
    k1 = rotl(k1, 15);
    k1 = Math.imul(k1, c2) >>> 0;
    h1 = (h1 ^ k1) >>> 0;
  }
  h1 = (h1 ^ data.length) >>> 0;
  h1 ^= h1 >>> 16;
  h1 = Math.imul(h1, 0x85ebca6b) >>> 0;
  h1 ^= h1 >>> 13;
  h1 = Math.imul(h1, 0xc2b2ae35) >>> 0;
  h1 ^= h1 >>> 16;
  return h1 >>> 0;
}

// Published MurmurHash3 x86_32 vectors (SMHasher verification set as collected on Wikipedia / StackOverflow #14747343).
const VECTORS: { bytes: Buffer; seed: number; hash: number }[] = [
  { bytes: Buffer.alloc(0), seed: 0, hash: 0 },
  { bytes: Buffer.alloc(0), seed: 1, hash: 0x514e28b7 },
  { bytes: Buffer.alloc(0), seed: 0xffffffff, hash: 0x81f16f39 },
  { bytes: Buffer.from([0xff, 0xff, 0xff, 0xff]), seed: 0, hash: 0x76293b50 },
  { bytes: Buffer.from([0x21, 0x43, 0x65, 0x87]), seed: 0, hash: 0xf55b516b },
  { bytes: Buffer.from([0x21, 0x43, 0x65, 0x87]), seed: 0x5082edee, hash: 0x2362f9de },
  { bytes: Buffer.from([0x21, 0x43, 0x65]), seed: 0, hash: 0x7e4a8634 },
  { bytes: Buffer.from([0x21, 0x43]), seed: 0, hash: 0xa0f7b07a },
  { bytes: Buffer.from([0x21]), seed: 0, hash: 0x72661cf4 },
  { bytes: Buffer.from([0, 0, 0, 0]), seed: 0, hash: 0x2362f9de },
  { bytes: Buffer.from([0, 0, 0]), seed: 0, hash: 0x85f0b427 },
  { bytes: Buffer.from([0, 0]), seed: 0, hash: 0x30f4c306 },
  { bytes: Buffer.from([0]), seed: 0, hash: 0x514e28b7 },
  { bytes: Buffer.from("aaaa"), seed: 0x9747b28c, hash: 0x5a97808a },
  { bytes: Buffer.from("aaa"), seed: 0x9747b28c, hash: 0x283e0130 },
  { bytes: Buffer.from("aa"), seed: 0x9747b28c, hash: 0x5d211726 },
  { bytes: Buffer.from("a"), seed: 0x9747b28c, hash: 0x7fa09ea6 },
  { bytes: Buffer.from("abcd"), seed: 0x9747b28c, hash: 0xf0478627 },
  { bytes: Buffer.from("abc"), seed: 0x9747b28c, hash: 0xc84a62dd },
  { bytes: Buffer.from("ab"), seed: 0x9747b28c, hash: 0x74875592 },
  { bytes: Buffer.from("Hello, world!"), seed: 0x9747b28c, hash: 0x24884cba },
  { bytes: Buffer.from("ππππππππ", "utf8"), seed: 0x9747b28c, hash: 0xd58063c1 },
  { bytes: Buffer.alloc(256, "a"), seed: 0x9747b28c, hash: 0x37405bdc },
  { bytes: Buffer.from("abc"), seed: 0, hash: 0xb3dd93fa },
  { bytes: Buffer.from("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"), seed: 0, hash: 0xee925b90 },
  { bytes: Buffer.from("The quick brown fox jumps over the lazy dog"), seed: 0x9747b28c, hash: 0x2fa826cd },
];

test("the byte-wise reference reproduces the published murmur3 vectors", () => {
  for (const v of VECTORS) {
    assert.equal(murmur3Bytes(v.bytes, v.seed), v.hash, `${v.bytes.toString("hex")} seed ${v.seed.toString(16)}`);
  }
});

test("hash32 gives the published vectors whose bytes are a UTF-16LE string (even length)", () => {
  let applied = 0;
  for (const v of VECTORS) {
    if (v.bytes.length % 2 !== 0) continue;
    // Two bytes per code unit, little-endian: the string whose UTF-16LE bytes are exactly these.
    let s = "";
    for (let i = 0; i < v.bytes.length; i += 2) s += String.fromCharCode(v.bytes[i] | (v.bytes[i + 1] << 8));
    assert.equal(hash32(s, v.seed), v.hash, `${v.bytes.toString("hex")} seed ${v.seed.toString(16)}`);
    applied++;
  }
  assert.ok(applied >= 10, `only ${applied} vectors applied`);
});

test("hash32 equals murmur3 of Buffer.from(s, 'utf16le') for odd and even lengths, non-ASCII, surrogates and seeds", () => {
  const samples = ["", "a", "ab", "abc", "w1#17", "w1#18", "alice@localhost", "alice@localhost127.0.0.1:7000", "é", "日本語", "😀", "a😀b", "\u0000", "\uffff\u0001"];
  // A deterministic pseudo-random walk over code units, 0..40 long.
  let x = 12345;
  const rnd = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
  for (let n = 0; n < 400; n++) {
    let s = "";
    const len = rnd() % 41;
    for (let i = 0; i < len; i++) s += String.fromCharCode(rnd() % 3 === 0 ? rnd() & 0xffff : 0x20 + (rnd() % 95));
    samples.push(s);
  }
  for (const s of samples) {
    for (const seed of [0, 1, 0x9747b28c, 0xffffffff]) {
      assert.equal(hash32(s, seed), murmur3Bytes(Buffer.from(s, "utf16le"), seed), JSON.stringify(s));
    }
  }
});

test("hash32 returns an unsigned 32-bit integer and spreads neighbouring names", () => {
  const a = hash32("w1#17");
  const b = hash32("w1#18");
  for (const h of [a, b]) assert.ok(Number.isInteger(h) && h >= 0 && h <= 0xffffffff);
  // Avalanche: one changed character flips about half of the 32 bits.
  let bits = 0;
  for (let i = 0; i < 1000; i++) {
    let d = (hash32(`key${i}`) ^ hash32(`key${i + 1}`)) >>> 0;
    while (d) {
      bits += d & 1;
      d >>>= 1;
    }
  }
  const mean = bits / 1000;
  assert.ok(mean > 14 && mean < 18, `mean flipped bits ${mean}`);
});
