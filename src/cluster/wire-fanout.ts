import { Envelope, Kind } from "../envelope/envelope.js";
import type { BusMessage } from "./bus.js";
import type { WireReader, WireWriter } from "./wire-buf.js";

/*
 * The bus messages of a protocol's services (src/proxy/services.ts, XEP-0045 rooms), in BusWire's binary
 * layout (wire.ts), behind their tag:
 *
 *   service: str via | envelope
 *   fanout:  u32 n | n × str (the addresses) | u32 m | m × envelope
 *   envelope: u8 kind | f64 ttl | u32 flags | 7 × str (id, ref, responseFor, from, to, protocol, code)
 *             | u8 payload (0 none, 1 bytes, 2 text) | the payload as bytes or str
 *
 * `service` (to a room's owner) carries the worker of the sender's session; `fanout` (from a room to the
 * worker of some of its occupants) the full addresses of the occupants there, and each payload once for all
 * of them: a room of 1,000 occupants on two workers costs two bus messages per message, and a newcomer's
 * occupant list (999 presences to one address) one bus message, not 999.
 */

const Payload = { None: 0, Bytes: 1, Text: 2 } as const;

/** How BusWire turns a protocol's payload into bytes or text and back. */
export interface EnvPayloads {
  /** The payload as text (a codec with encodeText, or a text that came over the bus unread) or as bytes; both null: none. */
  payloadOut(e: Envelope): { text: string | null; bytes: Uint8Array | null };
  /** Text is decoded where it is first read (WireText). */
  payloadIn(protocol: string, text: string | null, bytes: Uint8Array | null): unknown;
}

export type ServiceOp = Extract<BusMessage, { op: "service" | "fanout" }>;

/** u8 kind, f64 ttl, u32 flags, 7 string lengths, u8 payload kind and its length. */
const ENV_FIXED = 1 + 8 + 4 + 7 * 4 + 1 + 4;

/** Appends one message (its u32 length first); `tag` is BusWire's for the op. */
export function serviceOpInto(w: WireWriter, tag: number, msg: ServiceOp, p: EnvPayloads): void {
  const envs = msg.op === "service" ? [msg.env] : msg.envs;
  const list = msg.op === "service" ? [msg.via] : msg.to;
  // Every payload first: the message is written after one reserve of its largest size (wire-buf.ts).
  const out = envs.map((e) => p.payloadOut(e));
  let bytes = 4 + 1 + 4 + 4 + 4 * list.length;
  let chars = 0;
  for (let i = 0; i < list.length; i++) chars += list[i].length;
  for (let i = 0; i < envs.length; i++) {
    const e = envs[i];
    const o = out[i];
    chars += e.id.length + e.ref.length + e.responseFor.length + e.from.length + e.to.length + e.protocol.length + e.code.length;
    bytes += ENV_FIXED + (o.text !== null ? 3 * o.text.length : o.bytes !== null ? o.bytes.length : 0);
  }
  w.reserve(bytes + 3 * chars);
  const frame = w.at;
  w.at += 4;
  w.u8(tag);
  if (msg.op === "service") w.str(msg.via);
  else {
    w.u32(list.length);
    for (let i = 0; i < list.length; i++) w.str(list[i]);
    w.u32(envs.length);
  }
  for (let i = 0; i < envs.length; i++) envInto(w, envs[i], out[i]);
  w.endFrame(frame);
}

function envInto(w: WireWriter, e: Envelope, o: { text: string | null; bytes: Uint8Array | null }): void {
  w.u8(e.kind);
  w.f64(e.ttl);
  w.u32(e.flags);
  w.str(e.id);
  w.str(e.ref);
  w.str(e.responseFor);
  w.str(e.from);
  w.str(e.to);
  w.str(e.protocol);
  w.str(e.code);
  if (o.text !== null) {
    w.u8(Payload.Text);
    w.text(o.text);
  } else if (o.bytes !== null) {
    w.u8(Payload.Bytes);
    w.bytes(o.bytes);
  } else w.u8(Payload.None);
}

/** Reads what serviceOpInto wrote after the tag; throws on anything else. */
export function serviceOpFrom(r: WireReader, fanout: boolean, p: EnvPayloads): BusMessage {
  if (!fanout) {
    const via = r.str();
    return { op: "service", via, env: envFrom(r, p) };
  }
  const n = r.u32();
  // Each string takes at least 4 bytes: a count past what is left is not ours (and allocates nothing).
  if (n * 4 > r.left) throw new Error("fanout message with a bad recipient count");
  const to: string[] = new Array(n);
  for (let i = 0; i < n; i++) to[i] = r.str();
  const m = r.u32();
  // An envelope takes at least ENV_FIXED bytes.
  if (m === 0 || m * (ENV_FIXED - 4) > r.left) throw new Error("fanout message with a bad envelope count");
  const envs: Envelope[] = new Array(m);
  for (let i = 0; i < m; i++) envs[i] = envFrom(r, p);
  return { op: "fanout", envs, to };
}

function envFrom(r: WireReader, p: EnvPayloads): Envelope {
  const kind = r.u8();
  if (kind > Kind.Presence) throw new Error(`unknown envelope kind ${kind}`);
  const ttl = r.f64();
  const flags = r.u32();
  const id = r.str();
  const ref = r.str();
  const responseFor = r.str();
  const from = r.str();
  const to = r.str();
  const protocol = r.str();
  const code = r.str();
  const has = r.u8();
  let payload: unknown = null;
  if (has === Payload.Text) payload = p.payloadIn(protocol, r.str(), null);
  else if (has === Payload.Bytes) payload = p.payloadIn(protocol, null, r.view(r.u32()));
  else if (has !== Payload.None) throw new Error("service message with a bad payload kind");
  return new Envelope(kind as Kind, id, ref, responseFor, from, to, protocol, payload, ttl, flags, code);
}
