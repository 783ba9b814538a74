import { test } from "node:test";
import assert from "node:assert/strict";
import { Router } from "../../../src/router/router.js";
import { SERVICE, bodyFrom, codes, groupchat, itemOf, join, openRoom, presenceFrom, startPair, usersOn } from "./muc-util.js";

// A worker leaves the ring without its sessions saying goodbye (as when it dies): the rooms on the other
// workers remove its occupants (XEP-0045 status 333) and tell the others. Two workers on a LocalHub; the
// second one's bus is closed, which takes it off the ring at once.

test("occupants whose worker left the ring are removed from the rooms elsewhere, with 333", { timeout: 30_000 }, async () => {
  const pair = await startPair(["alice", "bob", "carol"]);
  try {
    const router = new Router(pair.a.bus.membership());
    const name = Array.from({ length: 100 }, (_, i) => `r${i}@${SERVICE}`).find((r) => router.ownerOf(r) === "w0")!;
    // alice and carol on w0 (the room's worker), bob on w1.
    const [al, bo, ca] = await usersOn([pair.portA, pair.portB], "alice", "bob", "carol");
    const [ca2] = await usersOn([pair.portA, pair.portA], "carol");
    await ca.stop();
    try {
      await openRoom(al, name, "Alice");
      await join(bo, name, "Bob");
      await join(ca2, name, "Carol");
      pair.b.bus.close();
      const gone = await al.waitFor((el) => presenceFrom(`${name}/Bob`, 333)(el) && el.attrs.type === "unavailable");
      assert.deepEqual(codes(gone), [333]);
      assert.equal(itemOf(gone).attrs.role, "none");
      await groupchat(al, name, "without bob");
      await ca2.waitFor(bodyFrom(`${name}/Alice`, "without bob"));
    } finally {
      await Promise.all([al.stop(), bo.stop(), ca2.stop()]);
    }
  } finally {
    await pair.stop();
  }
});
