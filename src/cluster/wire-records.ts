import type { ResumeRecord } from "../session/resume-record.js";

/** A ResumeRecord in a bus header: an array, so the field names do not travel with every record. */
export type RecordRow = [string, string, string, string, number, number, unknown];

/** Throws on anything that is not a RecordRow (a bus message this codec did not write). */
export function recordOf(row: unknown): ResumeRecord {
  if (!Array.isArray(row) || row.length !== 7) throw new Error("resume record is not a row");
  const [protocol, key, user, address, count, windowMs, state] = row as RecordRow;
  if (typeof protocol !== "string" || typeof key !== "string" || typeof user !== "string" || typeof address !== "string") throw new Error("resume record without its names");
  if (typeof count !== "number" || typeof windowMs !== "number") throw new Error("resume record without its counts");
  return { protocol, key, user, address, count, windowMs, state };
}

export function recordsOf(rows: unknown[]): ResumeRecord[] {
  return rows.map(recordOf);
}

export function rowOf(r: ResumeRecord): RecordRow {
  return [r.protocol, r.key, r.user, r.address, r.count, r.windowMs, r.state];
}
