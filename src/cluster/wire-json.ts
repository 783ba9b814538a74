import type { SessionRef } from "../channel/user-channel.js";
import type { BusMessage } from "./bus.js";
import type { ClaimAnswer, Handover } from "../session/core.js";
import { recordsOf, recordOf, rowOf, type RecordRow } from "./wire-records.js";
import type { Recalled } from "../session/resume-record.js";
import { bindRows, refsOf } from "./wire-binds.js";

/**
 * The bus messages that are not on the path of every chat message (src/cluster/wire.ts writes those in binary):
 * bindings, presence, handovers, resume records, membership. Their fields travel as a JSON array, their
 * presence payload (if any) as bytes behind it in the session's protocol.
 */
export type JsonOp = Exclude<BusMessage, { op: "owner" | "session" | "missed" | "answer" | "confirm" | "service" | "fanout" }>;

/** A protocol's payloads as bytes and back (BusWire, through the protocol's PayloadCodec). */
export interface Payloads {
  bytesOf(protocol: string, payload: unknown): Uint8Array | null;
  valueOf(protocol: string, bytes: Uint8Array | null): unknown;
}

export function jsonHead(msg: JsonOp, p: Payloads): { head: unknown[]; presence: Uint8Array | null } {
  let head: unknown[];
  let presence: Uint8Array | null = null;
  switch (msg.op) {
    case "bind": {
      const r = msg.ref;
      presence = p.bytesOf(r.protocol, r.presence);
      head = [msg.op, r.address, r.resource, r.workerId, r.serial, r.protocol, r.available, r.priority, r.copies, r.told, r.pool, r.born];
      // Last, and only when there is one: a worker from before the field reads the rest as ever.
      if (r.client !== "") head.push(r.client);
      break;
    }
    case "binds": {
      const b = bindRows(msg.refs, (proto, v) => p.bytesOf(proto, v));
      presence = b.presence;
      head = [msg.op, b.rows];
      break;
    }
    case "presence":
      presence = p.bytesOf(msg.protocol, msg.presence);
      head = [msg.op, msg.address, msg.serial, msg.available, msg.priority, msg.protocol, msg.copies];
      break;
    case "copies":
      head = [msg.op, msg.address, msg.serial, msg.on];
      break;
    case "unbind":
    case "stored":
      head = [msg.op, msg.address, msg.serial];
      break;
    case "replaced":
      head = msg.by === "" ? [msg.op, msg.address, msg.serial] : [msg.op, msg.address, msg.serial, msg.by];
      break;
    case "claim":
      head = [msg.op, msg.protocol, msg.key, msg.ask, msg.from, msg.token];
      break;
    case "claimed": {
      const a = msg.answer;
      if (a.kind === "ok") presence = p.bytesOf(a.handover.protocol, a.handover.presence);
      head = [msg.op, msg.token, a.kind, a.kind === "refused" ? a.reason : null, a.kind === "ok" ? handoverHead(a.handover) : null, msg.from];
      break;
    }
    case "park":
      presence = p.bytesOf(msg.handover.protocol, msg.handover.presence);
      head = [msg.op, handoverHead(msg.handover)];
      break;
    case "draining":
      head = [msg.op, msg.worker];
      break;
    case "settled":
      head = [msg.op, msg.refs];
      break;
    case "received":
      head = msg.resumedOn !== undefined ? [msg.op, msg.key, msg.count, msg.resumedOn, msg.copied ?? null] : [msg.op, msg.key, msg.count];
      break;
    case "records":
      head = [msg.op, msg.from, msg.reset, msg.keep.map(rowOf), msg.counts, msg.drop, msg.held, msg.acks];
      break;
    case "recall":
      head = msg.gone !== undefined ? [msg.op, msg.protocol, msg.key, msg.user, msg.from, msg.token, msg.h, msg.gone] : [msg.op, msg.protocol, msg.key, msg.user, msg.from, msg.token, msg.h];
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
    case "probe":
    case "probed":
      head = [msg.op, msg.from, msg.at];
      break;
    case "welcome":
      head = [msg.op, msg.from, msg.inc];
      break;
    case "gone":
      head = [msg.op, msg.addresses, msg.bares];
      break;
    case "moved":
      head = [msg.op, msg.from, msg.ring, msg.states, msg.done, msg.placed];
      break;
    case "stale":
      head = [msg.op, msg.topic, msg.key];
      break;
  }
  return { head, presence };
}

/** Throws on anything that is not a message jsonHead wrote. */
export function fromJsonHead(head: unknown[], presence: Uint8Array | null, p: Payloads): BusMessage {
  const op = head[0] as BusMessage["op"];
  switch (op) {
    case "bind": {
      const [, address, resource, workerId, serial, protocol, available, priority, copies, told, pool, born, client] = head as [string, string, string, string, number, string, boolean, number, boolean, boolean, boolean?, number?, unknown?];
      // A worker from before pools sends no `pool`: its sessions keep the priority rule. Nor `client`: its sessions end no other.
      const ref: SessionRef = { address, resource, workerId, serial, protocol, available, priority, presence: p.valueOf(protocol, presence), session: null, seq: 0, born: born ?? 0, client: typeof client === "string" ? client : "", copies, told, pool: pool === true };
      return { op, ref };
    }
    case "binds":
      return { op, refs: refsOf(head[1], presence, (proto, b) => p.valueOf(proto, b)) };
    case "presence": {
      const [, address, serial, available, priority, protocol, copies] = head as [string, string, number, boolean, number, string, boolean];
      return { op, address, serial, available, priority, protocol, presence: p.valueOf(protocol, presence), copies };
    }
    case "copies":
      return { op, address: head[1] as string, serial: head[2] as number, on: head[3] as boolean };
    case "unbind":
    case "stored":
      return { op, address: head[1] as string, serial: head[2] as number };
    case "replaced":
      return { op, address: head[1] as string, serial: head[2] as number, by: typeof head[3] === "string" ? head[3] : "" };
    case "claim": {
      const [, protocol, key, ask, from, token] = head as [string, string, string, unknown, string, number];
      return { op, protocol, key, ask, from, token };
    }
    case "claimed": {
      const [, token, kind, reason, h, from] = head as [string, number, ClaimAnswer["kind"], unknown, HandoverHead | null, string];
      const answer: ClaimAnswer = kind === "ok" ? { kind, handover: handoverOf(p, h!, presence) } : kind === "refused" ? { kind, reason } : { kind: "miss" };
      return { op, token, answer, from: typeof from === "string" ? from : "" };
    }
    case "park":
      return { op, handover: handoverOf(p, head[1] as HandoverHead, presence) };
    case "draining":
      return { op, worker: head[1] as string };
    case "settled": {
      const refs = head[1];
      if (!Array.isArray(refs) || !refs.every((r) => typeof r === "string")) throw new Error("settled without refs");
      return { op, refs: refs as string[] };
    }
    case "barrier":
      if (typeof head[1] !== "string" || typeof head[2] !== "number") throw new Error("barrier without a sender and token");
      return { op, from: head[1], token: head[2] };
    case "barrierDone":
      if (typeof head[1] !== "number") throw new Error("barrierDone without a token");
      return { op, token: head[1] };
    case "probe":
    case "probed":
      if (typeof head[1] !== "string" || typeof head[2] !== "number") throw new Error(`${op} without a sender and time`);
      return { op, from: head[1], at: head[2] };
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
      const [, protocol, key, user, from, token, h, gone] = head;
      if (typeof protocol !== "string" || typeof key !== "string" || typeof user !== "string" || typeof from !== "string" || typeof token !== "number") throw new Error("recall without a key");
      if (typeof h !== "number") throw new Error("recall without the client's count");
      if (gone !== undefined && typeof gone !== "string") throw new Error("recall with a bad holder");
      return gone === undefined ? { op, protocol, key, user, from, token, h } : { op, protocol, key, user, from, token, h, gone };
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
    case "moved": {
      const [, from, ring, states, done, placed] = head;
      if (typeof from !== "string" || typeof ring !== "string" || typeof done !== "boolean") throw new Error("moved without a sender");
      if (!pairs(states)) throw new Error("moved with bad states");
      if (!pairs(placed)) throw new Error("moved with bad places");
      return { op, from, ring, states, done, placed };
    }
    case "stale":
      if (typeof head[1] !== "string" || typeof head[2] !== "string") throw new Error("stale without a topic and key");
      return { op, topic: head[1], key: head[2] };
    default:
      throw new Error(`unknown bus op ${String(op)}`);
  }
}

function handoverOf(p: Payloads, h: HandoverHead, presence: Uint8Array | null): Handover {
  if (!Array.isArray(h)) throw new Error("handover without its fields");
  const [protocol, key, address, resource, serial, available, priority, wantsCopies, peersWantCopies, inbound, state, recent] = h;
  const out: Handover = { protocol, key, address, resource, serial, available, priority, presence: p.valueOf(protocol, presence), wantsCopies, peersWantCopies, inbound, state };
  // Added in session 21 at the end: an older worker sends none, and ignores it.
  if (strings(recent)) out.recent = recent;
  return out;
}

function pairs(a: unknown): a is [string, string][] {
  return Array.isArray(a) && a.every((x) => Array.isArray(x) && x.length === 2 && typeof x[0] === "string" && typeof x[1] === "string");
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

/** A Handover but its presence, which travels in the presence bytes. */
type HandoverHead = [string, string, string, string, number, boolean, number, boolean, boolean, [string, string, number, boolean][], unknown, string[]?];

function handoverHead(h: Handover): HandoverHead {
  const head: HandoverHead = [h.protocol, h.key, h.address, h.resource, h.serial, h.available, h.priority, h.wantsCopies, h.peersWantCopies, h.inbound, h.state];
  if (h.recent !== undefined) head.push(h.recent);
  return head;
}
