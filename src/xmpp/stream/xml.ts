import { Element } from "ltx";
import { StreamCondition, StreamError } from "../errors.js";

/*
 * The parser for one whole stanza's text, as the stream framer cut it out: the
 * text is complete and its tags balance in number, so this is one pass with
 * no state kept between calls. Element and attribute names and namespace
 * declarations are kept as written (as ltx does); entities are decoded.
 */

function bad(why: string): never {
  throw new StreamError(StreamCondition.NotWellFormed, why);
}

const isSpace = (c: number): boolean => c === 32 || c === 10 || c === 13 || c === 9;

/** XML 1.0 NameStartChar and NameChar, tested cheaply for ASCII and loosely above it. */
function nameStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 58 || c >= 0xc0;
}
function nameChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || c === 58 || c === 45 || c === 46 || c === 0xb7 || c >= 0xc0;
}

/** Reads a name at i; returns its end. */
function nameEnd(s: string, i: number, end: number): number {
  if (i >= end || !nameStart(s.charCodeAt(i))) bad("a name was expected");
  i++;
  while (i < end && nameChar(s.charCodeAt(i))) i++;
  return i;
}

/** RFC 6120 §11.1: only XML's predefined entities exist in a stream. */
function predefined(ref: string): string {
  switch (ref) {
    case "lt":
      return "<";
    case "gt":
      return ">";
    case "amp":
      return "&";
    case "quot":
      return '"';
    case "apos":
      return "'";
    default:
      return bad(`unknown entity &${ref};`);
  }
}

/** A character reference's code point is allowed in XML 1.0 (§2.2 Char). */
function legalCodePoint(cp: number): boolean {
  return cp === 9 || cp === 10 || cp === 13 || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

/**
 * Text or an attribute value between from and to, with entities decoded; in an
 * attribute value, literal white space becomes a space (XML 1.0 §3.3.3).
 * Text with nothing to decode comes back as one slice, without building.
 */
function decode(s: string, from: number, to: number, attr: boolean): string {
  let out = "";
  let run = from;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c === 38 /* & */) {
      const semi = s.indexOf(";", i + 1);
      if (semi < 0 || semi >= to) bad("'&' that starts no entity");
      const ref = s.slice(i + 1, semi);
      let rep: string;
      if (ref.charCodeAt(0) === 35 /* # */) {
        const hex = ref.charCodeAt(1) === 120; /* x */
        const digits = ref.slice(hex ? 2 : 1);
        if (digits.length === 0 || !(hex ? /^[0-9a-fA-F]+$/ : /^[0-9]+$/).test(digits)) bad(`bad character reference &${ref};`);
        const cp = parseInt(digits, hex ? 16 : 10);
        if (!legalCodePoint(cp)) bad(`character reference &${ref}; is not allowed in XML`);
        rep = String.fromCodePoint(cp);
      } else rep = predefined(ref);
      out += s.slice(run, i) + rep;
      i = semi;
      run = semi + 1;
    } else if (attr) {
      if (c === 60 /* < */) bad("'<' in an attribute value");
      if (c === 9 || c === 10 || c === 13) {
        out += s.slice(run, i) + " ";
        run = i + 1;
      }
    }
  }
  return run === from ? s.slice(from, to) : out + s.slice(run, to);
}

/**
 * Reads the attributes of the start tag whose name ends at i, up to its '>'.
 * Returns the index just past the tag; the attributes land in `attrs`; a
 * negative result means the tag closed itself (its end is the negation).
 */
function readAttrs(s: string, i: number, end: number, attrs: Record<string, string>): number {
  for (;;) {
    const c0 = s.charCodeAt(i);
    let c = c0;
    while (isSpace(c)) c = s.charCodeAt(++i);
    if (c === 62 /* > */) return i + 1;
    if (c === 47 /* / */) {
      if (s.charCodeAt(i + 1) !== 62) bad("'/' in a tag");
      return -(i + 2);
    }
    if (i >= end) bad("a tag does not end");
    // Attributes must be separated from the name and from each other by white space.
    if (!isSpace(c0)) bad("white space is needed between attributes");
    const ns = i;
    i = nameEnd(s, i, end);
    const name = s.slice(ns, i);
    c = s.charCodeAt(i);
    while (isSpace(c)) c = s.charCodeAt(++i);
    if (c !== 61 /* = */) bad(`attribute ${name} has no value`);
    c = s.charCodeAt(++i);
    while (isSpace(c)) c = s.charCodeAt(++i);
    if (c !== 34 && c !== 39) bad(`attribute ${name}'s value is not quoted`);
    const close = s.indexOf(c === 34 ? '"' : "'", i + 1);
    if (close < 0 || close >= end) bad(`attribute ${name}'s value does not end`);
    if (Object.hasOwn(attrs, name)) bad(`attribute ${name} appears twice`);
    attrs[name] = decode(s, i + 1, close, true);
    i = close + 1;
  }
}

/** A start tag from s[start] ('<') to end (just past '>'): its name and attributes. */
export function parseTag(s: string, start: number, end: number): { name: string; attrs: Record<string, string> } {
  const ne = nameEnd(s, start + 1, end);
  const attrs: Record<string, string> = {};
  readAttrs(s, ne, end, attrs);
  return { name: s.slice(start + 1, ne), attrs };
}

/**
 * One stanza's whole text, `s[from, to)`, into an Element tree (no parent: the stream is not an element here).
 * The stream codec passes its read buffer with the stanza's bounds rather than a slice of it: a slice of part
 * of a string is a V8 SlicedString, on which every character read in this parse costs more (a read that
 * brings a stanza and an XEP-0198 <r/> measured ~2,000 instructions more per message, docs/benchmarks.md).
 */
export function parseStanza(s: string, from = 0, to = s.length): Element {
  const n = to;
  let root: Element | null = null;
  let cur: Element | null = null;
  let i = from;
  while (i < n) {
    if (s.charCodeAt(i) !== 60 /* < */) {
      const lt = s.indexOf("<", i);
      const to = lt < 0 || lt > n ? n : lt;
      if (cur === null) bad("text outside a stanza");
      cur.children.push(decode(s, i, to, false));
      i = to;
      continue;
    }
    const c = s.charCodeAt(i + 1);
    if (c === 47 /* / */) {
      const gt = s.indexOf(">", i);
      if (gt < 0 || gt >= n) bad("an end tag does not end");
      let ne = nameEnd(s, i + 2, gt);
      const name = s.slice(i + 2, ne);
      while (isSpace(s.charCodeAt(ne))) ne++;
      if (ne !== gt) bad(`bad end tag </${name}`);
      if (cur === null || name !== cur.name) bad(`unexpected </${name}>`);
      cur = cur.parent;
      i = gt + 1;
    } else if (c === 33 /* ! */) {
      // The framer let only CDATA sections through.
      const end = s.indexOf("]]>", i + 9);
      if (end < 0 || end + 3 > n) bad("a CDATA section does not end");
      if (cur === null) bad("text outside a stanza");
      cur.children.push(s.slice(i + 9, end));
      i = end + 3;
    } else {
      if (root !== null && cur === null) bad("a second element after the stanza");
      const ne = nameEnd(s, i + 1, n);
      const el = new Element(s.slice(i + 1, ne));
      const attrs: Record<string, string> = {};
      const after = readAttrs(s, ne, n, attrs);
      el.attrs = attrs;
      if (cur !== null) {
        el.parent = cur;
        cur.children.push(el);
      } else root = el;
      if (after < 0) i = -after;
      else {
        cur = el;
        i = after;
      }
    }
  }
  if (root === null || cur !== null) bad("the stanza does not end");
  return root;
}
