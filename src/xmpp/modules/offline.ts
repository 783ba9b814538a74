import { Element, parse } from "ltx";
import { Envelope, ErrorCode, Flag } from "../../envelope/envelope.js";
import type { OfflineOutcome } from "../../store/offline-writer.js";
import type { OfflineSink } from "../../session/core.js";
import { messageKey } from "../../session/recent-messages.js";
import { NS } from "../ns.js";
import { Ev, type Hooks } from "../hooks.js";
import type { XmppContext } from "../context.js";
import { Phase, type ClientSession } from "../client-session.js";
import { blocks } from "./blocklist.js";

/**
 * Offline storage (RFC 6121 §8.5.2.1.1, XEP-0160): the core hands over a chat
 * or normal message nobody online could take; it is queued for the store with
 * a XEP-0203 delay stamp (OfflineWriter: written in batches after this turn)
 * and delivered at the user's next initial presence. `settle` says when it is
 * written (null), or what the store refused, which goes back to the sender:
 * the queue full (<resource-constraint/>), no such account
 * (<service-unavailable/>), the store down (<internal-server-error/>).
 */
export function offlineSink(x: XmppContext): OfflineSink {
  const suffix = `@${x.config.domain}`;
  return (env: Envelope, settle: (code: string | null) => void) => {
    const bare = env.to.indexOf("/") < 0 ? env.to : env.to.slice(0, env.to.indexOf("/"));
    if (!bare.endsWith(suffix)) return ErrorCode.Unavailable;
    const user = bare.slice(0, bare.length - suffix.length);
    const stored = toStored(env, x.config.domain);
    if (stored === null) {
      settle(null);
      return null;
    }
    // Sender and id: a copy its sender's client sends again after resuming is not stored twice (docs/architecture.md, "Resent").
    const key = env.id === "" ? "" : messageKey(env.from, env.id);
    const queued = x.offline.push(
      user,
      stored,
      (o) => {
        if (o === "stored") {
          x.metrics.offlineStored++;
          settle(null);
        } else if (o === "duplicate") {
          x.metrics.sm.storedResentDropped++;
          settle(null);
        } else settle(refusal(o));
      },
      key,
      (env.flags & Flag.Resent) !== 0,
    );
    return queued ? null : ErrorCode.NotStored;
  };
}

function refusal(o: Exclude<OfflineOutcome, "stored" | "duplicate">): string {
  return o === "full" ? ErrorCode.QuotaExceeded : o === "unknown" ? ErrorCode.Unavailable : ErrorCode.NotStored;
}

function toStored(env: Envelope, domain: string): string | null {
  let msg: Element;
  if (env.payload instanceof Element) {
    msg = new Element("message", env.payload.attrs);
    for (const c of env.payload.children) msg.children.push(c);
  } else if (env.payload instanceof Uint8Array) {
    msg = new Element("message", { type: "normal" });
    msg.c("body").t(Buffer.from(env.payload).toString("utf8"));
  } else return null;
  msg.attrs.from = env.from;
  msg.attrs.to = env.to;
  // A message written once already (XEP-0198, unacknowledged) keeps the stamp of its first delivery.
  if (msg.getChild("delay", NS.DELAY) === undefined) msg.c("delay", { xmlns: NS.DELAY, from: domain, stamp: new Date().toISOString() });
  return msg.toString();
}

/**
 * A message written to a session that never acknowledged it (XEP-0198) and
 * ended: chat and normal ones go back through the core as if sent to that full
 * JID now it is gone (RFC 6121 §8.5.3.2.1): to another available resource of
 * the user, or a new session at the same full JID, else to offline storage,
 * else back to the sender with an error. Their original time rides along as
 * a delay stamp. The rest is dropped (§8.5.2.1.1, §8.5.3.2.1), and so is a
 * carbon copy (XEP-0280): its original reached, or is stored for, the resource
 * it went to, and another session may not have enabled carbons (§2: a client
 * that did not ask gets no carbons). Null: nothing to send again.
 */
export function unackedAgain(domain: string, address: string, el: Element, stamp: string, receipt = ""): Envelope | null {
  const type = el.attrs.type ?? "normal";
  if (el.name !== "message" || (type !== "chat" && type !== "normal")) return null;
  if (isCarbon(el)) return null;
  if (el.getChild("delay", NS.DELAY) === undefined) el.c("delay", { xmlns: NS.DELAY, from: domain, stamp });
  return Envelope.message({ from: el.attrs.from ?? domain, to: address, protocol: "xmpp", payload: el, flags: Flag.BareFallback | Flag.Offline, receipt });
}

/** A copy written by outbound.ts: <received/> or <sent/> in the carbons namespace, a child of the message. */
function isCarbon(el: Element): boolean {
  for (const c of el.children) {
    if (typeof c !== "string" && c.attrs.xmlns === NS.CARBONS && (c.name === "received" || c.name === "sent")) return true;
  }
  return false;
}

/** Not this worker's live session any more: ended, or moved to another worker (its core session says where). */
function gone(s: ClientSession): boolean {
  return s.phase === Phase.Closing || s.coreSession.closed || s.coreSession.movedTo !== null;
}

/** Stored messages taken for `s`, which went meanwhile: routed to its full JID with the bare-JID fallback, as unackedAgain does. */
function again(x: XmppContext, s: ClientSession, texts: string[]): void {
  const stamp = new Date().toISOString();
  for (const text of texts) {
    try {
      const env = unackedAgain(x.config.domain, s.address, parse(text) as Element, stamp);
      if (env !== null) x.core.submit(s.coreSession, env);
    } catch {
      x.log.warn("dropped an unreadable offline message", { user: s.user });
    }
  }
  if (x.debug && texts.length > 0) x.log.debug("offline messages taken for a session that went: routed again", { address: s.address, count: texts.length });
}

export function offlineModule(hooks: Hooks, x: XmppContext): void {
  hooks.on(Ev.InitialPresence, ({ session: s }) => takeStored(x, s));
}

/**
 * Writes the user's stored messages to `s` (at its initial presence, or when it
 * was rebuilt after its worker died: what came meanwhile was stored). Input
 * waits while they are read: they come before whatever the client sends next.
 */
export function takeStored(x: XmppContext, s: ClientSession): void {
  s.hold();
  void (async () => {
    try {
      // Messages queued for the user before this login are written first, so that this take finds them: this
      // worker's, and its owner's (which may be another worker: the barrier follows the presence to it).
      await Promise.all([x.offline.flushed(), new Promise<void>((r) => x.core.barrier(s.coreSession, r))]);
      // Ended or moved to another worker (a resumption claimed it) while the barrier waited: they stay stored, for the
      // session where it is now (a resumption there takes them) or the user's next login.
      if (gone(s)) {
        if (x.debug) x.log.debug("offline messages left stored: the session went", { address: s.address });
        return;
      }
      const texts = await x.store.takeOffline(s.user);
      // And if it went while the store answered, they go after it through the core, as a session's unacknowledged
      // messages do when it ends (to its new place, another resource, or offline storage again): written here, they were lost.
      if (gone(s)) return void again(x, s, texts);
      const ids: string[] | null = x.debug && texts.length > 0 ? [] : null;
      for (const text of texts) {
        try {
          const el = parse(text);
          // XEP-0191: stored while the user was away, from someone the user has blocked: dropped.
          if (s.blocked !== null && blocks(s.blocked, el.attrs.from ?? "", s.bare)) continue;
          // Given to this session already (a rebuilt one counts its keeper's copies): its sender's client, resumed
          // from a count that stayed below it, sent it again while this session had no place (docs/architecture.md, "Resent").
          const from = el.attrs.from ?? "";
          const id = el.attrs.id ?? "";
          const recent = s.coreSession.recent;
          if (recent !== null && recent.has(from, id)) {
            x.metrics.sm.storedResentDropped++;
            continue;
          }
          // Given now: a copy its sender's resumed client sends again later is dropped here as one the core delivered.
          if (id !== "" && s.coreSession.dropsResent) s.coreSession.recentMessages().note(from, id);
          s.send(el);
          ids?.push(id);
        } catch {
          x.log.warn("dropped an unreadable offline message", { user: s.user });
        }
      }
      if (ids !== null) x.log.debug("offline messages taken", { address: s.address, ids });
    } catch (e) {
      // They stay stored: the next login takes them.
      x.log.warn("offline messages not read", { user: s.user, error: (e as Error).message });
    } finally {
      s.release();
    }
  })();
}
