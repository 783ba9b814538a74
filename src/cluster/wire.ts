import { Envelope } from "../envelope/envelope.js";
import type { PayloadCodec, PayloadCodecs } from "../envelope/payload-codec.js";
import type { SessionRef } from "../channel/user-channel.js";
import type { BusMessage, Taken } from "./bus.js";
import type { ClaimAnswer, Handover } from "../session/core.js";
import { recordsOf, recordOf, rowOf, type RecordRow } from "./wire-records.js";
import { bindRows, refsOf } from "./wire-binds.js";
import type { Recalled } from "../session/resume-record.js";

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
      case "missed":
        payload = this.payloadOf(msg.env.protocol, msg.env.payload);
        head = [msg.op, envHead(msg.env), msg.address, msg.serial, msg.by];
        break;
      case "bind": {
        const r = msg.ref;
        presence = this.payloadOf(r.protocol, r.presence);
        head = [msg.op, r.address, r.resource, r.workerId, r.serial, r.protocol, r.available, r.priority, r.copies, r.told, r.pool, r.born];
        break;
      }
      case "binds": {
        const b = bindRows(msg.refs, (p, v) => this.payloadOf(p, v));
        presence = b.presence;
        head = [msg.op, b.rows];
        break;
      }
      case "presence":
        presence = this.payloadOf(msg.protocol, msg.presence);
        head = [msg.op, msg.address, msg.serial, msg.available, msg.priority, msg.protocol, msg.copies];
        break;
      case "copies":
        head = [msg.op, msg.address, msg.serial, msg.on];
        break;
      case "unbind":
      case "replaced":
        head = [msg.op, msg.address, msg.serial];
        break;
      case "claim":
        head = [msg.op, msg.protocol, msg.key, msg.ask, msg.from, msg.token];
        break;
      case "claimed": {
        const a = msg.answer;
        if (a.kind === "ok") presence = this.payloadOf(a.handover.protocol, a.handover.presence);
        head = [msg.op, msg.token, a.kind, a.kind === "refused" ? a.reason : null, a.kind === "ok" ? handoverHead(a.handover) : null, msg.from];
        break;
      }
      case "park":
        presence = this.payloadOf(msg.handover.protocol, msg.handover.presence);
        head = [msg.op, handoverHead(msg.handover)];
        break;
      case "draining":
        head = [msg.op, msg.worker];
        break;
      case "settled":
        head = [msg.op, msg.refs];
        break;
      case "confirm":
        head = [msg.op, msg.by, msg.taken, msg.done];
        break;
      case "received":
        head = msg.resumedOn !== undefined ? [msg.op, msg.key, msg.count, msg.resumedOn, msg.copied ?? null] : [msg.op, msg.key, msg.count];
        break;
      case "records":
        head = [msg.op, msg.from, msg.reset, msg.keep.map(rowOf), msg.counts, msg.drop, msg.held, msg.acks];
        break;
      case "recall":
        head = [msg.op, msg.protocol, msg.key, msg.user, msg.from, msg.token, msg.h];
        break;
      case "recalled":
        head = [msg.op, msg.token, msg.from, msg.found === null ? null : [rowOf(msg.found.record), msg.found.holder, msg.found.held ?? []]];
        break;
      case "barrier":
        head = [msg.op, msg.from, msg.token];
        break;
      case "barrierDone":
        head = [msg.op, msg.token];
        break;
      case "welcome":
        head = [msg.op, msg.from, msg.inc];
        break;
      case "gone":
        head = [msg.op, msg.addresses, msg.bares];
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
      case "missed":
        return { op, env: this.envOf(head[1] as EnvHead, payload), address: head[2] as string, serial: head[3] as number, by: head[4] as string };
      case "bind": {
        const [, address, resource, workerId, serial, protocol, available, priority, copies, told, pool, born] = head as [string, string, string, string, number, string, boolean, number, boolean, boolean, boolean?, number?];
        // A worker from before pools sends no `pool`: its sessions keep the priority rule.
        const ref: SessionRef = { address, resource, workerId, serial, protocol, available, priority, presence: this.valueOf(protocol, presence), session: null, seq: 0, born: born ?? 0, copies, told, pool: pool === true };
        return { op, ref };
      }
      case "binds":
        return { op, refs: refsOf(head[1], presence, (p, b) => this.valueOf(p, b)) };
      case "presence": {
        const [, address, serial, available, priority, protocol, copies] = head as [string, string, number, boolean, number, string, boolean];
        return { op, address, serial, available, priority, protocol, presence: this.valueOf(protocol, presence), copies };
      }
      case "copies":
        return { op, address: head[1] as string, serial: head[2] as number, on: head[3] as boolean };
      case "unbind":
      case "replaced":
        return { op, address: head[1] as string, serial: head[2] as number };
      case "claim": {
        const [, protocol, key, ask, from, token] = head as [string, string, string, unknown, string, number];
        return { op, protocol, key, ask, from, token };
      }
      case "claimed": {
        const [, token, kind, reason, h, from] = head as [string, number, ClaimAnswer["kind"], unknown, HandoverHead | null, string];
        const answer: ClaimAnswer = kind === "ok" ? { kind, handover: this.handoverOf(h!, presence) } : kind === "refused" ? { kind, reason } : { kind: "miss" };
        return { op, token, answer, from: typeof from === "string" ? from : "" };
      }
      case "park":
        return { op, handover: this.handoverOf(head[1] as HandoverHead, presence) };
      case "draining":
        return { op, worker: head[1] as string };
      case "settled": {
        const refs = head[1];
        if (!Array.isArray(refs) || !refs.every((r) => typeof r === "string")) throw new Error("settled without refs");
        return { op, refs: refs as string[] };
      }
      case "confirm": {
        const [, by, taken, done] = head;
        const triples = Array.isArray(taken) && taken.every((t) => Array.isArray(t) && typeof t[0] === "string" && typeof t[1] === "string" && typeof t[2] === "number");
        if (typeof by !== "string" || !triples || !strings(done)) throw new Error("confirm without receipts");
        return { op, by, taken: taken as Taken[], done };
      }
      case "barrier":
        if (typeof head[1] !== "string" || typeof head[2] !== "number") throw new Error("barrier without a sender and token");
        return { op, from: head[1], token: head[2] };
      case "barrierDone":
        if (typeof head[1] !== "number") throw new Error("barrierDone without a token");
        return { op, token: head[1] };
      case "received": {
        const [, key, count, resumedOn, copied] = head;
        if (typeof key !== "string" || typeof count !== "number") throw new Error("received without a key and count");
        if (typeof resumedOn !== "string") return { op, key, count };
        return typeof copied === "number" ? { op, key, count, resumedOn, copied } : { op, key, count, resumedOn };
      }
      case "records": {
        const [, from, reset, keep, counts, drop, held, acks] = head;
        if (typeof from !== "string" || typeof reset !== "boolean" || !Array.isArray(keep) || !strings(drop)) throw new Error("records without a sender");
        if (!keyCounts(counts) || !keyCounts(acks)) throw new Error("records with bad counts");
        if (!heldCopies(held, 3)) throw new Error("records with bad held copies");
        return { op, from, reset, keep: recordsOf(keep), counts, drop, held: held as [string, number, string][], acks };
      }
      case "recall": {
        const [, protocol, key, user, from, token, h] = head;
        if (typeof protocol !== "string" || typeof key !== "string" || typeof user !== "string" || typeof from !== "string" || typeof token !== "number") throw new Error("recall without a key");
        if (typeof h !== "number") throw new Error("recall without the client's count");
        return { op, protocol, key, user, from, token, h };
      }
      case "recalled": {
        const [, token, from, found] = head as [string, number, string, [RecordRow, string, unknown] | null];
        if (typeof token !== "number" || typeof from !== "string") throw new Error("recalled without a token");
        let f: Recalled | null = null;
        if (found !== null) {
          if (!Array.isArray(found) || typeof found[1] !== "string" || !heldCopies(found[2], 2)) throw new Error("recalled with a bad record");
          f = { record: recordOf(found[0]), holder: found[1], held: found[2] as [number, string][] };
        }
        return { op, token, from, found: f };
      }
      case "welcome":
        if (typeof head[1] !== "string" || typeof head[2] !== "string") throw new Error("welcome without an incarnation");
        return { op, from: head[1], inc: head[2] };
      case "gone": {
        const [, addresses, bares] = head;
        if (!strings(addresses) || !strings(bares)) throw new Error("gone without addresses");
        return { op, addresses, bares };
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

  private handoverOf(h: HandoverHead, presence: Uint8Array | null): Handover {
    const [protocol, key, address, resource, serial, available, priority, wantsCopies, peersWantCopies, inbound, state] = h;
    return { protocol, key, address, resource, serial, available, priority, presence: this.valueOf(protocol, presence), wantsCopies, peersWantCopies, inbound, state };
  }

  private envOf(h: EnvHead, payload: Uint8Array | null): Envelope {
    const [kind, id, ref, responseFor, from, to, protocol, ttl, flags, code] = h;
    return new Envelope(kind, id, ref, responseFor, from, to, protocol, this.valueOf(protocol, payload), ttl, flags, code);
  }
}

function strings(a: unknown): a is string[] {
  return Array.isArray(a) && a.every((x) => typeof x === "string");
}

function keyCounts(a: unknown): a is [string, number][] {
  return Array.isArray(a) && a.every((c) => Array.isArray(c) && c.length === 2 && typeof c[0] === "string" && typeof c[1] === "number");
}

/** Held copies: [key, n, wire] rows (width 3) or [n, wire] rows (width 2). */
function heldCopies(a: unknown, width: 2 | 3): boolean {
  if (!Array.isArray(a)) return false;
  for (const c of a) {
    if (!Array.isArray(c) || c.length !== width || typeof c[width - 1] !== "string" || typeof c[width - 2] !== "number") return false;
    if (width === 3 && typeof c[0] !== "string") return false;
  }
  return true;
}

type EnvHead = [Envelope["kind"], string, string, string, string, string, string, number, number, string];

function envHead(e: Envelope): EnvHead {
  return [e.kind, e.id, e.ref, e.responseFor, e.from, e.to, e.protocol, e.ttl, e.flags, e.code];
}

/** A Handover but its presence, which travels in the presence bytes. */
type HandoverHead = [string, string, string, string, number, boolean, number, boolean, boolean, [string, string, number, boolean][], unknown];

function handoverHead(h: Handover): HandoverHead {
  return [h.protocol, h.key, h.address, h.resource, h.serial, h.available, h.priority, h.wantsCopies, h.peersWantCopies, h.inbound, h.state];
}
