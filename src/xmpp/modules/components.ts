import { Element } from "ltx";
import { Envelope, Flag, Kind } from "../../envelope/envelope.js";
import type { ComponentConfig } from "../../config/config.js";
import { codeForError, StanzaCondition } from "../errors.js";
import { Ev, type Hooks } from "../hooks.js";
import { bounce } from "../replies.js";
import type { Disco } from "./disco.js";
import { eligible } from "./carbons.js";
import type { StanzaIds } from "./stanza-id.js";

/** The domain part of a canonical address. */
export function domainOf(address: string): string {
  const slash = address.indexOf("/");
  const bare = slash < 0 ? address : address.slice(0, slash);
  return bare.slice(bare.indexOf("@") + 1);
}

/**
 * XEP-0114 §1: a component serves a whole domain. In the ring it is one
 * address, the bare domain, where its session binds (ComponentSession); a
 * stanza to any address in that domain travels to that address, and the
 * stanza itself keeps its real `to` (set canonical by the dispatcher), which
 * the component's session writes. Answers are not readdressed: they go back
 * by their ref, and the core accepts from the domain any address in it
 * (proxy-daemon complete()).
 */
export function routedEnvelope(from: string, routeTo: string, el: Element, ttlFor: (ns: string) => number, messageFlags = componentMessageFlags(el)): Envelope | StanzaCondition | null {
  const protocol = "xmpp";
  const kind = el.name;
  const type = el.attrs.type;
  if (kind === "message") return Envelope.message({ from, to: routeTo, protocol, payload: el, flags: messageFlags, id: el.attrs.id ?? "" });
  if (kind === "presence") return Envelope.presence({ from, to: routeTo, protocol, payload: el });
  if (kind !== "iq") return StanzaCondition.BadRequest;
  const id = el.attrs.id;
  if (type === "result" || type === "error") {
    if (id === undefined) return null;
    // An answer to the component's own request: matched by (requester, id) where it was delivered, routed by its ref.
    const answer = { from, to: el.attrs.to, protocol, responseFor: id, payload: el };
    return type === "result" ? Envelope.response(answer) : Envelope.error({ ...answer, code: codeForError(el) });
  }
  // RFC 6120 §8.2.3: get and set carry an id and exactly one child.
  const kids = el.getChildElements();
  if ((type !== "get" && type !== "set") || id === undefined || kids.length !== 1) return StanzaCondition.BadRequest;
  return Envelope.request({ from, to: routeTo, protocol, id, payload: el, ttl: ttlFor(kids[0].attrs.xmlns ?? "") });
}

/** RFC 6121 §8.5.2 for a component's domain: nobody online there: chat, normal and groupchat get an error; headline and error are dropped. */
export function componentMessageFlags(el: Element): number {
  const type = el.attrs.type;
  return type === "headline" || type === "error" ? 0 : Flag.Bounce;
}

/**
 * A presence a module sends on its own to an address in a component's domain
 * (the presence module's unavailable to those that got directed presence, at
 * logout): readdressed to the domain like what the dispatcher routes, the
 * stanza (a copy sharing the children) carrying its real `to`. A probe goes to
 * the component as a <presence type='probe'/> for it to answer (the owner
 * answers probes of users, not of components). Null: not for a component.
 */
export function toComponent(env: Envelope, domains: ReadonlySet<string>): Envelope | null {
  if (env.kind !== Kind.Presence || env.to === "") return null;
  const domain = domainOf(env.to);
  if (!domains.has(domain)) return null;
  const el = env.payload as Element | null;
  const out = el === null ? new Element("presence", { type: "probe" }) : new Element("presence", { ...el.attrs });
  if (el !== null) out.children = el.children;
  out.attrs.from = env.from;
  out.attrs.to = env.to;
  return Envelope.presence({ from: env.from, to: domain, protocol: env.protocol, payload: out, flags: env.flags & ~Flag.Probe });
}

/**
 * The user side of XEP-0114: stanzas from clients to a component's domain
 * (the dispatcher's "remote" event) go through the core like any other, IQs
 * with the pending-response treatment; the components are the server's
 * disco#items (XEP-0030 §4.1).
 */
export function componentsModule(hooks: Hooks, components: readonly ComponentConfig[], ttlFor: (ns: string) => number, disco: Disco, ids: StanzaIds | null = null): ReadonlySet<string> {
  const domains = new Set(components.map((c) => c.domain));
  for (const c of components) disco.serverItem(c.name === undefined ? { jid: c.domain } : { jid: c.domain, name: c.name });
  if (domains.size === 0) return domains;
  hooks.on(Ev.Service, ({ session: s, stanza, to }) => {
    const domain = domainOf(to);
    if (!domains.has(domain)) return false;
    // Directed presence, available or not, goes the presence module's way, which remembers it (RFC 6121 §4.6.3:
    // the component is told when the session goes unavailable); its submit readdresses it (toComponent).
    const type = stanza.attrs.type;
    if (stanza.name === "presence" && (type === undefined || type === "unavailable")) return hooks.fire(to.indexOf("/") > 0 ? Ev.PresenceFull : Ev.PresenceBare, { session: s, stanza, to });
    let flags: number | undefined;
    if (stanza.name === "message") {
      flags = componentMessageFlags(stanza);
      // XEP-0280 sent carbons and XEP-0313 (the sender's archive), as for a message to a user.
      if (eligible(stanza)) flags |= Flag.Copies;
      if (ids !== null && ids.mark(stanza, s.bare, to)) flags |= Flag.Archive;
    }
    const env = routedEnvelope(s.address, domain, stanza, ttlFor, flags);
    if (env === null) return true;
    if (env instanceof Envelope) s.submit(env);
    else bounce(s, stanza, env);
    return true;
  });
  return domains;
}
