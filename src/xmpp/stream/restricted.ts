import { StreamCondition, StreamError } from "../errors.js";

const TEXT = 0;
const LT = 1;
const BANG = 2;
const CDATA = 3;
const CDATA_OPEN = "[CDATA[";

// XML 1.0 §2.2 Char: these never appear in a well-formed document, escaped or not.
const ILLEGAL_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;

const PI = 4;

/**
 * RFC 6120 §11.1 restricted XML, which ltx silently accepts: no comments, no
 * DOCTYPE, no processing instructions except the XML declaration that may open
 * a stream. A small state machine that survives any split of the input.
 *
 * It also removes that declaration from what the SAX parser sees: ltx loses
 * track of a `?>` split across two writes and would swallow the whole stream.
 */
export class RestrictedXmlScanner {
  private state = TEXT;
  private k = 0;
  private started = false;

  /** Checks `s` and returns what to hand to the SAX parser. */
  filter(s: string): string {
    if (ILLEGAL_CHAR.test(s)) throw new StreamError(StreamCondition.NotWellFormed, "character not allowed in XML");
    if (this.started) {
      this.scan(s, 0);
      return s;
    }
    // Before the first element: at most a few hundred bytes, looked at one character at a time.
    let out = "";
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (this.state === PI) {
        if (c === 62 /* > */ && this.k === 1) this.state = TEXT;
        this.k = c === 63 /* ? */ ? 1 : 0;
      } else if (this.state === LT) {
        if (c === 63 /* ? */) {
          this.state = PI;
          this.k = 0;
          continue;
        }
        this.started = true;
        this.state = TEXT;
        const rest = s.slice(i);
        this.scan(`<${rest}`, 0);
        return out + "<" + rest;
      } else if (c === 60 /* < */) this.state = LT;
      else out += s[i];
    }
    return out;
  }

  private scan(s: string, from: number): void {
    const n = s.length;
    let i = from;
    while (i < n) {
      switch (this.state) {
        case TEXT: {
          const lt = s.indexOf("<", i);
          if (lt < 0) return;
          this.state = LT;
          i = lt + 1;
          break;
        }
        case LT: {
          const c = s.charCodeAt(i++);
          if (c === 33 /* ! */) {
            this.state = BANG;
            this.k = 0;
          } else if (c === 63 /* ? */) {
            throw new StreamError(StreamCondition.RestrictedXml, "processing instructions are not allowed");
          } else {
            this.state = TEXT;
          }
          break;
        }
        case BANG: {
          if (s.charCodeAt(i++) !== CDATA_OPEN.charCodeAt(this.k)) {
            throw new StreamError(StreamCondition.RestrictedXml, "comments and DOCTYPE are not allowed");
          }
          if (++this.k === CDATA_OPEN.length) {
            this.state = CDATA;
            this.k = 0;
          }
          break;
        }
        case CDATA: {
          const c = s.charCodeAt(i++);
          if (c === 93 /* ] */) this.k++;
          else if (c === 62 /* > */ && this.k >= 2) this.state = TEXT;
          else this.k = 0;
          break;
        }
      }
    }
  }
}
