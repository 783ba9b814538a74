import { Element } from "ltx";
import { type Envelope, ErrorCode, Flag, Kind } from "../envelope/envelope.js";
import { NS } from "./ns.js";
import { conditionForCode, errorElement, stanzaError } from "./errors.js";
import { parseOne, serialize, serializeWith, stampText } from "./stanza.js";
import { pushWritten } from "./modules/blocklist.js";

/** What serializing needs to know of the session it writes for. */
export interface Recipient {
  readonly address: string;
  readonly bare: string;
  readonly rosterRequested: boolean;
  readonly blocklistRequested: boolean;
  readonly wantsCopies: boolean;
}

/** A stanza made by XMPP (or nothing), as opposed to another protocol's payload. */
export function isStanza(env: Envelope): boolean {
  return env.protocol === "xmpp" && (env.wireText !== null || env.payload instanceof Element || env.payload === null);
}

/**
 * What an envelope from the core looks like on this session's stream, or null
 * when it is not for the client. The one place core error codes become XMPP
 * stanza errors on the way out. It only writes: whatever needs the core was
 * decided before (XmppSession.deliver).
 */
export function toWire(s: Recipient, env: Envelope): string | null {
  // A message or presence that came over the bus unread, or a room's serialized once (Envelope.wireText), is
  // written as that text, stamped, unless it is a copy (wrapped) or may hold a <private/> to remove (XEP-0280
  // §9): those are parsed below.
  if (env.protocol === "xmpp" && ((env.kind === Kind.Message && (env.flags & (Flag.Copy | Flag.SentCopy)) === 0) || env.kind === Kind.Presence)) {
    const text = env.wireText;
    if (text !== null && (env.kind === Kind.Presence || !text.includes(NS.CARBONS))) {
      const out = stampText(text, env.kind === Kind.Presence ? "presence" : "message", env.from, env.to);
      if (out !== null) return out;
    }
  }
  if (isStanza(env)) return fromXmpp(s, env, env.payload as Element | null);
  return fromOther(s, env);
}

function fromXmpp(s: Recipient, env: Envelope, el: Element | null): string | null {
  switch (env.kind) {
    case Kind.Message:
      if (el === null) return null;
      // A roster push travels to the bare JID; only interested resources take it (RFC 6121 §2.1.6).
      // So does a block list push (XEP-0191 §3.3): to resources that asked for the list.
      if (el.name === "iq") return pushWritten(s, el) ? serializeWith(el, { to: s.address }) : null;
      // A copy the core made for a session that wants copies (modules/carbons.ts); not after a <disable/> that crossed it.
      if ((env.flags & (Flag.Copy | Flag.SentCopy)) !== 0) return s.wantsCopies ? carbon(s, env, el) : null;
      // XEP-0280 §9: <private/> is removed before delivery. Most messages have one child: no scan.
      return serializeWith((el.children.length > 1 && withoutPrivate(el)) || el, { from: env.from, to: env.to });
    case Kind.Presence:
      return el === null ? null : serializeWith(el, { from: env.from, to: env.to });
    case Kind.Request:
      // The requester's id passes through: the answer is matched by (requester, id) on this side.
      return el === null ? null : serializeWith(el, { from: env.from, to: env.to });
    case Kind.Response:
      return el === null ? iqResult(s, env, null) : serializeWith(el, { id: env.responseFor, from: env.from, to: s.address });
    case Kind.Error:
      if (el !== null && el.name === "iq") return serializeWith(el, { id: env.responseFor, from: env.from, to: s.address });
      if (el !== null && el.name === "message") {
        const reply = stanzaError(el, conditionForCode(env.code), env.from, s.address, errorText(env.code));
        if (env.responseFor) reply.attrs.id = env.responseFor;
        else delete reply.attrs.id;
        return reply.toString();
      }
      return iqError(s, env);
    default:
      return null;
  }
}

/** Envelopes made by another protocol (relay: the payload is a Buffer). Requests never get here. */
function fromOther(s: Recipient, env: Envelope): string | null {
  const text = env.payload == null ? "" : env.payload instanceof Uint8Array ? Buffer.from(env.payload).toString("utf8") : String(env.payload);
  switch (env.kind) {
    case Kind.Message: {
      const m = new Element("message", { type: "normal", from: env.from, to: s.address });
      m.c("body").t(text);
      return m.toString();
    }
    case Kind.Response:
      return iqResult(s, env, parseOne(text));
    case Kind.Error:
      return iqError(s, env);
    default:
      return null;
  }
}

function iqResult(s: Recipient, env: Envelope, child: Element | null): string {
  const iq = new Element("iq", { type: "result", id: env.responseFor, from: env.from, to: s.address });
  if (child !== null) iq.cnode(child);
  return iq.toString();
}

function iqError(s: Recipient, env: Envelope): string {
  const iq = new Element("iq", { type: "error", id: env.responseFor, from: env.from, to: s.address });
  iq.cnode(errorElement(conditionForCode(env.code), errorText(env.code)));
  return iq.toString();
}

function errorText(code: string): string {
  switch (code) {
    case ErrorCode.Timeout:
      return "no answer in time";
    case ErrorCode.Unavailable:
      return "recipient unavailable";
    case ErrorCode.RateLimited:
      return "too many requests waiting for answers";
    case ErrorCode.QuotaExceeded:
      return "the recipient's offline message queue is full";
    case ErrorCode.NotStored:
      return "the recipient is offline and the message could not be stored";
    default:
      return code;
  }
}

/**
 * XEP-0280 §7, §8: the original as XEP-0297 forwarded it (in jabber:client, as
 * it travelled), wrapped in <received/> or <sent/>, from the user's bare JID to
 * this resource (§11: clients ignore carbons from anyone else). The original's
 * content is shared, not copied.
 */
function carbon(s: Recipient, env: Envelope, el: Element): string {
  // To a component (XEP-0114) the envelope names its domain; the stanza keeps the address written to (modules/components.ts).
  const to = env.to.indexOf("@") < 0 && el.attrs.to !== undefined ? el.attrs.to : env.to;
  const inner = new Element("message", { ...el.attrs, xmlns: NS.CLIENT, from: env.from, to });
  inner.children = el.children;
  const attrs: Record<string, string> = { from: s.bare, to: s.address };
  // §7: the wrapper keeps the type.
  if (el.attrs.type !== undefined) attrs.type = el.attrs.type;
  const outer = new Element("message", attrs);
  outer.c((env.flags & Flag.SentCopy) !== 0 ? "sent" : "received", { xmlns: NS.CARBONS }).c("forwarded", { xmlns: NS.FORWARD }).cnode(inner);
  return serialize(outer);
}

/** XEP-0280 §9: <private/> is for the server; the recipient gets the message without it. Null when there is none. */
export function withoutPrivate(el: Element): Element | null {
  const kids = el.children;
  let at = -1;
  for (let i = 0; i < kids.length; i++) {
    const c = kids[i];
    if (typeof c !== "string" && c.name === "private" && c.attrs.xmlns === NS.CARBONS) {
      at = i;
      break;
    }
  }
  if (at < 0) return null;
  const out = new Element(el.name, el.attrs);
  out.children = kids.filter((c) => typeof c === "string" || c.name !== "private" || c.attrs.xmlns !== NS.CARBONS);
  return out;
}
