import type { Element } from "ltx";
import { bareOf, canonicalAddress, parseAddress } from "../address/address.js";
import { StanzaCondition, StreamCondition, StreamError } from "./errors.js";
import { Ev, type Events, type Hooks, type Target } from "./hooks.js";
import type { ClientSession } from "./client-session.js";
import { bounce } from "./replies.js";

const MESSAGE_EVENT = { host: Ev.MessageHost, self: Ev.MessageBare, bare: Ev.MessageBare, full: Ev.MessageFull } as const;
const PRESENCE_EVENT = { host: Ev.PresenceHost, self: Ev.PresenceBare, bare: Ev.PresenceBare, full: Ev.PresenceFull } as const;
const IQ_EVENT = { host: Ev.IqHost, self: Ev.IqSelf, bare: Ev.IqBare } as const;

/**
 * Prosody's stanza_router: stamps `from`, classifies `to` (RFC 6121 §8.5) and
 * fires the event the stanza's kind and target name. Unhandled iq requests get
 * <service-unavailable/> (RFC 6120 §8.4); nothing answers an error with an error.
 */
export function dispatchStanza(hooks: Hooks, s: ClientSession, el: Element): void {
  const kind = el.name;
  if (kind !== "message" && kind !== "presence" && kind !== "iq") throw new StreamError(StreamCondition.UnsupportedStanzaType, `<${kind}> is not a stanza`);
  // RFC 6120 §8.1.2.1: the server, not the client, says who sent it.
  el.attrs.from = s.address;

  let target: Target;
  let to = "";
  const raw = el.attrs.to;
  if (raw === undefined || raw === "") target = "self";
  else {
    const a = parseAddress(raw);
    if (a === null) return bounce(s, el, StanzaCondition.JidMalformed);
    to = canonicalAddress(raw, a);
    el.attrs.to = to;
    // A service of this server on its own address (upload.<domain>, XEP-0045 rooms) or a component attached
    // here (XEP-0114) handles it; no server-to-server: any other domain is unreachable (RFC 6120 §10.4.2).
    if (a.domain !== s.domain) {
      if (!hooks.fire(Ev.Service, { session: s, stanza: el, to, domain: a.domain })) bounce(s, el, StanzaCondition.RemoteServerNotFound);
      return;
    }
    target = a.local === "" ? "host" : a.resource !== "" ? "full" : bareOf(to) === s.bare ? "self" : "bare";
  }

  if (kind === "iq") return dispatchIq(hooks, s, el, target, to);
  if (kind === "message") {
    // RFC 6120 §10.3.1: no `to` means the account itself.
    if (target === "self" && to === "") el.attrs.to = to = s.bare;
    return void hooks.fire(MESSAGE_EVENT[target], { session: s, stanza: el, to });
  }
  if (to === "") return void hooks.fire(Ev.PresenceBroadcast, { session: s, stanza: el, to });
  hooks.fire(PRESENCE_EVENT[target], { session: s, stanza: el, to });
}

function dispatchIq(hooks: Hooks, s: ClientSession, el: Element, target: Target, to: string): void {
  const type = el.attrs.type;
  if (type === "result" || type === "error") {
    if (el.attrs.id !== undefined) hooks.fire(Ev.IqAnswer, { session: s, stanza: el, to });
    return;
  }
  // RFC 6120 §8.2.3: get and set carry an id and exactly one child.
  if ((type !== "get" && type !== "set") || el.attrs.id === undefined) return bounce(s, el, StanzaCondition.BadRequest);
  const kids = el.getChildElements();
  if (kids.length !== 1) return bounce(s, el, StanzaCondition.BadRequest);
  if (target === "full") {
    if (!hooks.fire(Ev.IqFull, { session: s, stanza: el, to })) bounce(s, el, StanzaCondition.ServiceUnavailable);
    return;
  }
  const child = kids[0];
  const e: Events["iq/host"] = { session: s, stanza: el, to, type, child, ns: child.attrs.xmlns ?? "" };
  if (!hooks.fire(IQ_EVENT[target], e)) bounce(s, el, StanzaCondition.ServiceUnavailable);
}
