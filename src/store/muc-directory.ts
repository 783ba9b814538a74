/**
 * XEP-0045 §6.3: the public rooms of the MUC service, across every worker and host (schema component
 * "muc_directory"). Each room's owner worker writes its row, off the forwarding path, when the room
 * becomes public, is renamed, made hidden, or ends; any worker reads a page to answer the service's
 * disco#items. A temporary room lives only as long as its worker: its row carries its worker's
 * `holder` token and a lease (`seen`) the worker renews; a worker that died stops renewing, and its
 * temporary rooms fall out of the listing when the lease lapses. Persistent rooms need no lease (the
 * store keeps them; their new owner reads them at their first stanza).
 */
export interface DirectoryItem {
  room: string;
  name: string;
}

export interface DirectoryPage {
  /** A page in address order: after `after`, before `before`, or the last one; at most `max` + 1 rows (the extra one: the page was cut). */
  liveSince: number;
  after?: string;
  before?: string;
  last?: boolean;
  max: number;
}

export interface MucDirectory {
  /** Lists (or re-lists) a public room. */
  put(room: string, name: string, persistent: boolean, holder: string, now: number): Promise<void>;
  /** Resolves to whether it was listed. */
  remove(room: string): Promise<boolean>;
  /** The holder's temporary rooms are alive at `now`. */
  renew(holder: string, now: number): Promise<void>;
  /** Rooms listed: persistent ones, and temporary ones seen at or after `liveSince`; oldest address first. */
  page(q: DirectoryPage): Promise<DirectoryItem[]>;
  count(liveSince: number): Promise<number>;
  /** Removes temporary rooms not seen since `before` (their worker is gone); resolves to how many. */
  expire(before: number): Promise<number>;
}

/** The WHERE and ORDER of a page, on either backend (`$n` for PostgreSQL, `?` for SQLite); `room` in binary order on both. */
export function directorySql(q: DirectoryPage, dollar: boolean): { sql: string; args: unknown[]; backwards: boolean } {
  const args: unknown[] = [];
  const p = (v: unknown) => {
    args.push(v);
    return dollar ? `$${args.length}` : "?";
  };
  const room = dollar ? `room COLLATE "C"` : "room";
  let where = `(persistent OR seen >= ${p(q.liveSince)})`;
  if (q.after !== undefined) where += ` AND ${room} > ${p(q.after)}`;
  if (q.before !== undefined) where += ` AND ${room} < ${p(q.before)}`;
  const backwards = q.after === undefined && (q.before !== undefined || q.last === true);
  return { sql: `SELECT room, name FROM muc_directory WHERE ${where} ORDER BY ${room}${backwards ? " DESC" : ""} LIMIT ${p(q.max + 1)}`, args, backwards };
}
