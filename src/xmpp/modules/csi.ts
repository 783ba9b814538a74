import type { Element } from "ltx";
import { Kind, type Envelope } from "../../envelope/envelope.js";
import { Ev, type Hooks } from "../hooks.js";
import { NS } from "../ns.js";
import { isStanza } from "../outbound.js";
import { Phase, type ClientSession, type DeliveryGate } from "../client-session.js";

/**
 * XEP-0352 Client State Indication. While a client says it is inactive (a phone
 * with its screen off), presence updates to it are held, only the latest per
 * contact full JID, and written on <active/> or just before the first message
 * with a <body/> (§5: what the user will look at must not come before the
 * presence it depends on). Nothing else waits.
 */
export function csiModule(hooks: Hooks): void {
  // §3: offered with the features after authentication, like Prosody's mod_csi.
  hooks.on(Ev.StreamFeatures, ({ session, features }) => {
    if (session.phase === Phase.Authenticated) features.c("csi", { xmlns: NS.CSI });
  });

  hooks.on(Ev.Nonza, ({ session, stanza }) => {
    if (stanza.attrs.xmlns !== NS.CSI) return false;
    if (stanza.name === "inactive") {
      if (session.gate === null) session.gate = new HeldPresence(session);
      return true;
    }
    if (stanza.name === "active") {
      const held = session.gate;
      session.gate = null;
      if (held instanceof HeldPresence) held.flush();
      return true;
    }
    // §4 names no other element: like any unknown top-level element.
    return false;
  });
}

/** The gate of one inactive session. */
class HeldPresence implements DeliveryGate {
  /** Latest presence wire per sender full JID; a newer one moves its sender to the end. */
  private readonly held = new Map<string, string>();

  constructor(private readonly s: ClientSession) {}

  pass(env: Envelope, wire: string): boolean {
    if (env.kind === Kind.Presence) {
      if (!isUpdate(env)) return true;
      this.held.delete(env.from);
      this.held.set(env.from, wire);
      return false;
    }
    if (env.kind === Kind.Message && hasBody(env)) this.flush();
    return true;
  }

  flush(): void {
    if (this.held.size === 0) return;
    for (const wire of this.held.values()) this.s.send(wire);
    this.held.clear();
  }
}

/** Availability (no type, or unavailable); subscription requests and errors are not held (RFC 6121 §4.7.1). */
function isUpdate(env: Envelope): boolean {
  const el = isStanza(env) ? (env.payload as Element | null) : null;
  const type = el?.attrs.type;
  return type === undefined || type === "unavailable";
}

/** A chat message the user will read: another protocol's message is written with a body (outbound.ts). */
function hasBody(env: Envelope): boolean {
  if (!isStanza(env)) return true;
  const el = env.payload as Element | null;
  return el !== null && el.name === "message" && Boolean(el.getChild("body"));
}
