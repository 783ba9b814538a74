import { test } from "node:test";
import assert from "node:assert/strict";
import { rawAuth, rawResumable } from "./util.js";
import { SERVICE, bodyFrom, groupchat, openRoom, presenceFrom, startPair, usersOn } from "./muc-util.js";
import { waitUntil } from "../../helpers.js";

// An occupant's session resumed on another worker (XEP-0198): its rooms go with it (kept among its
// directed presence), the room reaches it there, and when it ends there the room is told.

test("an occupant resumed on the other worker keeps its rooms, and leaves them when its session ends there", { timeout: 30_000 }, async () => {
  const pair = await startPair(["alice", "bob"]);
  const room = `moving@${SERVICE}`;
  try {
    const [al] = await usersOn([pair.portA, pair.portB], "alice");
    try {
      await openRoom(al, room, "Alice");
      const { r: b1, id } = await rawResumable(pair.portA, "bob", "bob-pass", "phone");
      b1.send("<presence/>");
      b1.send(`<presence to='${room}/Bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
      await b1.until(/code=["']110["']/);
      await al.waitFor(presenceFrom(`${room}/Bob`));
      b1.send(`<message to='${room}' type='groupchat' id='g1'><body>before the cut</body></message>`);
      await al.waitFor(bodyFrom(`${room}/Bob`, "before the cut"));
      b1.destroy();
      await waitUntil(() => (pair.a.proxy.sessions.get("bob@localhost/phone") as any)?.suspended === true, 5000, "bob's session suspended on A");

      const b2 = await rawAuth(pair.portB, "bob", "bob-pass");
      try {
        b2.send(`<resume xmlns='urn:xmpp:sm:3' previd='${id}' h='0'/>`);
        await b2.until(/<resumed /);
        await groupchat(al, room, "still with us?");
        await b2.until(/still with us\?/);
        assert.ok(!al.stanzas.some((el) => presenceFrom(`${room}/Bob`)(el) && el.attrs.type === "unavailable"), "Bob never left the room");
        // What a client resumed from a count that stayed below its message sends again (docs/architecture.md,
        // "Resumption after a death", *Resent*), here by hand: broadcast once.
        b2.send(`<message to='${room}' type='groupchat' id='g1'><body>before the cut</body></message>`);
        b2.send(`<message to='${room}' type='groupchat' id='g2'><body>yes, from B</body></message>`);
        await al.waitFor(bodyFrom(`${room}/Bob`, "yes, from B"));
        // The first broadcast was taken by waitFor above: none is left (ordered stream: it would have come before g2).
        assert.equal(al.stanzas.filter(bodyFrom(`${room}/Bob`, "before the cut")).length, 0, "the resent groupchat message not broadcast again");
        b2.send("</stream:stream>");
        await al.waitFor((el) => presenceFrom(`${room}/Bob`)(el) && el.attrs.type === "unavailable");
      } finally {
        b2.destroy();
      }
    } finally {
      await al.stop();
    }
  } finally {
    await pair.stop();
  }
});
