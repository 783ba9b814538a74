import type pg from "pg";
import type { MucStore } from "./muc-store.js";
import type { Component } from "./postgres-schema.js";

/** XEP-0045 persistent rooms (component "muc"); append steps, never edit. */
export const MUC: Component = {
  name: "muc",
  steps: [
    `CREATE TABLE muc_rooms (
       room text PRIMARY KEY,
       state text NOT NULL,
       updated_at bigint NOT NULL
     )`,
  ],
};

export class PgMucStore implements MucStore {
  constructor(private readonly pool: pg.Pool) {}

  async room(jid: string): Promise<string | null> {
    const r = await this.pool.query<{ state: string }>("SELECT state FROM muc_rooms WHERE room = $1", [jid]);
    return r.rows[0]?.state ?? null;
  }

  async putRoom(jid: string, state: string): Promise<void> {
    await this.pool.query(
      "INSERT INTO muc_rooms (room, state, updated_at) VALUES ($1, $2, $3) ON CONFLICT (room) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
      [jid, state, Date.now()],
    );
  }

  async deleteRoom(jid: string): Promise<boolean> {
    const r = await this.pool.query("DELETE FROM muc_rooms WHERE room = $1", [jid]);
    return (r.rowCount ?? 0) > 0;
  }

  async rooms(): Promise<string[]> {
    const r = await this.pool.query<{ room: string }>("SELECT room FROM muc_rooms ORDER BY room COLLATE \"C\"");
    return r.rows.map((x) => x.room);
  }
}
