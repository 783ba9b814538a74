import { Element, escapeXMLText } from "ltx";
import { ErrorCode } from "../envelope/envelope.js";
import { NS } from "./ns.js";

/** RFC 6120 §4.9.3: the stream error conditions this server sends. */
export const StreamCondition = {
  BadFormat: "bad-format",
  Conflict: "conflict",
  ConnectionTimeout: "connection-timeout",
  HostUnknown: "host-unknown",
  InternalServerError: "internal-server-error",
  InvalidFrom: "invalid-from",
  InvalidNamespace: "invalid-namespace",
  NotAuthorized: "not-authorized",
  NotWellFormed: "not-well-formed",
  PolicyViolation: "policy-violation",
  ResourceConstraint: "resource-constraint",
  RestrictedXml: "restricted-xml",
  SystemShutdown: "system-shutdown",
  UndefinedCondition: "undefined-condition",
  UnsupportedStanzaType: "unsupported-stanza-type",
  UnsupportedVersion: "unsupported-version",
  UnsupportedEncoding: "unsupported-encoding",
} as const;
export type StreamCondition = (typeof StreamCondition)[keyof typeof StreamCondition];

/** An error that carries its XMPP condition (xmpp.js's XMPPError): stream and SASL errors are kinds of it. */
export class XmppError<C extends string = string> extends Error {
  constructor(
    readonly condition: C,
    text = "",
  ) {
    super(text || condition);
  }
}

/** Anything that ends the stream: thrown by the codec or a handler, written in one place (XmppSession.streamError). */
export class StreamError extends XmppError<StreamCondition> {
  /** An application-specific condition element (RFC 6120 §4.9.4), e.g. XEP-0198's <handled-count-too-high/>. */
  appCondition = "";

  /** `declare`: the element stands alone (RFC 7395 §3.6), so it declares its own prefix. */
  toXml(declare = false): string {
    const text = this.message && this.message !== this.condition ? `<text xmlns='${NS.STREAM_ERRORS}'>${escapeXMLText(this.message)}</text>` : "";
    return `<stream:error${declare ? ` xmlns:stream='${NS.STREAM}'` : ""}><${this.condition} xmlns='${NS.STREAM_ERRORS}'/>${text}${this.appCondition}</stream:error>`;
  }
}

/** RFC 6120 §8.3.2 error types. */
export type StanzaErrorType = "auth" | "cancel" | "continue" | "modify" | "wait";

/** RFC 6120 §8.3.3 conditions with the type each is normally sent with. */
export const StanzaCondition = {
  BadRequest: ["bad-request", "modify"],
  Conflict: ["conflict", "cancel"],
  FeatureNotImplemented: ["feature-not-implemented", "cancel"],
  Forbidden: ["forbidden", "auth"],
  InternalServerError: ["internal-server-error", "wait"],
  ItemNotFound: ["item-not-found", "cancel"],
  JidMalformed: ["jid-malformed", "modify"],
  NotAcceptable: ["not-acceptable", "modify"],
  NotAllowed: ["not-allowed", "cancel"],
  NotAuthorized: ["not-authorized", "auth"],
  PolicyViolation: ["policy-violation", "modify"],
  RemoteServerNotFound: ["remote-server-not-found", "cancel"],
  RemoteServerTimeout: ["remote-server-timeout", "wait"],
  ResourceConstraint: ["resource-constraint", "wait"],
  ServiceUnavailable: ["service-unavailable", "cancel"],
  UndefinedCondition: ["undefined-condition", "cancel"],
} as const satisfies Record<string, readonly [string, StanzaErrorType]>;
export type StanzaCondition = (typeof StanzaCondition)[keyof typeof StanzaCondition];

/** The core's error codes (and codes sent by relay peers) as XMPP stanza conditions. */
export function conditionForCode(code: string): StanzaCondition {
  switch (code) {
    case ErrorCode.Timeout:
      return StanzaCondition.RemoteServerTimeout;
    case ErrorCode.Unavailable:
      return StanzaCondition.ServiceUnavailable;
    case ErrorCode.RateLimited:
    case ErrorCode.QuotaExceeded:
      return StanzaCondition.ResourceConstraint;
    case ErrorCode.BadRequest:
    case ErrorCode.BadFrame:
      return StanzaCondition.BadRequest;
    case ErrorCode.TooLarge:
      return StanzaCondition.PolicyViolation;
    case ErrorCode.NotAuthorized:
      return StanzaCondition.NotAuthorized;
    case ErrorCode.Conflict:
      return StanzaCondition.Conflict;
    case ErrorCode.Internal:
    case ErrorCode.NotStored:
      return StanzaCondition.InternalServerError;
    default:
      return StanzaCondition.UndefinedCondition;
  }
}

/** An XMPP error stanza's condition as a core error code, for the other protocols it is answered to. */
export function codeForError(stanza: Element): string {
  const cond = stanza.getChild("error")?.getChildElements().find((c) => c.attrs.xmlns === NS.STANZA_ERRORS)?.name;
  switch (cond) {
    case "remote-server-timeout":
      return ErrorCode.Timeout;
    case "service-unavailable":
    case "recipient-unavailable":
    case "item-not-found":
      return ErrorCode.Unavailable;
    case "bad-request":
    case "jid-malformed":
      return ErrorCode.BadRequest;
    case "not-authorized":
    case "forbidden":
      return ErrorCode.NotAuthorized;
    case "resource-constraint":
      return ErrorCode.RateLimited;
    case "conflict":
      return ErrorCode.Conflict;
    case undefined:
      return ErrorCode.Internal;
    default:
      return cond;
  }
}

export function errorElement(cond: StanzaCondition, text = ""): Element {
  const e = new Element("error", { type: cond[1] });
  e.c(cond[0], { xmlns: NS.STANZA_ERRORS });
  if (text) e.c("text", { xmlns: NS.STANZA_ERRORS }).t(text);
  return e;
}

/**
 * RFC 6120 §8.3.1: the error reply to a stanza, addressed back to its sender.
 * `from`/`to` are given because the server stamps them, never the client.
 */
export function stanzaError(stanza: Element, cond: StanzaCondition, from: string, to: string, text = ""): Element {
  const attrs: Record<string, string> = { type: "error" };
  if (stanza.attrs.id !== undefined) attrs.id = stanza.attrs.id;
  if (from) attrs.from = from;
  if (to) attrs.to = to;
  const reply = new Element(stanza.name, attrs);
  // An iq error carries nothing else; a message error may echo the body so the sender knows which one failed.
  if (stanza.name === "message") {
    const body = stanza.getChild("body");
    if (body !== undefined) reply.cnode(cloneShallow(body));
  }
  reply.cnode(errorElement(cond, text));
  return reply;
}

function cloneShallow(el: Element): Element {
  const c = new Element(el.name, el.attrs);
  for (const child of el.children) c.children.push(child);
  return c;
}
