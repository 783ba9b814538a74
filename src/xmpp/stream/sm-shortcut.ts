import { NS } from "../ns.js";

/**
 * XEP-0198's <r/> and <a h/> as clients write them, recognised from the
 * stanza's text so that they need no parse and no Element. A mobile client
 * (Conversations) sends an <r/> with every message, so at load the <r/> is
 * as frequent as the messages themselves; a generic parse of it cost more
 * than the rest of what answering it does (docs/benchmarks.md, issue 13).
 *
 * Only the exact forms below match (one attribute, either quote, no spaces
 * beyond the one before it); anything else, even if equivalent XML, goes the
 * generic way, which also owns every error.
 */

/** Not one of the two forms: parse it. */
export const NOT_SM = -2;
/** An <r/> in the XEP-0198 namespace. */
export const SM_REQUEST = -1;

const R_APOS = `<r xmlns='${NS.SM}'/>`;
const R_QUOT = `<r xmlns="${NS.SM}"/>`;
const A_APOS = `<a xmlns='${NS.SM}' h='`;
const A_QUOT = `<a xmlns="${NS.SM}" h="`;
/** h is at most 2^32 − 1: ten digits. */
const MAX_H_DIGITS = 10;

/**
 * `text` (cut from the read) is one of the two spellings. A cut and `===` rather than `startsWith(form, at)`:
 * V8's startsWith is a generic builtin (its argument checked for a RegExp, then character by character), where
 * the cut is a slice of the read (no copy) and `===` is V8's compare of two one-byte strings: ~35 against
 * ~63 ns for the 26-character <r/> in a micro-benchmark (docs/benchmarks.md, session 25).
 */
function isForm(text: string, apos: string, quot: string): boolean {
  return text === apos || text === quot;
}

/**
 * What the complete top-level element `buf[start, end)` is: SM_REQUEST, the h
 * of an <a/> (0 ≤ h < 2^32), or NOT_SM.
 */
export function smShortcut(buf: string, start: number, end: number): number {
  const len = end - start;
  // "<r" and "<a" are the only candidates: one look at the second character first.
  const c = buf.charCodeAt(start + 1);
  if (c === 114 /* r */) {
    if (len !== R_APOS.length) return NOT_SM;
    return isForm(buf.substring(start, end), R_APOS, R_QUOT) ? SM_REQUEST : NOT_SM;
  }
  if (c !== 97 /* a */ || len < A_APOS.length + 4 || len > A_APOS.length + MAX_H_DIGITS + 3) return NOT_SM;
  const quote = buf.charCodeAt(start + A_APOS.length - 1);
  if (!isForm(buf.substring(start, start + A_APOS.length), A_APOS, A_QUOT)) return NOT_SM;
  // The digits, then the same quote and "/>".
  if (buf.charCodeAt(end - 3) !== quote || buf.charCodeAt(end - 2) !== 47 /* / */) return NOT_SM;
  return smAnswerH(buf, start, end);
}

/**
 * The h between the prefix and the closing quote of the <a h/> at `buf[start, end)` (its form checked by smEnd or
 * smShortcut: only the digits are read); NOT_SM for anything but digits, or 2^32 or more.
 */
export function smAnswerH(buf: string, start: number, end: number): number {
  let h = 0;
  for (let i = start + A_APOS.length; i < end - 3; i++) {
    const d = buf.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return NOT_SM;
    h = h * 10 + d;
  }
  // Out of range: the generic path answers it with the right error.
  return h < 0x1_0000_0000 ? h : NOT_SM;
}

/**
 * Where the element that starts at `buf[start]` ('<') ends, if it is one of the two forms above and wholly in
 * `buf[start, n)`: just past its "/>"; else -1 (the framer then reads it the generic way, character by
 * character). Lets the framer take an <r/> or <a h/> between stanzas without its tag loop (a mobile client
 * sends an <r/> with each message, in the same read). What it is: smShortcut on the same bounds.
 */
export function smEnd(buf: string, start: number, n: number): number {
  const c = buf.charCodeAt(start + 1);
  if (c === 114 /* r */) {
    const end = start + R_APOS.length;
    return end <= n && isForm(buf.substring(start, end), R_APOS, R_QUOT) ? end : -1;
  }
  if (c !== 97 /* a */) return -1;
  const quote = buf.charCodeAt(start + A_APOS.length - 1);
  if (!isForm(buf.substring(start, start + A_APOS.length), A_APOS, A_QUOT)) return -1;
  let i = start + A_APOS.length;
  const last = Math.min(n, i + MAX_H_DIGITS);
  while (i < last) {
    const d = buf.charCodeAt(i) - 48;
    if (d < 0 || d > 9) break;
    i++;
  }
  if (i === start + A_APOS.length || i + 3 > n || buf.charCodeAt(i) !== quote || buf.charCodeAt(i + 1) !== 47 /* / */ || buf.charCodeAt(i + 2) !== 62 /* > */) return -1;
  return i + 3;
}
