import type Database from "better-sqlite3";
import { directorySql, type DirectoryItem, type DirectoryPage, type MucDirectory } from "./muc-directory.js";
import { migrate } from "./sqlite-schema.js";
import { retrying } from "./sqlite-retry.js";

/** Schema steps of the component "muc_directory" (XEP-0045 §6.3 public rooms); append, never edit. */
const STEPS: readonly string[] = [
  `CREATE TABLE muc_directory (
     room TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     persistent INTEGER NOT NULL,
     holder TEXT NOT NULL,
     seen INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE INDEX muc_directory_by_holder ON muc_directory (holder)`,
];

/** MucDirectory in the accounts' SQLite file (every worker of the host shares it). */
export class SqliteMucDirectory implements MucDirectory {
  private readonly s;
  private readonly pages = new Map<string, Database.Statement>();

  constructor(
    private readonly db: Database.Database,
    private readonly lockTimeoutMs = 5000,
  ) {
    migrate(db, "muc_directory", STEPS);
    this.s = {
      put: db.prepare(`INSERT OR REPLACE INTO muc_directory (room, name, persistent, holder, seen) VALUES (?, ?, ?, ?, ?)`),
      del: db.prepare<[string]>(`DELETE FROM muc_directory WHERE room = ?`),
      renew: db.prepare<[number, string]>(`UPDATE muc_directory SET seen = ? WHERE holder = ? AND NOT persistent`),
      count: db.prepare<[number], { n: number }>(`SELECT COUNT(*) AS n FROM muc_directory WHERE persistent OR seen >= ?`),
      expire: db.prepare<[number]>(`DELETE FROM muc_directory WHERE NOT persistent AND seen < ?`),
    };
  }

  private run<T>(fn: () => T): Promise<T> {
    return retrying(fn, this.lockTimeoutMs);
  }

  put(room: string, name: string, persistent: boolean, holder: string, now: number): Promise<void> {
    return this.run(() => void this.s.put.run(room, name, persistent ? 1 : 0, holder, now));
  }

  remove(room: string): Promise<boolean> {
    return this.run(() => this.s.del.run(room).changes > 0);
  }

  renew(holder: string, now: number): Promise<void> {
    return this.run(() => void this.s.renew.run(now, holder));
  }

  page(q: DirectoryPage): Promise<DirectoryItem[]> {
    return this.run(() => {
      const { sql, args, backwards } = directorySql(q, false);
      let st = this.pages.get(sql);
      if (st === undefined) this.pages.set(sql, (st = this.db.prepare(sql)));
      const rows = st.all(...args) as DirectoryItem[];
      return backwards ? rows.reverse() : rows;
    });
  }

  count(liveSince: number): Promise<number> {
    return this.run(() => this.s.count.get(liveSince)!.n);
  }

  expire(before: number): Promise<number> {
    return this.run(() => this.s.expire.run(before).changes);
  }
}
