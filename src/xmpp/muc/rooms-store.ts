import type { MucStore } from "../../store/muc-store.js";
import type { Logger } from "../../log/logger.js";
import type { MucRooms } from "./service.js";
import type { RoomState } from "./room.js";
import { AFFILIATIONS, type Affiliation } from "./occupants.js";
import { defaultConfig } from "./room-config.js";

/**
 * A room's state as the "muc" store keeps it (JSON text), and back. Writes to one room go one after
 * another (a pool may run two queries in any order), so the last change is the one kept.
 */
export function storedRooms(store: MucStore, log: Logger): MucRooms {
  const tails = new Map<string, Promise<void>>();
  const queued = (room: string, write: () => Promise<unknown>): Promise<void> => {
    const next = (tails.get(room) ?? Promise.resolve()).then(write).then(
      () => undefined,
      (e: Error) => {
        log.warn("muc: room not written to the store", { room, error: e.message });
      },
    );
    tails.set(room, next);
    void next.then(() => {
      if (tails.get(room) === next) tails.delete(room);
    });
    return next;
  };
  return {
    async load(room) {
      // A write still on its way for this room is read after it lands.
      await tails.get(room);
      const text = await store.room(room);
      if (text === null) return null;
      const s = stateOf(text);
      if (s === null) log.warn("muc: stored room state unreadable, ignored", { room });
      return s;
    },
    save: (room, state) => queued(room, () => store.putRoom(room, JSON.stringify(state))),
    remove: (room) => queued(room, () => store.deleteRoom(room)),
  };
}

/** Null for text that is not a state this server wrote. */
export function stateOf(text: string): RoomState | null {
  try {
    const v = JSON.parse(text) as Partial<RoomState>;
    if (typeof v !== "object" || v === null || typeof v.config !== "object" || !Array.isArray(v.affiliations)) return null;
    const affiliations = v.affiliations.filter((a): a is [string, Affiliation] => Array.isArray(a) && typeof a[0] === "string" && AFFILIATIONS.includes(a[1] as Affiliation));
    return { config: { ...defaultConfig(), ...v.config }, affiliations, subject: typeof v.subject === "string" ? v.subject : "", subjectBy: typeof v.subjectBy === "string" ? v.subjectBy : "" };
  } catch {
    return null;
  }
}
