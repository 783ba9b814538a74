import { StreamCondition, StreamError } from "../errors.js";

const TEXT = 0;
const LT = 1;
const BANG = 2;
const CDATA = 3;
const CDATA_OPEN = "[CDATA[";

// XML 1.0 §2.2 Char: these never appear in a well-formed document, escaped or not.
const ILLEGAL_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;

/**
 * RFC 6120 §11.1 restricted XML, which ltx silently accepts: no comments, no
 * DOCTYPE, no processing instructions except the XML declaration that may open
 * a stream. A small state machine that survives any split of the input.
 */
export class RestrictedXmlScanner {
  private state = TEXT;
  private k = 0;
  private started = false;

  scan(s: string): void {
    if (ILLEGAL_CHAR.test(s)) throw new StreamError(StreamCondition.NotWellFormed, "character not allowed in XML");
    const n = s.length;
    let i = 0;
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
          } else if (c === 63 /* ? */ && this.started) {
            throw new StreamError(StreamCondition.RestrictedXml, "processing instructions are not allowed");
          } else {
            this.started = true;
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
