import { isAscii } from "node:buffer";
import { StringDecoder } from "node:string_decoder";
import { Element } from "ltx";
import { StreamCondition, StreamError } from "../errors.js";
import { parseStanza, parseTag } from "./xml.js";
import { NOT_SM, SM_REQUEST, smAnswerH, smEnd, smShortcut } from "./sm-shortcut.js";

/** What the stream codec hands on: the stream header, one whole stanza at a time, the stream's end. */
export interface StreamSink {
  streamStart(name: string, attrs: Record<string, string>): void;
  stanza(el: Element): void;
  streamEnd(): void;
  /**
   * Optional: XEP-0198's <r/> (SM_REQUEST) or <a h/> (h), recognised without a parse (sm-shortcut.ts).
   * False: not taken here, and the element goes to stanza() as any other.
   */
  smNonza?(what: number): boolean;
}

export interface StreamLimits {
  maxStanzaBytes: number;
  /** Element nesting inside one stanza. */
  maxDepth: number;
}

// XML 1.0 §2.2 Char: these never appear in a well-formed document, escaped or not.
const ILLEGAL_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;
const CDATA_OPEN = "<![CDATA[";

// Where the framer stands in `buf`.
const TEXT = 0; // outside markup
const LT = 1; // just after '<'
const TAG = 2; // inside a start tag
const END_TAG = 3; // inside an end tag
const BANG = 4; // after "<!": must become "<![CDATA["
const CDATA = 5; // inside a CDATA section
const PI = 6; // inside the XML declaration, before the stream header
const DONE = 7; // after </stream:stream>

/**
 * The XMPP stream codec (RFC 6120 §4): bytes in, typed events out. Knows
 * nothing of sessions. Every fault is thrown as a StreamError; the caller turns
 * it into the stream error on the wire.
 *
 * Two steps, because a stream is one document that never ends: a framer finds
 * where each stanza ends (it survives any split of the input, and holds at most
 * the stanza being read), then the whole stanza's text is parsed at once into
 * an ltx Element. RFC 6120 §11.1 restricted XML (no comments, DOCTYPE or
 * processing instructions past the XML declaration) is enforced by the framer.
 */
export class StreamParser {
  /** Made at the first chunk that is not all ASCII: most streams never need one (an idle session holds none). */
  private decoder: StringDecoder | null = null;
  /** The decoder holds no part of a character: an all-ASCII chunk can skip it. */
  private decoderEmpty = true;
  /** Input not yet consumed: the current stanza from its '<', or a construct cut by a read. */
  private buf = "";
  /** Scan position in buf. */
  private pos = 0;
  private state = TEXT;
  /** 0 before the stream header, 1 between stanzas, 2 and more inside a stanza. */
  private depth = 0;
  /** Inside a start tag: the quote character of the attribute value being read, or 0. */
  private quote = 0;
  /** Start of the construct (tag, stanza) in buf that the framer is inside. */
  private mark = 0;
  private streamName = "";
  /** Bumped by restart(): events of the old stream stop at once. */
  private generation = 0;

  constructor(
    private sink: StreamSink,
    private readonly limits: StreamLimits,
  ) {}

  /** XEP-0198 resumption: the resumed session reads the rest of this stream. */
  setSink(sink: StreamSink): void {
    this.sink = sink;
  }

  /**
   * A new stream on the same connection (after STARTTLS or SASL, RFC 6120
   * §5.4.3.3, §6.4.6). Input already given past this point is dropped: the
   * peer must wait for our answer before it opens the new stream.
   */
  restart(): void {
    this.generation++;
    this.decoder = null;
    this.decoderEmpty = true;
    this.buf = "";
    this.pos = 0;
    this.state = TEXT;
    this.depth = 0;
    this.quote = 0;
    this.mark = 0;
    this.streamName = "";
  }

  /**
   * RFC 7395: no stream document around the elements; every element at the
   * top is handed on as a stanza (the <open/> and <close/> of the framing too).
   */
  openFragments(): void {
    this.restart();
    this.depth = 1;
  }

  /** Nothing is partly read: every element pushed so far was complete. */
  get atBoundary(): boolean {
    return this.state === TEXT && this.depth === 1 && this.buf.length === 0;
  }

  push(chunk: Buffer): void {
    if (this.state === DONE) return;
    let s: string;
    // Most chunks are ASCII: one vectorised check and a one-byte string, instead of the decoder's bookkeeping.
    if (this.decoderEmpty && isAscii(chunk)) s = chunk.toString("latin1");
    else {
      this.decoder ??= new StringDecoder("utf8");
      s = this.decoder.write(chunk);
      // A last byte below 0x80 ends any sequence the decoder was holding.
      this.decoderEmpty = chunk.length > 0 && chunk[chunk.length - 1] < 0x80;
    }
    if (s.length === 0) return;
    if (ILLEGAL_CHAR.test(s)) throw new StreamError(StreamCondition.NotWellFormed, "character not allowed in XML");
    this.buf = this.buf.length === 0 ? s : this.buf + s;
    this.scan();
    if (this.state === DONE) return;
    // Keep only what the next read still needs.
    if (this.mark > 0) {
      this.buf = this.buf.slice(this.mark);
      this.pos -= this.mark;
      this.mark = 0;
    }
    if (this.buf.length > 0 && this.tooBig(this.buf)) {
      throw new StreamError(StreamCondition.PolicyViolation, `stanza larger than ${this.limits.maxStanzaBytes} bytes`);
    }
  }

  /** `text[from, to)` is over the byte limit, counting UTF-8 bytes only when the length in UTF-16 units cannot decide. */
  private tooBig(text: string, from = 0, to = text.length): boolean {
    const max = this.limits.maxStanzaBytes;
    const len = to - from;
    if (len * 3 <= max) return false;
    if (len > max) return true;
    return Buffer.byteLength(from === 0 && to === text.length ? text : text.slice(from, to)) > max;
  }

  private scan(): void {
    const gen = this.generation;
    const buf = this.buf;
    const n = buf.length;
    let i = this.pos;
    scan: while (i < n) {
      switch (this.state) {
        case TEXT: {
          if (this.depth >= 2) {
            const lt = buf.indexOf("<", i);
            if (lt < 0) {
              i = n;
              break;
            }
            i = lt;
          } else {
            // Between stanzas (and before the header) only whitespace: keepalives.
            let c = buf.charCodeAt(i);
            while (c === 32 || c === 10 || c === 13 || c === 9) c = buf.charCodeAt(++i);
            if (i === n) {
              this.mark = n;
              break;
            }
            if (c !== 60 /* < */) throw new StreamError(StreamCondition.NotWellFormed, "text outside a stanza");
            this.mark = i;
            // XEP-0198's <r/> or <a h/>, whole in this read: taken as it is, without the tag loop below.
            if (this.depth === 1 && this.sink.smNonza !== undefined) {
              const end = smEnd(buf, i, n);
              if (end > 0) {
                // An <a/>'s h is read from its digits, the form checked by smEnd (an h of 2^32 or more: NOT_SM, parsed and refused as before).
                const what = buf.charCodeAt(i + 1) === 114 /* r */ ? SM_REQUEST : smAnswerH(buf, i, end);
                this.mark = end;
                if (what === NOT_SM || !this.sink.smNonza(what)) {
                  // Declined (not bound, not enabled, input held): the generic way, which owns every error.
                  this.mark = i;
                  if (!this.stanza(buf, end)) return;
                }
                i = end;
                continue;
              }
            }
          }
          this.state = LT;
          i++;
          break;
        }
        case LT: {
          const c = buf.charCodeAt(i);
          if (c === 47 /* / */) {
            this.state = END_TAG;
            i++;
          } else if (c === 33 /* ! */) {
            this.state = BANG;
          } else if (c === 63 /* ? */) {
            // Only the XML declaration, and only before the stream header.
            if (this.depth !== 0 || this.streamName !== "") throw new StreamError(StreamCondition.RestrictedXml, "processing instructions are not allowed");
            this.state = PI;
            i++;
          } else {
            this.state = TAG;
            this.quote = 0;
          }
          break;
        }
        case TAG: {
          let q = this.quote;
          for (; i < n; i++) {
            const c = buf.charCodeAt(i);
            if (q !== 0) {
              if (c === q) q = 0;
              else if (c === 60) throw new StreamError(StreamCondition.NotWellFormed, "'<' in an attribute value");
            } else if (c === 34 || c === 39) q = c;
            else if (c === 62 /* > */) break;
            else if (c === 60) throw new StreamError(StreamCondition.NotWellFormed, "'<' inside a tag");
          }
          this.quote = q;
          if (i === n) break;
          const empty = buf.charCodeAt(i - 1) === 47; /* / */
          i++;
          if (this.depth === 0) {
            this.header(buf, i, empty);
            if (this.generation !== gen) return;
            this.mark = i;
          } else if (empty) {
            if (this.depth === 1 && !this.stanza(buf, i)) return;
          } else if (++this.depth > this.limits.maxDepth + 1) {
            throw new StreamError(StreamCondition.PolicyViolation, "elements nested too deep");
          }
          this.state = TEXT;
          break;
        }
        case END_TAG: {
          const gt = buf.indexOf(">", i);
          if (gt < 0) {
            i = n;
            break;
          }
          i = gt + 1;
          this.state = TEXT;
          if (this.depth === 1) {
            const name = buf.slice(this.mark + 2, gt).trimEnd();
            if (name !== this.streamName) throw new StreamError(StreamCondition.NotWellFormed, `unexpected </${name}>`);
            this.state = DONE;
            this.buf = "";
            this.sink.streamEnd();
            return;
          }
          if (--this.depth === 1 && !this.stanza(buf, i)) return;
          break;
        }
        case BANG: {
          // "<!" is a comment or DOCTYPE unless it opens a CDATA section inside a stanza.
          // i is at the "!"; what a read cut short is compared again when the rest comes.
          const want = CDATA_OPEN.length - 1;
          const have = Math.min(n - i, want);
          if (buf.slice(i, i + have) !== CDATA_OPEN.slice(1, 1 + have)) throw new StreamError(StreamCondition.RestrictedXml, "comments and DOCTYPE are not allowed");
          if (have < want) break scan;
          if (this.depth < 2) throw new StreamError(StreamCondition.NotWellFormed, "text outside a stanza");
          i += want;
          this.state = CDATA;
          break;
        }
        case CDATA: {
          // Resume two back: "]]>" may have been cut by the read.
          const end = buf.indexOf("]]>", i - 2);
          if (end < 0) {
            i = n;
            break;
          }
          i = end + 3;
          this.state = TEXT;
          break;
        }
        case PI: {
          const end = buf.indexOf("?>", Math.max(i - 1, this.mark + 2));
          if (end < 0) {
            i = n;
            break;
          }
          i = end + 2;
          this.mark = i;
          this.state = TEXT;
          break;
        }
        default:
          return;
      }
    }
    this.pos = i;
    if (this.state === TEXT && this.depth === 1) {
      // Nothing open: whatever was read is consumed.
      this.mark = n;
    }
  }

  private header(buf: string, end: number, empty: boolean): void {
    const tag = parseTag(buf, this.mark, end);
    if (empty) throw new StreamError(StreamCondition.NotWellFormed, "the stream header closes itself");
    this.depth = 1;
    this.streamName = tag.name;
    this.sink.streamStart(tag.name, tag.attrs);
  }

  /** A stanza ends at `end`: parse it and hand it on. False when the sink restarted the stream. */
  private stanza(buf: string, end: number): boolean {
    const gen = this.generation;
    const sink = this.sink;
    if (sink.smNonza !== undefined) {
      const what = smShortcut(buf, this.mark, end);
      if (what !== NOT_SM) {
        const start = this.mark;
        this.mark = end;
        if (sink.smNonza(what)) return true;
        this.mark = start;
      }
    }
    const start = this.mark;
    if (this.tooBig(buf, start, end)) throw new StreamError(StreamCondition.PolicyViolation, `stanza larger than ${this.limits.maxStanzaBytes} bytes`);
    this.mark = end;
    // Parsed where it lies in the read: no slice (xml.ts parseStanza).
    this.sink.stanza(parseStanza(buf, start, end));
    return this.generation === gen;
  }
}
