import { Element } from "ltx";
import { StreamCondition, StreamError } from "../errors.js";
import { NS } from "../ns.js";
import { StreamParser, type StreamLimits, type StreamSink } from "./parser.js";
import { parseTag } from "./xml.js";

/**
 * How one connection's XMPP stream is cut into elements and written back: one
 * long document over TCP (RFC 6120 §4), one element per WebSocket message
 * (RFC 7395). The session is the same either way; it picks one of these by the
 * transport's messageMode. Codec only: no session, routing or socket here.
 */
export interface Framing {
  /** Input: any chunk of the stream, or one whole message (`binary`: it came in a binary frame). */
  push(chunk: Buffer, binary: boolean): void;
  /** A new stream follows (after STARTTLS or SASL). */
  restart(): void;
  /** Throws unless the client's stream header (or <open/>) has the right name and namespaces. */
  checkOpen(name: string, attrs: Record<string, string>): void;
  /** Our stream header (or <open/>). */
  header(streamId: string, domain: string): string;
  /** The empty <stream:features> the modules fill. */
  features(): Element;
  /** A top-level element we write, as it goes on the wire. */
  element(text: string): string;
  streamError(err: StreamError): string;
  /** Ends our side of the stream. */
  close(): string;
  /** XEP-0198 resumption: another session reads the rest of this connection's stream. */
  setSink(sink: StreamSink): void;
}

/** RFC 6120 §4: the stream is one document; stanzas are its children. */
export class StreamFraming implements Framing {
  private readonly parser: StreamParser;

  constructor(sink: StreamSink, limits: StreamLimits) {
    this.parser = new StreamParser(sink, limits);
  }

  push(chunk: Buffer): void {
    this.parser.push(chunk);
  }

  setSink(sink: StreamSink): void {
    this.parser.setSink(sink);
  }

  restart(): void {
    this.parser.restart();
  }

  checkOpen(name: string, attrs: Record<string, string>): void {
    // RFC 6120 §4.9.3.10: namespaces of the header.
    if (name !== "stream:stream" || attrs["xmlns:stream"] !== NS.STREAM) throw new StreamError(StreamCondition.InvalidNamespace, "expected stream:stream in the streams namespace");
    if (attrs.xmlns !== NS.CLIENT) throw new StreamError(StreamCondition.InvalidNamespace, "the content namespace must be jabber:client");
  }

  header(streamId: string, domain: string): string {
    return `<?xml version='1.0'?><stream:stream xmlns='${NS.CLIENT}' xmlns:stream='${NS.STREAM}' id='${streamId}' from='${domain}' version='1.0' xml:lang='en'>`;
  }

  features(): Element {
    return new Element("stream:features");
  }

  element(text: string): string {
    return text;
  }

  streamError(err: StreamError): string {
    return err.toXml();
  }

  close(): string {
    return "</stream:stream>";
  }
}

/**
 * RFC 7395: each WebSocket text message is one whole element, parsed by the
 * same framer and element parser as a TCP stream (so the same size, depth and
 * restricted-XML rules hold); <open/> and <close/> stand for the stream's
 * start and end, and every element we write declares its namespace.
 */
export class MessageFraming implements Framing {
  private readonly parser: StreamParser;
  private readonly maxBytes: number;
  /** <open/> received and not yet restarted. */
  private opened = false;
  private got: Element | null = null;
  private count = 0;

  constructor(
    private sink: StreamSink,
    limits: StreamLimits,
  ) {
    this.maxBytes = limits.maxStanzaBytes;
    this.parser = new StreamParser(
      {
        streamStart: () => {},
        stanza: (el) => {
          this.count++;
          this.got = el;
        },
        streamEnd: () => {
          throw new StreamError(StreamCondition.NotWellFormed, "an end tag without its element");
        },
      },
      limits,
    );
    this.parser.openFragments();
  }

  push(chunk: Buffer, binary: boolean): void {
    // RFC 7395 §3.2: the XMPP subprotocol uses text frames only.
    if (binary) throw new StreamError(StreamCondition.BadFormat, "binary frames are not used by XMPP over WebSocket");
    if (chunk.length > this.maxBytes) throw new StreamError(StreamCondition.PolicyViolation, `message larger than ${this.maxBytes} bytes`);
    this.count = 0;
    this.got = null;
    this.parser.push(chunk);
    // RFC 7395 §3.3.3: one message, one complete element.
    if (!this.parser.atBoundary) throw new StreamError(StreamCondition.NotWellFormed, "a message must hold one complete element");
    if (this.count !== 1) throw new StreamError(StreamCondition.NotWellFormed, this.count === 0 ? "a message without an element" : "a message must hold exactly one element");
    const el = this.got!;
    this.got = null;
    if (el.name === "open") {
      if (this.opened) throw new StreamError(StreamCondition.BadFormat, "the stream is already open");
      this.opened = true;
      this.sink.streamStart(el.name, el.attrs);
    } else if (el.name === "close" && el.attrs.xmlns === NS.FRAMING) this.sink.streamEnd();
    else if (!this.opened) throw new StreamError(StreamCondition.BadFormat, "expected <open/>");
    else this.sink.stanza(el);
  }

  setSink(sink: StreamSink): void {
    this.sink = sink;
  }

  restart(): void {
    // RFC 7395 §3.5: the client sends a new <open/>; nothing else is kept between messages.
    this.opened = false;
  }

  checkOpen(name: string, attrs: Record<string, string>): void {
    if (name !== "open" || attrs.xmlns !== NS.FRAMING) throw new StreamError(StreamCondition.InvalidNamespace, "expected <open/> in the framing namespace");
  }

  header(streamId: string, domain: string): string {
    return `<open xmlns='${NS.FRAMING}' id='${streamId}' from='${domain}' version='1.0' xml:lang='en'/>`;
  }

  features(): Element {
    // Alone in its message, the prefix must be declared (clients look the namespace up).
    return new Element("stream:features", { "xmlns:stream": NS.STREAM });
  }

  /** A stanza written without xmlns is in jabber:client by the stream's default; alone, it must say so. */
  element(text: string): string {
    const gt = text.indexOf(">");
    if (gt < 0 || text.charCodeAt(0) !== 60 /* < */) return text;
    const { name, attrs } = parseTag(text, 0, gt + 1);
    if (attrs.xmlns !== undefined || name.includes(":")) return text;
    const at = name.length + 1;
    return `${text.slice(0, at)} xmlns='${NS.CLIENT}'${text.slice(at)}`;
  }

  streamError(err: StreamError): string {
    return err.toXml(true);
  }

  close(): string {
    return `<close xmlns='${NS.FRAMING}'/>`;
  }
}
