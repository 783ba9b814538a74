import type { Element } from "ltx";
import type { RosterItem, Subscription } from "../../store/xmpp-store.js";
import type { XmppContext } from "../context.js";
import type { ClientSession } from "../client-session.js";
import { NS } from "../ns.js";
import { StreamCondition, StreamError } from "../errors.js";

/**
 * The session's roster, kept on the session for presence routing (RFC 6121
 * §4.2.2, §4.3.2, §4.5.2), so that a presence broadcast costs no store read:
 * read once at bind, and kept current by the roster pushes (§2.1.6) that every
 * bound session of the user receives, on whichever worker, whenever an item
 * changes. A session that arrived from another worker (XEP-0198) reads it on
 * first use.
 */

/** Shared by every session whose roster is empty (most, in a load test); replaced by a Map at its first push. */
const EMPTY: Map<string, RosterItem> = new Map();

/** A read in progress: pushes that arrive meanwhile are newer than what it may return, and go on top; callers wait. */
interface Loading {
  pushes: Element[];
  waiting: ((roster: ReadonlyMap<string, RosterItem>) => void)[];
}
const loading = new WeakMap<ClientSession, Loading>();

/**
 * Runs `fn` with the session's roster: at once when it is loaded, else once it
 * is read, with the session's input held meanwhile so that what the client
 * sends next is handled after. A store that cannot be read ends the stream
 * (internal-server-error): presence to the wrong people is worse than a reconnect.
 */
export function withRoster(x: XmppContext, s: ClientSession, fn: (roster: ReadonlyMap<string, RosterItem>) => void): void {
  if (s.roster !== null) return fn(s.roster);
  const pending = loading.get(s);
  if (pending !== undefined) {
    pending.waiting.push(fn);
    return;
  }
  const l: Loading = { pushes: [], waiting: [fn] };
  loading.set(s, l);
  s.hold();
  x.store.roster(s.user).then(
    (items) => {
      loading.delete(s);
      s.roster = items.length === 0 ? EMPTY : new Map(items.map((i) => [i.jid, i]));
      for (const p of l.pushes) apply(s, p);
      for (const f of l.waiting) {
        try {
          f(s.roster);
        } catch (e) {
          s.fail(e);
        }
      }
      s.release();
    },
    (e) => {
      loading.delete(s);
      x.log.warn("roster not read", { user: s.user, error: (e as Error).message });
      s.fail(new StreamError(StreamCondition.InternalServerError, "roster unavailable"));
      s.release();
    },
  );
}

/** At bind: read the roster before the client's next stanza (its initial presence) is handled. */
export function loadRoster(x: XmppContext, s: ClientSession): void {
  withRoster(x, s, () => {});
}

/** A roster push (an iq set from the server, XmppSession.deliver) reached this session: the cached roster follows it. */
export function rosterPushed(s: ClientSession, iq: Element): void {
  const item = iq.getChild("query", NS.ROSTER)?.getChild("item");
  if (item === undefined || typeof item.attrs.jid !== "string") return;
  const l = loading.get(s);
  if (l !== undefined) l.pushes.push(item);
  else if (s.roster !== null) apply(s, item);
}

function apply(s: ClientSession, item: Element): void {
  if (s.roster === EMPTY) s.roster = new Map();
  const roster = s.roster!;
  const jid = item.attrs.jid as string;
  if (item.attrs.subscription === "remove") return void roster.delete(jid);
  roster.set(jid, {
    jid,
    name: item.attrs.name ?? "",
    subscription: (item.attrs.subscription ?? "none") as Subscription,
    ask: item.attrs.ask === "subscribe",
    groups: item.getChildren("group").map((g) => g.getText()),
  });
}
