import { Element, escapeXML, escapeXMLText, parse } from "ltx";

const ATTR_SPECIAL = /["&'<>]/;
const TEXT_SPECIAL = /[&<>]/;

// Most values have nothing to escape: a test is cheaper than ltx's replace on every one.
function attr(v: string): string {
  return ATTR_SPECIAL.test(v) ? escapeXML(v) : v;
}

function text(v: string): string {
  return TEXT_SPECIAL.test(v) ? escapeXMLText(v) : v;
}

const FROM_TO = / (?:from|to)="[^"]*"/g;

/**
 * serializeWith(el, { from, to }) for a stanza `name` that is still the text serialize(el) wrote (it came over
 * the bus and nobody read it here, Envelope.wireText): the start tag's from and to replaced without parsing.
 * That writer escapes quotes and '>' in values, so the first '>' ends the start tag and no value holds a '"'.
 * Null for text of another shape: the caller parses it.
 */
export function stampText(text: string, name: string, from: string, to: string): string | null {
  if (text.charCodeAt(0) !== 60 || !text.startsWith(name, 1)) return null;
  const after = text.charCodeAt(name.length + 1);
  const end = text.indexOf(">");
  if (end < 0 || !(after === 32 || after === 62 || after === 47)) return null;
  const close = text.charCodeAt(end - 1) === 47 ? end - 1 : end;
  if (stampedAs(text, name.length + 1, close, from, to)) return text;
  // A text serialized once for many recipients (a room's broadcast) has neither: no regex per recipient then.
  const attrs = text.slice(name.length + 1, close);
  let out = `<${name}${attrs.indexOf(' from="') < 0 && attrs.indexOf(' to="') < 0 ? attrs : attrs.replace(FROM_TO, "")}`;
  if (from !== "") out += ` from="${attr(from)}"`;
  if (to !== "") out += ` to="${attr(to)}"`;
  return out + text.slice(close);
}

/**
 * Whether the start tag's attributes, text[at, close), begin with to and end with from, both with exactly these
 * values: a client's stanza as its sender's worker wrote it (the client's own attributes, `to` first as
 * clients write it, then the `from` the dispatcher added), the usual crossing. serialize escapes '"' in values,
 * so neither can be read inside another attribute's value; a value with '&' is left to the caller (its
 * escaped form could read as another raw value). Compares in place: no search, no copy.
 */
function stampedAs(text: string, at: number, close: number, from: string, to: string): boolean {
  const toEnd = at + 5 + to.length;
  const fromAt = close - 1 - from.length;
  return (
    from !== "" &&
    to !== "" &&
    fromAt - 7 >= toEnd + 1 &&
    text.charCodeAt(toEnd) === 34 &&
    text.charCodeAt(close - 1) === 34 &&
    text.slice(at, at + 5) === ' to="' &&
    text.slice(fromAt - 7, fromAt) === ' from="' &&
    text.slice(at + 5, toEnd) === to &&
    text.slice(fromAt, close - 1) === from &&
    from.indexOf("&") < 0 &&
    to.indexOf("&") < 0
  );
}

/** The start tag before its '>' or '/>': the element's attributes, those in `over` replaced (dropped when empty). */
function openTag(el: Element, over: Record<string, string | undefined> | null): string {
  let out = `<${el.name}`;
  const attrs = el.attrs;
  for (const k in attrs) {
    if (over !== null && k in over) continue;
    const v = attrs[k];
    if (v !== undefined && v !== null) out += ` ${k}="${attr(String(v))}"`;
  }
  if (over !== null) {
    for (const k in over) {
      const v = over[k];
      if (v !== undefined && v !== "") out += ` ${k}="${attr(v)}"`;
    }
  }
  return out;
}

/** ltx's Element#toString, without its writer callbacks and with the escape fast paths: one call per delivered stanza. */
export function serialize(el: Element): string {
  return closeWith(openTag(el, null), el);
}

function closeWith(head: string, el: Element): string {
  const children = el.children;
  if (children.length === 0) return `${head}/>`;
  let out = `${head}>`;
  for (let i = 0; i < children.length; i++) {
    const c = children[i];
    out += typeof c === "string" ? text(c) : serialize(c as Element);
  }
  return `${out}</${el.name}>`;
}

/** serializeWith for the element with only its first `n` children (an archived message without the stanza-id it was given). */
export function serializeFirst(el: Element, over: Record<string, string | undefined>, n: number): string {
  const head = openTag(el, over);
  if (n <= 0) return `${head}/>`;
  const children = el.children;
  let out = `${head}>`;
  for (let i = 0; i < n; i++) {
    const c = children[i];
    out += typeof c === "string" ? text(c) : serialize(c as Element);
  }
  return `${out}</${el.name}>`;
}

/**
 * The stanza as serialized for one recipient, with some attributes replaced
 * (a stamped from, the recipient's to, an answer's id). The original is shared by
 * every recipient of a broadcast and is never changed.
 */
export function serializeWith(el: Element, over: Record<string, string | undefined>): string {
  return closeWith(openTag(el, over), el);
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
