import { test } from "node:test";
import assert from "node:assert/strict";
import { canonicalAddress, formatAddress, normalizeAddress, parseAddress } from "../../../src/address/address.js";

test("canonicalAddress is formatAddress, returning the input itself when it is already canonical", () => {
  const inputs = ["alice@localhost", "Alice@LocalHost/R", "alice@localhost/Res", "localhost", "LOCALHOST/x", "bob@localhost/a/b", "ALICE@localhost", "alice@LOCALHOST", "a@b/c@d", "émile@exemple.fr/Ü"];
  for (const s of inputs) {
    const a = parseAddress(s)!;
    assert.equal(canonicalAddress(s, a), formatAddress(a), s);
  }
  const same = "carol@localhost/phone";
  assert.equal(canonicalAddress(same, parseAddress(same)!), same);
  assert.equal(normalizeAddress("Dave@LOCALHOST"), "dave@localhost");
  assert.equal(normalizeAddress("bad@"), null);
  assert.equal(normalizeAddress("x@y/"), null);
});
