import type Database from "better-sqlite3";
import type { MucStore } from "./muc-store.js";
import { migrate } from "./sqlite-schema.js";
import { retrying } from "./sqlite-retry.js";

/** Schema steps of the component "muc" (XEP-0045 persistent rooms); append, never edit. */
const MUC: readonly string[] = [
  `CREATE TABLE muc_rooms (
     room TEXT PRIMARY KEY,
     state TEXT NOT NULL,
     updated_at INTEGER NOT NULL
   ) WITHOUT ROWID`,
];

/** MucStore in the accounts' SQLite file. */
export class SqliteMucStore implements MucStore {
  private readonly s;

  constructor(
    db: Database.Database,
    private readonly lockTimeoutMs = 5000,
  ) {
    migrate(db, "muc", MUC);
    this.s = {
      get: db.prepare<[string], { state: string }>(`SELECT state FROM muc_rooms WHERE room = ?`),
      put: db.prepare<[string, string, number]>(`INSERT OR REPLACE INTO muc_rooms (room, state, updated_at) VALUES (?, ?, ?)`),
      del: db.prepare<[string]>(`DELETE FROM muc_rooms WHERE room = ?`),
      all: db.prepare<[], { room: string }>(`SELECT room FROM muc_rooms ORDER BY room`),
    };
  }

  private run<T>(fn: () => T): Promise<T> {
    return retrying(fn, this.lockTimeoutMs);
  }

  room(jid: string): Promise<string | null> {
    return this.run(() => this.s.get.get(jid)?.state ?? null);
  }

  putRoom(jid: string, state: string): Promise<void> {
    return this.run(() => void this.s.put.run(jid, state, Date.now()));
  }

  deleteRoom(jid: string): Promise<boolean> {
    return this.run(() => this.s.del.run(jid).changes > 0);
  }

  rooms(): Promise<string[]> {
    return this.run(() => this.s.all.all().map((r) => r.room));
  }
}
