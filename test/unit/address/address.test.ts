import { test } from "node:test";
import assert from "node:assert/strict";
import { canonicalAddress, formatAddress, inDomain, normalizeAddress, parseAddress } from "../../../src/address/address.js";

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

test("inDomain: a domain holds itself and every local@domain[/resource], nothing else", () => {
  for (const a of ["gw.example", "gw.example/r", "x@gw.example", "x@gw.example/r/s"]) assert.equal(inDomain(a, "gw.example"), true, a);
  for (const a of ["x@evilgw.example", "gw.example.org", "x@other/gw.example", "gw.exampl"]) assert.equal(inDomain(a, "gw.example"), false, a);
  assert.equal(inDomain("x@gw.example", "y@gw.example"), false, "a bare user address is no domain");
  assert.equal(inDomain("gw.example/r", "gw.example/r"), false, "nor is a full address");
});
