import { Element, parse } from "ltx";

/**
 * The stanza as serialized for one recipient, with some attributes replaced
 * (the proxy id, a stamped from, the recipient's to). The original is shared by
 * every recipient of a broadcast and is never changed.
 */
export function serializeWith(el: Element, over: Record<string, string | undefined>): string {
  const copy = new Element(el.name, el.attrs);
  for (const k in over) {
    const v = over[k];
    if (v === undefined || v === "") delete copy.attrs[k];
    else copy.attrs[k] = v;
  }
  copy.children = el.children;
  return copy.toString();
}

/** One XML element from text we did not write (a relay body), or null. */
export function parseOne(text: string): Element | null {
  if (text.length === 0 || text.trimStart()[0] !== "<") return null;
  try {
    const el = parse(text);
    return el instanceof Element ? el : null;
  } catch {
    return null;
  }
}

let counter = 0;
/** Ids for stanzas the server originates (roster pushes, pings). */
export function serverId(prefix: string): string {
  counter = (counter + 1) % 0x7fffffff;
  return `${prefix}-${counter.toString(36)}`;
}

/** RFC 6121 §4.7.2.3: priority is an integer in [-128, 127]; anything else counts as 0. */
export function priorityOf(presence: Element): number {
  const text = presence.getChildText("priority");
  if (text === null) return 0;
  const n = Number(text.trim());
  return Number.isInteger(n) && n >= -128 && n <= 127 ? n : 0;
}
