import { Element } from "ltx";
import { type StanzaCondition, stanzaError } from "./errors.js";
import type { ClientSession } from "./client-session.js";

/** The error reply to the sender, from whom it was addressed to (or the server). Errors are never answered. */
export function bounce(s: ClientSession, el: Element, cond: StanzaCondition, text = ""): void {
  if (el.attrs.type === "error") return;
  const to = el.attrs.to;
  s.send(stanzaError(el, cond, to === undefined || to === "" ? s.domain : to, s.address, text));
}

/** The result of an iq get/set handled by the server. */
export function iqResultFor(s: ClientSession, iq: Element, child?: Element): void {
  const to = iq.attrs.to;
  const attrs: Record<string, string> = { type: "result", id: iq.attrs.id, to: s.address };
  if (to !== undefined && to !== "") attrs.from = to;
  const reply = new Element("iq", attrs);
  if (child !== undefined) reply.cnode(child);
  s.send(reply);
}
