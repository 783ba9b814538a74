/**
 * What a heap snapshot holds, by constructor: count and self size of each kind
 * of object, largest first (Chrome DevTools' "Summary" view, without DevTools).
 * Per session when given the number of sessions the heap holds:
 *   node dist/bench/scale/heap-summary.js FILE.heapsnapshot [sessions] [top]
 */
import { readFileSync } from "node:fs";

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export interface HeapRow {
  kind: string;
  count: number;
  bytes: number;
}

/** Rows by kind: objects and closures by constructor name, the rest (strings, arrays, code, system) by V8's type. */
export function summarise(file: string): HeapRow[] {
  const s = JSON.parse(readFileSync(file, "utf8")) as Snapshot;
  const f = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = f.length;
  const iType = f.indexOf("type");
  const iName = f.indexOf("name");
  const iSize = f.indexOf("self_size");
  const rows = new Map<string, HeapRow>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType]];
    const name = s.strings[s.nodes[i + iName]];
    const kind = type === "object" || type === "closure" || type === "native" || type === "hidden" ? `${type}: ${name.slice(0, 60)}` : `(${type})`;
    let r = rows.get(kind);
    if (r === undefined) rows.set(kind, (r = { kind, count: 0, bytes: 0 }));
    r.count++;
    r.bytes += s.nodes[i + iSize];
  }
  return [...rows.values()].sort((a, b) => b.bytes - a.bytes);
}

export function formatRows(rows: HeapRow[], sessions: number, top: number): string {
  const total = rows.reduce((n, r) => n + r.bytes, 0);
  const lines = [`heap ${(total / 1048576).toFixed(1)} MiB in the snapshot${sessions > 0 ? `, ${(total / sessions).toFixed(0)} B per session` : ""}`];
  lines.push("  count      bytes   per session  kind");
  for (const r of rows.slice(0, top)) {
    const per = sessions > 0 ? `${(r.count / sessions).toFixed(2).padStart(6)}× ${(r.bytes / sessions).toFixed(0).padStart(5)} B` : "";
    lines.push(`${String(r.count).padStart(8)} ${String(r.bytes).padStart(10)} ${per.padStart(14)}  ${r.kind}`);
  }
  return lines.join("\n");
}

if (process.argv[1]?.endsWith("heap-summary.js")) {
  const [file, sessions, top] = process.argv.slice(2);
  console.log(formatRows(summarise(file), Number(sessions ?? 0), Number(top ?? 40)));
}
