import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { HtExchange, htMac, newToken, tokenHash, type HtOptions } from "../../../../src/xmpp/sasl/ht.js";
import { SaslFailure } from "../../../../src/xmpp/sasl/scram.js";
import type { FastSlot, FastStore, FastToken } from "../../../../src/store/fast-store.js";
import { decode } from "../../../../src/xmpp/sasl/exchange.js";

// The HT-SHA-256-* mechanisms of XEP-0484 FAST against an in-memory FastStore.

/** A FastStore of one client's slots, with the calls it got. */
function memStore(tokens: FastToken[]): FastStore & { used: [FastSlot, number][] } {
  const used: [FastSlot, number][] = [];
  return {
    used,
    fastTokens: async () => tokens.map((t) => ({ ...t })),
    issueFastToken: async () => {},
    useFastToken: async (_u, _a, slot, count) => {
      const t = tokens.find((x) => x.slot === slot)!;
      if (count > 0 && count <= t.count) return false;
      if (count > 0) t.count = count;
      used.push([slot, count]);
      return true;
    },
    revokeFastTokens: async () => {},
  };
}

const initiator = (user: string, token: string, cb = Buffer.alloc(0)) => Buffer.concat([Buffer.from(`${user}\u0000`), createHmac("sha256", Buffer.from(token)).update("Initiator").update(cb).digest()]);

function ex(store: FastStore, o: Partial<HtOptions> = {}): HtExchange {
  return new HtExchange({ mechanism: "HT-SHA-256-NONE", cb: Buffer.alloc(0), agent: "ua", count: 0, store, unavailable: () => {}, ...o });
}

async function failsWith(p: unknown, condition: string): Promise<void> {
  await assert.rejects(async () => await (typeof p === "function" ? p() : p), (e: unknown) => e instanceof SaslFailure && e.condition === condition);
}

test("tokens are longer than SHA-256's block, so the HMAC keyed with their hash is the HMAC keyed with them (RFC 2104)", { timeout: 5000 }, () => {
  const { token, hash } = newToken();
  assert.ok(Buffer.byteLength(token) > 64, "longer than the 64-byte block");
  assert.match(token, /^[A-Za-z0-9_-]+$/, "fits an XML attribute as is");
  assert.deepEqual(hash, createHash("sha256").update(token).digest());
  assert.deepEqual(tokenHash(token), hash);
  const cb = Buffer.from("binding");
  assert.deepEqual(htMac(hash, "Initiator", cb), createHmac("sha256", Buffer.from(token)).update("Initiator").update(cb).digest());
  assert.notEqual(newToken().token, token);
});

test("HT: the right token in either slot succeeds with HMAC(token, Responder); the new slot is tried first", { timeout: 5000 }, async () => {
  const a = newToken();
  const b = newToken();
  const later = Date.now() + 60_000;
  const store = memStore([
    { slot: "current", mechanism: "HT-SHA-256-NONE", hash: a.hash, expiresAt: later, count: 0 },
    { slot: "new", mechanism: "HT-SHA-256-NONE", hash: b.hash, expiresAt: later, count: 0 },
  ]);
  const e1 = ex(store);
  const o = await e1.step(initiator("Alice", a.token));
  assert.deepEqual(o, { kind: "success", user: "alice", data: createHmac("sha256", Buffer.from(a.token)).update("Responder").digest() });
  assert.equal(e1.used?.slot, "current");
  const e2 = ex(store);
  await e2.step(initiator("alice", b.token));
  assert.equal(e2.used?.slot, "new");
  assert.deepEqual(store.used, [["current", 0], ["new", 0]]);
});

test("HT refusals: wrong token, expired, another mechanism, no user-agent id, no or malformed message, a second step, a replayed count", { timeout: 5000 }, async () => {
  const t = newToken();
  const tokens = (over: Partial<FastToken> = {}): FastToken[] => [{ slot: "new", mechanism: "HT-SHA-256-NONE", hash: t.hash, expiresAt: Date.now() + 60_000, count: 3, ...over }];
  await failsWith(ex(memStore(tokens())).step(initiator("alice", newToken().token)), "not-authorized");
  await failsWith(ex(memStore(tokens({ expiresAt: Date.now() - 1 }))).step(initiator("alice", t.token)), "not-authorized");
  await failsWith(ex(memStore(tokens({ mechanism: "HT-SHA-256-ENDP" }))).step(initiator("alice", t.token)), "not-authorized");
  await failsWith(() => ex(memStore(tokens()), { agent: "" }).step(initiator("alice", t.token)), "not-authorized");
  await failsWith(() => ex(memStore(tokens())).step(null), "malformed-request");
  await failsWith(() => ex(memStore(tokens())).step(Buffer.from("no-nul-here")), "malformed-request");
  await failsWith(() => ex(memStore(tokens())).step(Buffer.from("\u0000abc")), "malformed-request");
  const once = ex(memStore(tokens()));
  await once.step(initiator("alice", t.token));
  await failsWith(() => once.step(initiator("alice", t.token)), "malformed-request");
  await failsWith(ex(memStore(tokens()), { count: 3 }).step(initiator("alice", t.token)), "not-authorized");
  assert.equal((await ex(memStore(tokens()), { count: 4 }).step(initiator("alice", t.token))).kind, "success");
  // Channel binding: the same token with other binding data fails.
  await failsWith(ex(memStore(tokens()), { cb: Buffer.from("x") }).step(initiator("alice", t.token)), "not-authorized");
  assert.equal((await ex(memStore(tokens()), { cb: Buffer.from("x") }).step(initiator("alice", t.token, Buffer.from("x")))).kind, "success");
});

test("HT: a store that does not answer is a temporary-auth-failure, reported once", { timeout: 5000 }, async () => {
  const errors: string[] = [];
  const store = { ...memStore([]), fastTokens: async () => Promise.reject(new Error("down")) };
  await failsWith(ex(store, { unavailable: (e) => errors.push(e.message) }).step(initiator("alice", "x")), "temporary-auth-failure");
  assert.deepEqual(errors, ["down"]);
});

test("SASL data decoding shared by both profiles: empty, '=', base64, not base64", { timeout: 5000 }, async () => {
  assert.equal(decode("  "), null);
  assert.deepEqual(decode("="), Buffer.alloc(0));
  assert.deepEqual(decode(" AAE= "), Buffer.from([0, 1]));
  await failsWith(() => decode("A!=="), "incorrect-encoding");
});
