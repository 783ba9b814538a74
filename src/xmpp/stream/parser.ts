import { StringDecoder } from "node:string_decoder";
import SaxLtx from "ltx/src/parsers/ltx.js";
import { Element } from "ltx";
import { StreamCondition, StreamError } from "../errors.js";
import { RestrictedXmlScanner } from "./restricted.js";

/** What the stream codec hands on: the stream header, one whole stanza at a time, the stream's end. */
export interface StreamSink {
  streamStart(name: string, attrs: Record<string, string>): void;
  stanza(el: Element): void;
  streamEnd(): void;
}

export interface StreamLimits {
  maxStanzaBytes: number;
  /** Element nesting inside one stanza. */
  maxDepth: number;
}

/**
 * Input is fed to the SAX parser in slices of this many bytes, and the size of
 * the stanza being read is checked after each: the limit is exact to within
 * one slice, and ltx (which buffers text until the next `<`) never holds more.
 */
export const SLICE_BYTES = 4096;

const OWNER = Symbol("owner");
type Sax = SaxLtx & { [OWNER]: StreamParser };

// ltx reports through EventEmitter#emit: three events per element. One
// dispatcher at module level replaces emit on each parser, so an event is a
// switch and a call, with no listener lookup and no closures per connection.
function dispatch(this: Sax, event: string | symbol, a?: unknown, b?: unknown): boolean {
  const owner = this[OWNER];
  switch (event) {
    case "startElement":
      owner.start(this, a as string, b as Record<string, string>);
      return true;
    case "endElement":
      owner.end(this, a as string);
      return true;
    case "text":
      owner.text(this, a as string);
      return true;
    default:
      return false;
  }
}

/**
 * The XMPP stream codec (RFC 6120 §4): bytes in, typed events out. Knows
 * nothing of sessions. Every fault is thrown as a StreamError; the caller
 * turns it into the stream error on the wire.
 */
export class StreamParser {
  private sax!: Sax;
  private decoder!: StringDecoder;
  private scanner!: RestrictedXmlScanner;
  private depth = 0;
  private streamName = "";
  private current: Element | null = null;
  /** Bytes read since the last stanza ended (an overestimate by at most one slice). */
  private bytes = 0;
  private stanzaEnded = false;

  constructor(
    private readonly sink: StreamSink,
    private readonly limits: StreamLimits,
  ) {
    this.restart();
  }

  /**
   * A new stream on the same connection (after STARTTLS or SASL, RFC 6120
   * §5.4.3.3, §6.4.6). Input already given past this point is dropped: the
   * peer must wait for our answer before it opens the new stream.
   */
  restart(): void {
    const sax = new SaxLtx() as Sax;
    sax[OWNER] = this;
    sax.emit = dispatch;
    if (this.sax !== undefined) this.sax[OWNER] = DEAD as unknown as StreamParser;
    this.sax = sax;
    this.decoder = new StringDecoder("utf8");
    this.scanner = new RestrictedXmlScanner();
    this.depth = 0;
    this.streamName = "";
    this.current = null;
    this.bytes = 0;
  }

  push(chunk: Buffer): void {
    const sax = this.sax;
    for (let off = 0; off < chunk.length; off += SLICE_BYTES) {
      const part = off === 0 && chunk.length <= SLICE_BYTES ? chunk : chunk.subarray(off, off + SLICE_BYTES);
      const text = this.scanner.filter(this.decoder.write(part));
      this.stanzaEnded = false;
      try {
        sax.write(text);
      } catch (e) {
        if (e instanceof StreamError) throw e;
        throw new StreamError(StreamCondition.NotWellFormed, (e as Error).message);
      }
      if (this.sax !== sax) return;
      this.bytes = this.stanzaEnded ? part.length : this.bytes + part.length;
      if (this.bytes > this.limits.maxStanzaBytes + SLICE_BYTES) {
        throw new StreamError(StreamCondition.PolicyViolation, `stanza larger than ${this.limits.maxStanzaBytes} bytes`);
      }
    }
  }

  start(sax: Sax, name: string, attrs: Record<string, string>): void {
    if (sax !== this.sax) return;
    if (this.depth === 0) {
      this.depth = 1;
      this.streamName = name;
      this.sink.streamStart(name, attrs);
      return;
    }
    if (++this.depth > this.limits.maxDepth + 1) throw new StreamError(StreamCondition.PolicyViolation, "elements nested too deep");
    // The SAX parser made this attribute object for this element alone: adopted as it is, not copied.
    const el = new Element(name);
    el.attrs = attrs;
    if (this.current !== null) this.current.cnode(el);
    this.current = el;
  }

  end(sax: Sax, name: string): void {
    if (sax !== this.sax) return;
    const el = this.current;
    if (this.depth === 0 || (el === null ? name !== this.streamName : name !== el.name)) {
      throw new StreamError(StreamCondition.NotWellFormed, `unexpected </${name}>`);
    }
    this.depth--;
    if (el === null) return this.sink.streamEnd();
    this.current = el.parent;
    if (this.depth === 1) {
      this.stanzaEnded = true;
      this.sink.stanza(el);
    }
  }

  text(sax: Sax, text: string): void {
    if (sax !== this.sax) return;
    if (this.current !== null) this.current.t(text);
    // Between stanzas only whitespace (keepalives) may appear.
    else if (/[^ \t\r\n]/.test(text)) throw new StreamError(StreamCondition.NotWellFormed, "text outside a stanza");
  }
}

// Events still coming from a parser replaced by restart() in the middle of its input land here.
const DEAD = { start() {}, end() {}, text() {} };
