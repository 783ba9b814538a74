import type { SessionRef } from "../channel/session-ref.js";
import type { BusMessage } from "../cluster/bus.js";
import type { PendingResponse, Requester } from "../pending/pending-list.js";
import { bareOf } from "../address/address.js";

/** Addresses per "gone" message: a few tens of KiB, far below NATS's max_payload. */
const PER_MESSAGE = 1000;

/**
 * An owner dropped these sessions because their worker died (left the ring or
 * restarted): the "gone" messages that tell every worker, so that requests to
 * them fail at once instead of at their timeout. `stillBound` says whether a
 * user has a session left here; a user with none goes by its bare address too
 * (a request to it had nobody else to reach). One message per worker per
 * membership change, split only past PER_MESSAGE addresses.
 */
export function goneMessages(dropped: readonly SessionRef[], stillBound: (bare: string) => boolean): Extract<BusMessage, { op: "gone" }>[] {
  const out: Extract<BusMessage, { op: "gone" }>[] = [];
  if (dropped.length === 0) return out;
  const bares = new Set<string>();
  for (const r of dropped) {
    const bare = bareOf(r.address);
    if (!stillBound(bare)) bares.add(bare);
  }
  const all = [...bares];
  for (let i = 0; i < Math.max(dropped.length, all.length); i += PER_MESSAGE) {
    out.push({ op: "gone", addresses: dropped.slice(i, i + PER_MESSAGE).map((r) => r.address), bares: all.slice(i, i + PER_MESSAGE) });
  }
  return out;
}

/**
 * The requests, among those of `requesters`, sent to an address that went (a full one, or a bare one
 * with nobody left): each is handed to `fail`, which unlinks it. One pass over what is pending, at a
 * membership change only.
 */
export function failGone(
  requesters: Iterable<Requester>,
  addresses: readonly string[],
  bares: readonly string[],
  fail: (p: PendingResponse) => void,
): number {
  const gone = new Set(addresses);
  for (const b of bares) gone.add(b);
  let n = 0;
  for (const r of requesters) {
    for (let p = r.firstPending; p !== null; ) {
      const next = p.senderNext;
      if (gone.has(p.recipient)) {
        fail(p);
        n++;
      }
      p = next;
    }
  }
  return n;
}
