import { Envelope } from "../envelope/envelope.js";
import type { PayloadCodec, PayloadCodecs } from "../envelope/payload-codec.js";
import type { SessionRef } from "../channel/user-channel.js";
import type { BusMessage } from "./bus.js";

/**
 * BusMessage ⇄ bytes for buses between processes:
 *
 *   u32 header length | header (JSON) | payload bytes | presence bytes
 *
 * The header holds everything but the protocol payloads, whose lengths it
 * gives (-1: null). Payloads go through their protocol's PayloadCodec, so the
 * bus never parses a stanza it only has to carry.
 */
export class BusWire {
  constructor(private readonly codecs: PayloadCodecs) {}

  encode(msg: BusMessage): Uint8Array {
    let head: unknown[];
    let payload: Uint8Array | null = null;
    let presence: Uint8Array | null = null;
    switch (msg.op) {
      case "owner":
      case "answer":
        payload = this.payloadOf(msg.env.protocol, msg.env.payload);
        head = [msg.op, envHead(msg.env)];
        break;
      case "session":
        payload = this.payloadOf(msg.env.protocol, msg.env.payload);
        head = [msg.op, envHead(msg.env), msg.address, msg.serial];
        break;
      case "bind": {
        const r = msg.ref;
        presence = this.payloadOf(r.protocol, r.presence);
        head = [msg.op, r.address, r.resource, r.workerId, r.serial, r.protocol, r.available, r.priority, r.pool];
        break;
      }
      case "presence":
        presence = this.payloadOf(msg.protocol, msg.presence);
        head = [msg.op, msg.address, msg.serial, msg.available, msg.priority, msg.protocol];
        break;
      case "unbind":
      case "replaced":
        head = [msg.op, msg.address, msg.serial];
        break;
      case "settled":
        head = [msg.op, msg.refs];
        break;
    }
    head.push(payload === null ? -1 : payload.length, presence === null ? -1 : presence.length);
    const json = JSON.stringify(head);
    const jsonLen = Buffer.byteLength(json);
    const out = Buffer.allocUnsafe(4 + jsonLen + (payload?.length ?? 0) + (presence?.length ?? 0));
    out.writeUInt32BE(jsonLen, 0);
    out.write(json, 4);
    let at = 4 + jsonLen;
    if (payload !== null) {
      out.set(payload, at);
      at += payload.length;
    }
    if (presence !== null) out.set(presence, at);
    return out;
  }

  /** Throws on anything that is not a message this codec wrote. */
  decode(bytes: Uint8Array): BusMessage {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const jsonLen = buf.readUInt32BE(0);
    const head = JSON.parse(buf.toString("utf8", 4, 4 + jsonLen)) as unknown[];
    const presenceLen = head.pop() as number;
    const payloadLen = head.pop() as number;
    let at = 4 + jsonLen;
    const take = (len: number): Uint8Array | null => {
      if (len < 0) return null;
      if (at + len > buf.length) throw new Error("bus message truncated");
      const b = buf.subarray(at, at + len);
      at += len;
      return b;
    };
    const payload = take(payloadLen);
    const presence = take(presenceLen);
    const op = head[0] as BusMessage["op"];
    switch (op) {
      case "owner":
      case "answer":
        return { op, env: this.envOf(head[1] as EnvHead, payload) };
      case "session":
        return { op, env: this.envOf(head[1] as EnvHead, payload), address: head[2] as string, serial: head[3] as number };
      case "bind": {
        const [, address, resource, workerId, serial, protocol, available, priority, pool] = head as [string, string, string, string, number, string, boolean, number, boolean?];
        // A worker from before pools sends no `pool`: its sessions keep the priority rule.
        const ref: SessionRef = { address, resource, workerId, serial, protocol, available, priority, presence: this.valueOf(protocol, presence), pool: pool === true, session: null, seq: 0 };
        return { op, ref };
      }
      case "presence": {
        const [, address, serial, available, priority, protocol] = head as [string, string, number, boolean, number, string];
        return { op, address, serial, available, priority, protocol, presence: this.valueOf(protocol, presence) };
      }
      case "unbind":
      case "replaced":
        return { op, address: head[1] as string, serial: head[2] as number };
      case "settled": {
        const refs = head[1];
        if (!Array.isArray(refs) || !refs.every((r) => typeof r === "string")) throw new Error("settled without refs");
        return { op, refs: refs as string[] };
      }
      default:
        throw new Error(`unknown bus op ${String(op)}`);
    }
  }

  private codec(protocol: string): PayloadCodec {
    const c = this.codecs[protocol];
    if (c === undefined) throw new Error(`no payload codec for protocol ${protocol}`);
    return c;
  }

  private payloadOf(protocol: string, payload: unknown): Uint8Array | null {
    return payload === null || payload === undefined ? null : this.codec(protocol).encode(payload);
  }

  private valueOf(protocol: string, bytes: Uint8Array | null): unknown {
    return bytes === null ? null : this.codec(protocol).decode(bytes);
  }

  private envOf(h: EnvHead, payload: Uint8Array | null): Envelope {
    const [kind, id, ref, responseFor, from, to, protocol, ttl, flags, code] = h;
    return new Envelope(kind, id, ref, responseFor, from, to, protocol, this.valueOf(protocol, payload), ttl, flags, code);
  }
}

type EnvHead = [Envelope["kind"], string, string, string, string, string, string, number, number, string];

function envHead(e: Envelope): EnvHead {
  return [e.kind, e.id, e.ref, e.responseFor, e.from, e.to, e.protocol, e.ttl, e.flags, e.code];
}
