import type pg from "pg";
import { directorySql, type DirectoryItem, type DirectoryPage, type MucDirectory } from "./muc-directory.js";
import type { Component } from "./postgres-schema.js";

/** XEP-0045 §6.3 public rooms (component "muc_directory"); append steps, never edit. As in SQLite (sqlite-muc-directory.ts). */
export const MUC_DIRECTORY: Component = {
  name: "muc_directory",
  steps: [
    `CREATE TABLE muc_directory (
       room text PRIMARY KEY,
       name text NOT NULL,
       persistent boolean NOT NULL,
       holder text NOT NULL,
       seen bigint NOT NULL
     );
     CREATE INDEX muc_directory_by_holder ON muc_directory (holder);
     CREATE INDEX muc_directory_by_room ON muc_directory (room COLLATE "C")`,
  ],
};

export class PgMucDirectory implements MucDirectory {
  constructor(private readonly pool: pg.Pool) {}

  async put(room: string, name: string, persistent: boolean, holder: string, now: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO muc_directory (room, name, persistent, holder, seen) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (room) DO UPDATE SET name = excluded.name, persistent = excluded.persistent, holder = excluded.holder, seen = excluded.seen`,
      [room, name, persistent, holder, now],
    );
  }

  async remove(room: string): Promise<boolean> {
    return ((await this.pool.query("DELETE FROM muc_directory WHERE room = $1", [room])).rowCount ?? 0) > 0;
  }

  async renew(holder: string, now: number): Promise<void> {
    await this.pool.query("UPDATE muc_directory SET seen = $1 WHERE holder = $2 AND NOT persistent", [now, holder]);
  }

  async page(q: DirectoryPage): Promise<DirectoryItem[]> {
    const { sql, args, backwards } = directorySql(q, true);
    const rows = (await this.pool.query<DirectoryItem>(sql, args)).rows.map((r) => ({ room: r.room, name: r.name }));
    return backwards ? rows.reverse() : rows;
  }

  async count(liveSince: number): Promise<number> {
    const r = await this.pool.query<{ n: string }>("SELECT count(*) AS n FROM muc_directory WHERE persistent OR seen >= $1", [liveSince]);
    return Number(r.rows[0].n);
  }

  async expire(before: number): Promise<number> {
    return (await this.pool.query("DELETE FROM muc_directory WHERE NOT persistent AND seen < $1", [before])).rowCount ?? 0;
  }
}
