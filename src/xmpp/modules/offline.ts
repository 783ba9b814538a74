import { Element, parse } from "ltx";
import { Envelope, ErrorCode } from "../../envelope/envelope.js";
import type { OfflineOutcome } from "../../store/offline-writer.js";
import type { OfflineSink } from "../../session/core.js";
import { NS } from "../ns.js";
import { Ev, type Hooks } from "../hooks.js";
import type { XmppContext } from "../context.js";

/**
 * Offline storage (RFC 6121 §8.5.2.1.1, XEP-0160): the core hands over a chat
 * or normal message nobody online could take; it is queued for the store with
 * a XEP-0203 delay stamp (OfflineWriter: written in batches after this turn)
 * and delivered at the user's next initial presence. What the store then
 * refuses goes back to the sender through `refuse`: the queue full
 * (<resource-constraint/>), no such account (<service-unavailable/>), the
 * store down (<internal-server-error/>).
 */
export function offlineSink(x: XmppContext): OfflineSink {
  const suffix = `@${x.config.domain}`;
  return (env: Envelope, refuse: (code: string) => void) => {
    const bare = env.to.indexOf("/") < 0 ? env.to : env.to.slice(0, env.to.indexOf("/"));
    if (!bare.endsWith(suffix)) return ErrorCode.Unavailable;
    const user = bare.slice(0, bare.length - suffix.length);
    const stored = toStored(env, x.config.domain);
    if (stored === null) return null;
    const queued = x.offline.push(user, stored, (o) => {
      if (o === "stored") x.metrics.offlineStored++;
      else refuse(refusal(o));
    });
    return queued ? null : ErrorCode.NotStored;
  };
}

function refusal(o: Exclude<OfflineOutcome, "stored">): string {
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
  msg.c("delay", { xmlns: NS.DELAY, from: domain, stamp: new Date().toISOString() });
  return msg.toString();
}

/**
 * A message written to a session that never acknowledged it (XEP-0198) and
 * ended: chat and normal ones are queued for offline storage with a delay stamp
 * (unless they carry one already); the rest is dropped (RFC 6121 §8.5.2.1.1,
 * §8.5.3.2.1). So is a carbon copy (XEP-0280): its original reached, or is
 * stored for, the resource it went to, and the next session may not have
 * enabled carbons (§2: a client that did not ask gets no carbons). True when
 * queued; what the store then refuses (or a full queue) is bounced to its sender.
 */
export function storeUnacked(x: XmppContext, user: string, el: Element): boolean {
  const type = el.attrs.type ?? "normal";
  if (el.name !== "message" || (type !== "chat" && type !== "normal")) return false;
  if (isCarbon(el)) return false;
  if (el.getChild("delay", NS.DELAY) === undefined) el.c("delay", { xmlns: NS.DELAY, from: x.config.domain, stamp: new Date().toISOString() });
  const bounce = (code: string) => {
    const from = el.attrs.from;
    if (typeof from !== "string" || from === "" || from === x.config.domain) return;
    x.core.bounce(Envelope.message({ from, to: el.attrs.to ?? `${user}@${x.config.domain}`, protocol: "xmpp", payload: el, id: el.attrs.id ?? "" }), code);
  };
  const queued = x.offline.push(user, el.toString(), (o) => {
    if (o === "stored") x.metrics.offlineStored++;
    else bounce(refusal(o));
  });
  if (!queued) bounce(ErrorCode.NotStored);
  return true;
}

/** A copy written by outbound.ts: <received/> or <sent/> in the carbons namespace, a child of the message. */
function isCarbon(el: Element): boolean {
  for (const c of el.children) {
    if (typeof c !== "string" && c.attrs.xmlns === NS.CARBONS && (c.name === "received" || c.name === "sent")) return true;
  }
  return false;
}

export function offlineModule(hooks: Hooks, x: XmppContext): void {
  hooks.on(Ev.InitialPresence, ({ session: s }) => {
    // Input waits while the messages are read: they come before whatever the client sends next.
    s.hold();
    void (async () => {
      try {
        // Messages this worker queued for the user before this login are written first, so that this take finds them.
        await x.offline.flushed();
        const texts = await x.store.takeOffline(s.user);
        for (const text of texts) {
          try {
            s.send(parse(text));
          } catch {
            x.log.warn("dropped an unreadable offline message", { user: s.user });
          }
        }
      } catch (e) {
        // They stay stored: the next login takes them.
        x.log.warn("offline messages not read", { user: s.user, error: (e as Error).message });
      } finally {
        s.release();
      }
    })();
  });
}
