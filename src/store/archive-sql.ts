import type { ArchiveQuery } from "./archive-store.js";

/** Where a page starts: the (ts, seq) of the message named by `after` or `before`. */
export interface Cursor {
  ts: number;
  seq: number;
}

/**
 * One page's SELECT on either backend (`$n` placeholders for PostgreSQL, `?`
 * for SQLite), from the indexes (username, ts, seq) and (username, with_jid,
 * ts, seq): an equality prefix, then a range on (ts, seq) walked in index
 * order, so a page costs `max` index steps wherever it is in the archive.
 * One row more than asked says whether the page was cut (fin complete).
 */
export function pageSql(q: ArchiveQuery, after: Cursor | null, before: Cursor | null, dollar: boolean): { sql: string; args: unknown[] } {
  const args: unknown[] = [];
  const p = (v: unknown) => {
    args.push(v);
    return dollar ? `$${args.length}` : "?";
  };
  let where = `username = ${p(q.user)}`;
  if (q.with !== undefined) where += ` AND with_jid = ${p(q.with)}`;
  if (q.withResource !== undefined) where += ` AND with_resource = ${p(q.withResource)}`;
  if (q.start !== undefined) where += ` AND ts >= ${p(q.start)}`;
  if (q.end !== undefined) where += ` AND ts <= ${p(q.end)}`;
  if (after !== null) where += ` AND (ts, seq) > (${p(after.ts)}, ${p(after.seq)})`;
  if (before !== null) where += ` AND (ts, seq) < (${p(before.ts)}, ${p(before.seq)})`;
  const backwards = backward(q);
  const order = backwards ? "ts DESC, seq DESC" : "ts, seq";
  return { sql: `SELECT id, ts, stanza, real_jid AS "realJid" FROM archive WHERE ${where} ORDER BY ${order} LIMIT ${p(q.max + 1)}`, args };
}

/** The count of a whole result set (RSM max 0). */
export function countSql(q: ArchiveQuery, dollar: boolean): { sql: string; args: unknown[] } {
  const { sql, args } = pageSql({ ...q, after: undefined, before: undefined, last: false }, null, null, dollar);
  const where = sql.slice(sql.indexOf(" WHERE "), sql.indexOf(" ORDER BY "));
  return { sql: `SELECT COUNT(*) AS n FROM archive${where}`, args: args.slice(0, args.length - 1) };
}

/** Paged backwards: towards older messages from <before/> (a page before an id, or the last page). */
export function backward(q: ArchiveQuery): boolean {
  return q.after === undefined && (q.before !== undefined || q.last === true);
}
