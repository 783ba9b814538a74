import { Element, parse } from "ltx";
import { StanzaCondition } from "../errors.js";
import { NS } from "../ns.js";
import { bounce, iqResultFor } from "../replies.js";
import type { Hooks, IqEvent } from "../hooks.js";
import type { XmppContext } from "../context.js";
import { held } from "./roster-items.js";
import { blocks } from "./blocklist.js";
import type { Disco } from "./disco.js";
import { vcardSet } from "./avatar.js";

/**
 * XEP-0054 vcard-temp, kept by the server: the user sets and gets their own
 * vCard (§3.2, §3.1), and the server answers for any account asked at its
 * bare JID (§3.3). Stored as the client wrote it, up to xmpp.maxVcardBytes.
 * Its PHOTO is kept in step with the XEP-0084 PEP avatar (XEP-0398, avatar.ts).
 */
export function vcardModule(hooks: Hooks, x: XmppContext, disco: Disco): void {
  hooks.iq("self", NS.VCARD, (e) => (e.type === "get" ? getOwn(e, x) : setOwn(e, x)));
  hooks.iq("bare", NS.VCARD, (e) => getOther(e, x));
  disco.serverFeature(NS.VCARD);
}

function isVcard(el: Element): boolean {
  return el.name === "vCard" && el.attrs.xmlns === NS.VCARD;
}

/** The stored text as an element; a damaged row counts as none. */
function readVcard(text: string | null): Element | null {
  if (text === null) return null;
  try {
    const el = parse(text);
    return el instanceof Element && isVcard(el) ? el : null;
  } catch {
    return null;
  }
}

/** §3.1: one's own vCard; none yet: an empty one (the alternative the XEP allows to <item-not-found/>). */
function getOwn({ session: s, stanza, child }: IqEvent, x: XmppContext): boolean {
  if (!isVcard(child)) return bounce(s, stanza, StanzaCondition.BadRequest), true;
  held(x, s, x.profile.vcard(s.user), (text) => iqResultFor(s, stanza, readVcard(text) ?? new Element("vCard", { xmlns: NS.VCARD })), () =>
    bounce(s, stanza, StanzaCondition.InternalServerError),
  );
  return true;
}

/** §3.2: replaces the vCard; an empty <vCard/> removes it. */
function setOwn({ session: s, stanza, child }: IqEvent, x: XmppContext): boolean {
  if (!isVcard(child)) return bounce(s, stanza, StanzaCondition.BadRequest), true;
  const text = child.toString();
  const max = x.config.xmpp.maxVcardBytes;
  if (Buffer.byteLength(text) > max) return bounce(s, stanza, StanzaCondition.NotAcceptable, `vCard larger than ${max} bytes`), true;
  const empty = child.getChildElements().length === 0;
  held(x, s, x.profile.setVcard(s.user, empty ? null : text), () => {
    iqResultFor(s, stanza);
    // XEP-0398 §2: the vCard's photo becomes the PEP avatar.
    vcardSet(x, s, child);
  }, () => bounce(s, stanza, StanzaCondition.InternalServerError));
  return true;
}

/**
 * §3.3: another account's vCard, answered by the server on that user's behalf.
 * None, no such account, or an account that blocked the asker (XEP-0191 §3.3):
 * the same <item-not-found/> or <service-unavailable/>, nothing more told.
 */
function getOther({ session: s, stanza, child, to, type }: IqEvent, x: XmppContext): boolean {
  if (type !== "get") return bounce(s, stanza, StanzaCondition.Forbidden, "only the owner sets a vCard"), true;
  if (!isVcard(child)) return bounce(s, stanza, StanzaCondition.BadRequest), true;
  const user = to.slice(0, to.indexOf("@"));
  const work = Promise.all([x.profile.blocklist(user), x.profile.vcard(user)]);
  held(x, s, work, ([list, text]) => {
    if (blocks(new Set(list), s.address, to)) return bounce(s, stanza, StanzaCondition.ServiceUnavailable);
    const vcard = readVcard(text);
    if (vcard === null) return bounce(s, stanza, StanzaCondition.ItemNotFound);
    iqResultFor(s, stanza, vcard);
  }, () => bounce(s, stanza, StanzaCondition.InternalServerError));
  return true;
}
