import { test } from "node:test";
import assert from "node:assert/strict";
import { Element } from "ltx";
import { validate } from "../../../../src/config/config.js";
import { SqliteStore } from "../../../../src/store/sqlite-store.js";
import { SqliteXmppStore } from "../../../../src/store/sqlite-xmpp-store.js";
import { deriveCredentials } from "../../../../src/store/scram.js";
import { Envelope, Flag, Kind } from "../../../../src/envelope/envelope.js";
import type { XmppContext } from "../../../../src/xmpp/context.js";
import type { ClientSession } from "../../../../src/xmpp/client-session.js";
import { subscription, type SubscriptionType } from "../../../../src/xmpp/modules/subscription.js";

// RFC 6121 §3's state machine, both ends at once, on a real SQLite store. The
// session is what the module sees of one (client-session.ts): it records what
// the module hands to the core, so each step's presence and roster pushes can
// be checked as well as both rosters.

const U = "alice@localhost";
const C = "bob@localhost";

interface Bench {
  x: XmppContext;
  sent: Envelope[];
  s: ClientSession;
  roster(user: string): Promise<Record<string, string>>;
  step(user: string, contact: string, type: SubscriptionType): Promise<boolean>;
  /** What the step sent, as "kind type from→to" (roster pushes as "push owner jid subscription"). */
  said(): string[];
}

async function bench(maxRosterItems = 10): Promise<Bench> {
  const config = validate({ storage: { type: "sqlite", path: ":memory:" }, listeners: [], xmpp: { maxRosterItems } });
  const accounts = new SqliteStore(":memory:");
  const creds = await deriveCredentials("pw", 4096);
  await accounts.putUser("alice", creds);
  await accounts.putUser("bob", creds);
  const store = new SqliteXmppStore(accounts.db);
  const sent: Envelope[] = [];
  const s = { submit: (env: Envelope) => void sent.push(env) } as unknown as ClientSession;
  const x = { config, accounts, store } as unknown as XmppContext;
  let seen = 0;
  return {
    x,
    sent,
    s,
    roster: async (user) => Object.fromEntries((await store.roster(user)).map((i) => [i.jid, i.subscription + (i.ask ? "+ask" : "")])),
    step: (user, contact, type) => subscription(x, s, user, contact, type, new Element("presence", { type })),
    said() {
      const out = sent.slice(seen).map((e) => {
        const el = e.payload as Element | null;
        if (el?.name === "iq") {
          const item = el.getChild("query")!.getChild("item")!;
          return `push ${e.to} ${item.attrs.jid} ${item.attrs.subscription}${item.attrs.ask ? "+ask" : ""}`;
        }
        assert.equal(e.kind, Kind.Presence);
        return `${e.flags & Flag.Probe ? "probe" : (el?.attrs.type ?? "available")} ${e.from}→${e.to}`;
      });
      seen = sent.length;
      return out;
    },
  };
}

test("subscribe, approve, unsubscribe: both rosters, the presence each side is sent, the pushes", { timeout: 10_000 }, async () => {
  const b = await bench();
  assert.equal(await b.step("alice", C, "subscribe"), true);
  assert.deepEqual(await b.roster("alice"), { [C]: "none+ask" });
  assert.deepEqual(await b.roster("bob"), {});
  assert.deepEqual(b.said(), [`push ${U} ${C} none+ask`, `subscribe ${U}→${C}`]);
  // The request waits for Bob (§3.1.3), with the stanza he will be shown again at login.
  assert.deepEqual((await b.x.store.subscriptionRequests("bob")).map((r) => r.from), [U]);
  // Asking again changes nothing in the roster and sends the request again.
  await b.step("alice", C, "subscribe");
  assert.deepEqual(b.said(), [`subscribe ${U}→${C}`]);

  assert.equal(await b.step("bob", U, "subscribed"), true);
  assert.deepEqual(await b.roster("bob"), { [U]: "from" });
  assert.deepEqual(await b.roster("alice"), { [C]: "to" });
  assert.deepEqual(b.said(), [`push ${C} ${U} from`, `push ${U} ${C} to`, `subscribed ${C}→${U}`, `probe ${U}→${C}`]);
  assert.deepEqual(await b.x.store.subscriptionRequests("bob"), []);

  // Already approved: a new subscribe is answered at once on Bob's behalf (§3.1.3).
  await b.step("alice", C, "subscribe");
  assert.deepEqual(await b.roster("alice"), { [C]: "to" });
  assert.deepEqual(b.said(), [`push ${U} ${C} to`, `subscribed ${C}→${U}`, `probe ${U}→${C}`]);

  // Mutual: Bob subscribes to Alice, she approves: both.
  await b.step("bob", U, "subscribe");
  await b.step("alice", C, "subscribed");
  assert.deepEqual([await b.roster("alice"), await b.roster("bob")], [{ [C]: "both" }, { [U]: "both" }]);
  b.said();

  // Alice unsubscribes: she stops seeing Bob (§3.3), he still sees her.
  await b.step("alice", C, "unsubscribe");
  assert.deepEqual([await b.roster("alice"), await b.roster("bob")], [{ [C]: "from" }, { [U]: "to" }]);
  assert.deepEqual(b.said(), [`push ${U} ${C} from`, `push ${C} ${U} to`, `unsubscribe ${U}→${C}`, `unavailable ${C}→${U}`]);

  // Alice revokes Bob's subscription to her (§3.2): neither sees the other.
  await b.step("alice", C, "unsubscribed");
  assert.deepEqual([await b.roster("alice"), await b.roster("bob")], [{ [C]: "none" }, { [U]: "none" }]);
  assert.deepEqual(b.said(), [`push ${U} ${C} none`, `push ${C} ${U} none`, `unsubscribed ${U}→${C}`, `unavailable ${U}→${C}`]);
});

test("subscribed without a pending request is ignored (no pre-approval); a denied request clears ask", { timeout: 10_000 }, async () => {
  const b = await bench();
  assert.equal(await b.step("bob", U, "subscribed"), true);
  assert.deepEqual([await b.roster("alice"), await b.roster("bob")], [{}, {}]);
  assert.deepEqual(b.said(), []);

  await b.step("alice", C, "subscribe");
  b.said();
  await b.step("bob", U, "unsubscribed");
  assert.deepEqual(await b.roster("alice"), { [C]: "none" });
  assert.deepEqual(await b.x.store.subscriptionRequests("bob"), []);
  assert.deepEqual(b.said(), [`push ${U} ${C} none`, `unsubscribed ${C}→${U}`, `unavailable ${C}→${U}`]);
});

test("a request to an account that does not exist is refused on its behalf (§3.1.3)", { timeout: 10_000 }, async () => {
  const b = await bench();
  assert.equal(await b.step("alice", "nobody@localhost", "subscribe"), true);
  assert.deepEqual(await b.roster("alice"), { "nobody@localhost": "none" });
  assert.deepEqual(b.said(), [`push ${U} nobody@localhost none+ask`, `push ${U} nobody@localhost none`, `unsubscribed nobody@localhost→${U}`, `unavailable nobody@localhost→${U}`]);
});

test("a full roster refuses a new contact, and stored requests are capped", { timeout: 10_000 }, async () => {
  const b = await bench(1);
  assert.equal(await b.step("alice", C, "subscribe"), true);
  assert.equal(await b.step("alice", "carol@localhost", "subscribe"), false, "roster full");
  assert.deepEqual(Object.keys(await b.roster("alice")), [C]);
  // Bob already holds one request (the cap is maxRosterItems): the next requester's is not stored, but Alice's again replaces hers.
  await b.x.store.putRosterItem("bob", { jid: "x@localhost", name: "", subscription: "none", ask: false, groups: [] });
  await b.step("alice", C, "subscribe");
  assert.equal(await b.x.store.subscriptionRequestCount("bob"), 1);
});
