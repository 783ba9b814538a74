import { test } from "node:test";
import assert from "node:assert/strict";
import { bind2Resource } from "../../../../src/xmpp/sasl/sasl2.js";

// XEP-0386 §3.2.1: `tag/part`, the part stable per account and user-agent id, random without an id.

test("the same account, user-agent id and tag: the same resource; the id is not in it", { timeout: 5000 }, () => {
  const id = "d4565fa7-4d72-4749-b3d3-740edbf87770";
  const r = bind2Resource("alice@localhost", id, "Conversations.a1b2");
  assert.match(r, /^Conversations\.a1b2\/[A-Za-z0-9_-]{8}$/);
  assert.equal(bind2Resource("alice@localhost", id, "Conversations.a1b2"), r);
  assert.ok(!r.includes(id) && !r.includes(id.slice(0, 8)));
  assert.notEqual(bind2Resource("alice@localhost", `${id}x`, "Conversations.a1b2"), r, "another id");
  assert.notEqual(bind2Resource("bob@localhost", id, "Conversations.a1b2"), r, "another account");
});

test("without a user-agent id: random; without a tag: the server's part alone; the tag cleaned and cut", { timeout: 5000 }, () => {
  const seen = new Set(Array.from({ length: 100 }, () => bind2Resource("alice@localhost", "", "phone")));
  assert.equal(seen.size, 100);
  for (const r of seen) assert.match(r, /^phone\/[A-Za-z0-9_-]{8}$/);
  assert.match(bind2Resource("alice@localhost", "id", ""), /^[A-Za-z0-9_-]{8}$/);
  assert.match(bind2Resource("alice@localhost", "id", "Raw Client/1@x\u0000\u007f"), /^RawClient1x\/[A-Za-z0-9_-]{8}$/);
  assert.match(bind2Resource("alice@localhost", "id", "t".repeat(100)), new RegExp(`^${"t".repeat(64)}/[A-Za-z0-9_-]{8}$`));
  // Only slashes and spaces: nothing of the tag is left.
  assert.match(bind2Resource("alice@localhost", "id", " / "), /^[A-Za-z0-9_-]{8}$/);
});
