import { Envelope, Kind, WireText } from "../envelope/envelope.js";
import type { PayloadCodec, PayloadCodecs } from "../envelope/payload-codec.js";
import type { BusMessage, Taken } from "./bus.js";
import { WireReader, WireWriter } from "./wire-buf.js";
import { fromJsonHead, jsonHead, type JsonOp, type Payloads } from "./wire-json.js";
import { serviceOpFrom, serviceOpInto, type EnvPayloads } from "./wire-fanout.js";

/**
 * BusMessage ⇄ bytes for buses between processes (bus protocol 5, join-guard.ts). A batch to one peer is
 * its messages one after another, each behind its u32 (big-endian) length; a message is
 *
 *   u8 tag | fields | payload
 *
 * The messages of every chat message (owner, session, missed, answer: an envelope; confirm: custody's
 * receipts) have binary fields (wire-buf.ts): strings as length and UTF-8, numbers as f64 or u32, the
 * payload last as its length (0xffffffff: null) and bytes. So have resume-record copies (`records` with
 * only `held`: one per turn, each stanza as its text, not escaped into JSON). The rest (tag 0) carry a JSON array and a
 * presence payload (wire-json.ts). Payloads go through their protocol's PayloadCodec; a codec that gives
 * text (encodeText) has it written straight into the batch, and read back as a WireText that is decoded
 * only where the payload is read: a stanza that an owner passes on to the worker of its session is never
 * parsed there, and goes on as the text it came as.
 */
const Tag = { Json: 0, Owner: 1, Session: 2, Missed: 3, Answer: 4, Confirm: 5, Held: 6, Service: 7, Fanout: 8, Stale: 9 } as const;

/**
 * A frame whose first byte is this holds, behind it, a whole batch (frames) that its sender gathered before
 * it was stopped past the others' patience and published after (NatsBus: BusEndpoint.stalled); a reader
 * unwraps it and reads those messages with ClusterBus.readingStale set. A worker of before (bus protocol 3
 * without it) finds an unknown tag and drops the batch: what it held travels again from custody.
 */
export const STALE_TAG = Tag.Stale;

const NULL_LEN = 0xffffffff;
/** An envelope's payload: none, bytes after the strings, or text at the end of the strings (PayloadCodec.encodeText). */
const Payload = { None: 0, Bytes: 1, Text: 2 } as const;
/** u8 tag, u8 kind, f64 ttl, u32 flags, f64 serial, nine string lengths, u8 payload and its length, the strings' byte length, and the frame's. */
const ENV_FIXED = 1 + 1 + 8 + 4 + 8 + 9 * 4 + 1 + 4 + 4 + 4;

export class BusWire implements Payloads, EnvPayloads {
  /** The string lengths of the message being read. */
  private readonly lens = new Uint32Array(9);
  private readonly reader = new WireReader();
  /** The protocols' names as the codecs' keys: a name read off the bus becomes one of these (see `named`). */
  private readonly names: string[];

  constructor(
    private readonly codecs: PayloadCodecs,
    /** A text payload that did not decode when it was first read (WireText): the message is worth a log line and a count. */
    private readonly badText: (e: Error) => void = () => {},
  ) {
    this.names = Object.keys(codecs);
  }

  /**
   * The protocol's name as the codecs' key (an internalized string) rather than the slice read: a lookup by
   * it (the codec here, timeouts, …) is then not a hash of a fresh string and a search of the string table.
   */
  private named(protocol: string): string {
    const names = this.names;
    for (let i = 0; i < names.length; i++) if (names[i] === protocol) return names[i];
    return protocol;
  }

  /** One message alone (without the batch's length before it): for tests and tools. */
  encode(msg: BusMessage): Uint8Array {
    const w = new WireWriter();
    this.encodeInto(w, msg);
    return w.take().subarray(4);
  }

  /** Appends `msg` to a batch: its u32 length, then the message. Throws (writing nothing) on a payload its codec refuses. */
  encodeInto(w: WireWriter, msg: BusMessage): void {
    switch (msg.op) {
      case "owner":
        return this.envOp(w, Tag.Owner, msg.env, "", 0, "");
      case "answer":
        return this.envOp(w, Tag.Answer, msg.env, "", 0, "");
      case "session":
        return this.envOp(w, Tag.Session, msg.env, msg.address, msg.serial, "");
      case "missed":
        return this.envOp(w, Tag.Missed, msg.env, msg.address, msg.serial, msg.by);
      case "confirm":
        return confirmInto(w, msg.by, msg.prefix, msg.taken, msg.done);
      case "records":
        if (heldOnly(msg)) return heldInto(w, msg.from, msg.held);
        return this.jsonInto(w, msg);
      case "service":
        return serviceOpInto(w, Tag.Service, msg, this);
      case "fanout":
        return serviceOpInto(w, Tag.Fanout, msg, this);
      default:
        return this.jsonInto(w, msg);
    }
  }

  private envOp(w: WireWriter, tag: number, e: Envelope, address: string, serial: number, by: string): void {
    // A stanza passed on unread goes on as the text it came as.
    let text: string | null = e.wireText;
    let bytes: Uint8Array | null = null;
    const p = text === null ? e.payload : null;
    if (p !== null && p !== undefined) {
      const c = this.codec(e.protocol);
      if (c.encodeText !== undefined) text = c.encodeText(p);
      else bytes = c.encode(p);
    }
    const chars = e.id.length + e.ref.length + e.responseFor.length + e.from.length + e.to.length + e.protocol.length + e.code.length + address.length + by.length;
    w.reserve(ENV_FIXED + 3 * chars + (text !== null ? 3 * text.length : bytes !== null ? bytes.length : 0));
    const frame = w.at;
    w.at += 4;
    w.u8(tag);
    w.u8(e.kind);
    w.f64(e.ttl);
    w.u32(e.flags);
    const session = tag === Tag.Session || tag === Tag.Missed;
    if (session) w.f64(serial);
    // The strings as one text (one UTF-8 write here, one string made there) behind their lengths in UTF-16 units.
    w.u32(e.id.length);
    w.u32(e.ref.length);
    w.u32(e.responseFor.length);
    w.u32(e.from.length);
    w.u32(e.to.length);
    w.u32(e.protocol.length);
    w.u32(e.code.length);
    let all = e.id + e.ref + e.responseFor + e.from + e.to + e.protocol + e.code;
    if (session) {
      w.u32(address.length);
      w.u32(by.length);
      all += address + by;
    }
    if (text !== null) {
      w.u8(Payload.Text);
      w.u32(text.length);
      w.text(all + text);
    } else {
      w.u8(bytes === null ? Payload.None : Payload.Bytes);
      w.text(all);
      if (bytes !== null) w.bytes(bytes);
    }
    w.endFrame(frame);
  }

  private jsonInto(w: WireWriter, msg: JsonOp): void {
    const { head, presence } = jsonHead(msg, this);
    const json = JSON.stringify(head);
    w.reserve(4 + 1 + 4 + 3 * json.length + 4 + (presence?.length ?? 0));
    const frame = w.at;
    w.at += 4;
    w.u8(Tag.Json);
    w.text(json);
    if (presence !== null) w.bytes(presence);
    else w.u32(NULL_LEN);
    w.endFrame(frame);
  }

  /**
   * Throws on anything that is not a message this codec wrote: the caller drops that message alone. With
   * `start` and `end`, the message is that part of `bytes` (a batch read without a view per message).
   */
  decode(bytes: Uint8Array, start = 0, end = bytes.length): BusMessage {
    // One reader for every message: decoding is synchronous and never decodes another message meanwhile.
    const r = this.reader;
    r.reset(bytes, start, end);
    const tag = r.u8();
    let msg: BusMessage;
    switch (tag) {
      case Tag.Owner:
      case Tag.Answer:
      case Tag.Session:
      case Tag.Missed:
        msg = this.envOpFrom(r, tag);
        break;
      case Tag.Confirm:
        msg = confirmFrom(r);
        break;
      case Tag.Held:
        msg = heldFrom(r);
        break;
      case Tag.Service:
      case Tag.Fanout:
        msg = serviceOpFrom(r, tag === Tag.Fanout, this);
        break;
      case Tag.Json: {
        const head: unknown = JSON.parse(r.str());
        if (!Array.isArray(head)) throw new Error("bus message without its fields");
        msg = fromJsonHead(head, payloadFrom(r), this);
        break;
      }
      default:
        throw new Error(`unknown bus message tag ${tag}`);
    }
    if (r.left !== 0) throw new Error("bus message with bytes after its end");
    return msg;
  }

  private envOpFrom(r: WireReader, tag: number): BusMessage {
    const kind = r.u8();
    if (kind > Kind.Presence) throw new Error(`unknown envelope kind ${kind}`);
    const ttl = r.f64();
    const flags = r.u32();
    const session = tag === Tag.Session || tag === Tag.Missed;
    const serial = session ? r.f64() : 0;
    const n = session ? 9 : 7;
    const lens = this.lens;
    let chars = 0;
    for (let i = 0; i < n; i++) chars += lens[i] = r.u32();
    const has = r.u8();
    const textLen = has === Payload.Text ? r.u32() : 0;
    const all = r.str();
    if (all.length !== chars + textLen || has > Payload.Text) throw new Error("bus message strings do not add up");
    let at = 0;
    const next = (i: number): string => all.slice(at, (at += lens[i]));
    const id = next(0);
    const ref = next(1);
    const responseFor = next(2);
    const from = next(3);
    const to = next(4);
    const protocol = this.named(next(5));
    const code = next(6);
    const payload = has === Payload.None ? null : has === Payload.Bytes ? this.valueOf(protocol, r.view(r.u32())) : this.textOf(protocol, all.slice(chars));
    const env = new Envelope(kind as Kind, id, ref, responseFor, from, to, protocol, payload, ttl, flags, code);
    switch (tag) {
      case Tag.Owner:
        return { op: "owner", env };
      case Tag.Answer:
        return { op: "answer", env };
      case Tag.Session:
        return { op: "session", address: next(7), serial, env };
      default:
        return { op: "missed", address: next(7), serial, by: next(8), env };
    }
  }

  payloadOut(e: Envelope): { text: string | null; bytes: Uint8Array | null } {
    const text = e.wireText;
    if (text !== null) return { text, bytes: null };
    const p = e.payload;
    if (p === null || p === undefined) return { text: null, bytes: null };
    const c = this.codec(e.protocol);
    return c.encodeText !== undefined ? { text: c.encodeText(p), bytes: null } : { text: null, bytes: c.encode(p) };
  }

  payloadIn(protocol: string, text: string | null, bytes: Uint8Array | null): unknown {
    return text !== null ? this.textOf(protocol, text) : this.valueOf(protocol, bytes);
  }

  private codec(protocol: string): PayloadCodec {
    const c = this.codecs[protocol];
    if (c === undefined) throw new Error(`no payload codec for protocol ${protocol}`);
    return c;
  }

  bytesOf(protocol: string, payload: unknown): Uint8Array | null {
    return payload === null || payload === undefined ? null : this.codec(protocol).encode(payload);
  }

  /** Decoded where it is first read (Envelope.payload), if ever: a worker that passes it on or writes it as text never does. */
  private textOf(protocol: string, text: string): WireText {
    const c = this.codec(protocol);
    if (c.decodeText === undefined) throw new Error(`protocol ${protocol} has no text payloads`);
    return new WireText(text, c.decodeText, this.badText);
  }

  valueOf(protocol: string, bytes: Uint8Array | null): unknown {
    return bytes === null ? null : this.codec(protocol).decode(bytes);
  }
}

function payloadFrom(r: WireReader): Uint8Array | null {
  const len = r.u32();
  return len === NULL_LEN ? null : r.view(len);
}

/**
 * Receipts by number behind their custodian's prefix, written once: 8 bytes a settled message, no string.
 * The sender is named only where something is taken (Custody.takenBy keeps it); "" when all are settled.
 */
function confirmInto(w: WireWriter, sender: string, prefix: string, taken: readonly Taken[], done: readonly number[]): void {
  const by = taken.length > 0 ? sender : "";
  let chars = by.length + prefix.length;
  for (let i = 0; i < taken.length; i++) chars += taken[i][1].length;
  w.reserve(4 + 1 + 4 + 4 + 4 + 4 + taken.length * 20 + done.length * 8 + 3 * chars);
  const frame = w.at;
  w.at += 4;
  w.u8(Tag.Confirm);
  w.str(by);
  w.str(prefix);
  w.u32(taken.length);
  for (let i = 0; i < taken.length; i++) {
    const t = taken[i];
    w.f64(t[0]);
    w.str(t[1]);
    w.f64(t[2]);
  }
  w.u32(done.length);
  for (let i = 0; i < done.length; i++) w.f64(done[i]);
  w.endFrame(frame);
}

function confirmFrom(r: WireReader): BusMessage {
  const by = r.str();
  const prefix = r.str();
  const nTaken = r.u32();
  // Each taken one takes at least 20 bytes, each settled one 8: a count past what is left is not ours (and allocates nothing).
  if (nTaken * 20 > r.left) throw new Error("confirm with more receipts than bytes");
  const taken: Taken[] = new Array(nTaken);
  for (let i = 0; i < nTaken; i++) taken[i] = [r.f64(), r.str(), r.f64()];
  const nDone = r.u32();
  if (nDone * 8 > r.left) throw new Error("confirm with more receipts than bytes");
  const done: number[] = new Array(nDone);
  for (let i = 0; i < nDone; i++) done[i] = r.f64();
  return { op: "confirm", by, prefix, taken, done };
}

type Records = Extract<BusMessage, { op: "records" }>;

function heldOnly(m: Records): boolean {
  return !m.reset && m.keep.length === 0 && m.counts.length === 0 && m.drop.length === 0 && m.acks.length === 0;
}

function heldInto(w: WireWriter, from: string, held: readonly [string, number, string][]): void {
  let chars = from.length;
  for (let i = 0; i < held.length; i++) chars += held[i][0].length + held[i][2].length;
  w.reserve(4 + 1 + 4 + 4 + held.length * 16 + 3 * chars);
  const frame = w.at;
  w.at += 4;
  w.u8(Tag.Held);
  w.str(from);
  w.u32(held.length);
  for (let i = 0; i < held.length; i++) {
    const h = held[i];
    w.str(h[0]);
    w.f64(h[1]);
    w.str(h[2]);
  }
  w.endFrame(frame);
}

function heldFrom(r: WireReader): BusMessage {
  const from = r.str();
  const n = r.u32();
  // Each copy takes at least 16 bytes: a count past what is left is not ours (and allocates nothing).
  if (n * 16 > r.left) throw new Error("records with more copies than bytes");
  const held: [string, number, string][] = new Array(n);
  for (let i = 0; i < n; i++) held[i] = [r.str(), r.f64(), r.str()];
  return { op: "records", from, reset: false, keep: [], counts: [], drop: [], held, acks: [] };
}
