import { Element, parse } from "ltx";
import { validate } from "../../../../src/config/config.js";
import { SqliteStore } from "../../../../src/store/sqlite-store.js";
import { deriveCredentials } from "../../../../src/store/scram.js";
import { silentLogger } from "../../../../src/log/logger.js";
import { Hooks } from "../../../../src/xmpp/hooks.js";
import { Phase, type ClientSession } from "../../../../src/xmpp/client-session.js";
import type { XmppContext } from "../../../../src/xmpp/context.js";
import type { Envelope } from "../../../../src/envelope/envelope.js";
import { dispatchStanza } from "../../../../src/xmpp/dispatcher.js";

/** What a module sees of a session (client-session.ts), recording what it writes and what it hands to the core. */
export interface Fake extends ClientSession {
  written: Element[];
  submitted: Envelope[];
  holds: number;
  failed: unknown;
}

export function fakeSession(user: string, resource = "r"): Fake {
  const bare = `${user}@localhost`;
  const s = {
    domain: "localhost",
    user,
    bare,
    address: `${bare}/${resource}`,
    resource,
    phase: Phase.Bound,
    available: true,
    priority: 0,
    presence: null,
    rosterRequested: false,
    roster: null,
    blocked: null,
    blockedBy: null,
    blocklistRequested: false,
    wantsCopies: false,
    directed: new Set<string>(),
    written: [] as Element[],
    submitted: [] as Envelope[],
    holds: 0,
    failed: null as unknown,
    send(el: Element | string) {
      s.written.push(typeof el === "string" ? parse(el) : el);
    },
    submit(env: Envelope) {
      s.submitted.push(env);
    },
    presenceChanged() {},
    hold() {
      s.holds++;
    },
    release() {
      s.holds--;
    },
    fail(e: unknown) {
      s.failed = e;
    },
  };
  return s as unknown as Fake;
}

/** A context on an in-memory SQLite store with the given users, `xmpp` laid over the config. */
export async function fakeContext(users: string[], xmpp: Record<string, unknown> = {}): Promise<XmppContext> {
  const config = validate({ storage: { type: "sqlite", path: ":memory:" }, listeners: [], xmpp });
  const store = new SqliteStore(":memory:");
  const creds = await deriveCredentials("pw", 4096);
  for (const u of users) await store.putUser(u, creds);
  return { config, accounts: store, store: store.xmpp, profile: store.profile, pep: store.pep, hooks: new Hooks(), log: silentLogger() } as unknown as XmppContext;
}

/** The stanza as a client sends it, through the dispatcher (from stamped, to classified). */
export function fromClient(x: XmppContext, s: ClientSession, xml: string): void {
  dispatchStanza(x.hooks, s, parse(xml) as Element);
}

/** Lets held store calls and queued microtasks finish. */
export const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

/** The condition of a stanza error, with its app-specific element when there is one. */
export function errorOf(el: Element): string {
  const e = el.getChild("error");
  if (e === undefined) return "";
  return e.getChildElements().filter((c) => c.name !== "text").map((c) => c.name).join("+");
}
