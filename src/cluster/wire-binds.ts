import type { SessionRef } from "../channel/user-channel.js";

/**
 * A `binds` bus message (many SessionRefs in one, after a membership change:
 * src/proxy/rebinder.ts) in BusWire's layout: one row per ref in the JSON
 * header, each ending with its presence's length (-1: none), and the
 * presences one after another in the message's presence bytes.
 */
export type BindRow = [string, string, string, number, string, boolean, number, boolean, boolean, boolean, number, number];

type Encode = (protocol: string, value: unknown) => Uint8Array | null;
type Decode = (protocol: string, bytes: Uint8Array | null) => unknown;

export function bindRows(refs: readonly SessionRef[], encode: Encode): { rows: BindRow[]; presence: Uint8Array | null } {
  const rows: BindRow[] = [];
  const parts: Uint8Array[] = [];
  let bytes = 0;
  for (const r of refs) {
    const p = encode(r.protocol, r.presence);
    if (p !== null) {
      parts.push(p);
      bytes += p.length;
    }
    rows.push([r.address, r.resource, r.workerId, r.serial, r.protocol, r.available, r.priority, r.copies, r.told, r.pool, r.born, p === null ? -1 : p.length]);
  }
  if (parts.length === 0) return { rows, presence: null };
  const presence = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (const p of parts) {
    presence.set(p, at);
    at += p.length;
  }
  return { rows, presence };
}

/** Throws on rows this codec did not write, or presences that do not add up. */
export function refsOf(rows: unknown, presence: Uint8Array | null, decode: Decode): SessionRef[] {
  if (!Array.isArray(rows)) throw new Error("binds without rows");
  const refs: SessionRef[] = [];
  let at = 0;
  for (const row of rows as BindRow[]) {
    if (!Array.isArray(row) || row.length !== 12 || typeof row[0] !== "string" || typeof row[2] !== "string" || typeof row[3] !== "number" || typeof row[4] !== "string") throw new Error("binds with a bad row");
    const [address, resource, workerId, serial, protocol, available, priority, copies, told, pool, born, len] = row;
    let bytes: Uint8Array | null = null;
    if (len >= 0) {
      if (presence === null || at + len > presence.length) throw new Error("binds with presences truncated");
      bytes = presence.subarray(at, at + len);
      at += len;
    }
    // Rows have no `client` (their length is checked, by workers from before too): a session binding again ends no other.
    refs.push({ address, resource, workerId, serial, protocol, available, priority, presence: decode(protocol, bytes), session: null, seq: 0, born, client: "", copies, told, pool: pool === true });
  }
  if (presence !== null && at !== presence.length) throw new Error("binds with presences left over");
  return refs;
}
