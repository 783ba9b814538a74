import { Element, parse } from "ltx";
import { bareOf } from "../../address/address.js";
import { Room, type RoomLimits, type RoomOut } from "./room.js";
import { defaultConfig } from "./room-config.js";
import { AFFILIATIONS, ROLES, type Affiliation, type Occupant, type Role } from "./occupants.js";
import type { Kept } from "./history.js";

/*
 * A room's whole state as text, for its move to the worker that owns it after a ring change
 * (src/proxy/service-moves.ts): what the store keeps of a persistent room (configuration, affiliations,
 * subject) and what it does not (occupants with their nicks, roles, real JIDs, sessions' places, last
 * presence and occupant ids; history; the lock of a room not yet configured; the key of its occupant ids).
 * JSON, stanzas in it as XML text. It comes over the bus from another worker of this cluster: read with
 * every field checked, and a state that is not one is refused whole (null), never thrown at its reader.
 */

/** Version of this format: a state of another is refused (the room then starts afresh on its new owner). */
const V = 1;

type OccupantRow = [nick: string, jid: string, at: string, role: Role, shown: string, id: string];
type KeptRow = [el: string, chars: number, at: number];

interface Moved {
  v: number;
  idKey: string;
  config: unknown;
  affiliations: [string, Affiliation][];
  subject: string;
  subjectBy: string;
  locked: boolean;
  fresh: boolean;
  stored: boolean;
  occupants: OccupantRow[];
  history: KeptRow[];
}

export function roomText(r: Room): string {
  const m: Moved = {
    v: V,
    idKey: r.idKey,
    config: r.config,
    affiliations: [...r.affiliations],
    subject: r.subject,
    subjectBy: r.subjectBy,
    locked: r.locked,
    fresh: r.fresh,
    stored: r.stored,
    occupants: [...r.occupants.values()].map((o) => [o.nick, o.jid, o.at, o.role, o.shown.toString(), o.id]),
    history: r.history.map((k) => [k.el.toString(), k.chars, k.at]),
  };
  return JSON.stringify(m);
}

const str = (x: unknown): x is string => typeof x === "string";
const num = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);

function element(text: unknown, name: string): Element | null {
  if (!str(text)) return null;
  try {
    const el = parse(text);
    return el instanceof Element && el.name === name ? el : null;
  } catch {
    return null;
  }
}

/** The room `jid` as another worker wrote it with roomText; null for anything else. */
export function roomFrom(text: string, jid: string, out: RoomOut, limits: RoomLimits): Room | null {
  let m: Partial<Moved>;
  try {
    m = JSON.parse(text) as Partial<Moved>;
  } catch {
    return null;
  }
  if (typeof m !== "object" || m === null || m.v !== V || !str(m.idKey) || typeof m.config !== "object" || m.config === null) return null;
  if (!Array.isArray(m.affiliations) || !Array.isArray(m.occupants) || !Array.isArray(m.history) || !str(m.subject) || !str(m.subjectBy)) return null;
  const r = new Room(jid, out, limits, "");
  r.idKey = m.idKey;
  r.config = { ...defaultConfig(), ...(m.config as object) };
  for (const a of m.affiliations) {
    if (!Array.isArray(a) || !str(a[0]) || !AFFILIATIONS.includes(a[1])) return null;
    r.affiliations.set(a[0], a[1]);
  }
  r.subject = m.subject;
  r.subjectBy = m.subjectBy;
  r.locked = m.locked === true;
  r.fresh = m.fresh === true;
  r.stored = m.stored === true;
  for (const row of m.occupants) {
    if (!Array.isArray(row) || row.length !== 6) return null;
    const [nick, jid2, at, role, shownText, id] = row;
    const shown = element(shownText, "presence");
    if (!str(nick) || !str(jid2) || !str(at) || !ROLES.includes(role) || shown === null || !str(id) || r.occupants.has(nick)) return null;
    // Flood control starts a new window here: a second's count is not worth carrying.
    const o: Occupant = { nick, jid: jid2, bare: bareOf(jid2), at, role, shown, id, windowStart: 0, inWindow: 0 };
    r.occupants.set(nick, o);
    r.nickOf.set(jid2, nick);
  }
  const history: Kept[] = [];
  for (const row of m.history) {
    if (!Array.isArray(row) || row.length !== 3 || !num(row[1]) || !num(row[2])) return null;
    const el = element(row[0], "message");
    if (el === null) return null;
    history.push({ el, chars: row[1], at: row[2] });
  }
  // Kept to this worker's limit, which may be lower than the previous owner's.
  r.history = history.slice(Math.max(0, history.length - limits.historyMessages));
  return r;
}
