/**
 * `node dist/bench/key-ring.js` (npm run bench:key-ring): a pending store used as a queue — entries added under
 * rising keys, each removed a few hundred later, something young hanging off each, as PendingList and custody
 * use theirs — kept in a Map and in a KeyRing (src/pending/key-ring.ts), CPU and collector time per entry.
 * Halfway through, a burst of other allocation lets the store's current table live through two scavenges, as
 * a lull or a login storm does in the server: from then on a Map's chain of rebuilt tables keeps every entry
 * alive for the scavenger (docs/benchmarks.md, session 24). ENTRIES (default 3,000,000), INFLIGHT (300), RUNS (3).
 */
import { PerformanceObserver } from "node:perf_hooks";
import { KeyRing } from "../src/pending/key-ring.js";

const ENTRIES = Number(process.env.ENTRIES ?? 3_000_000);
const INFLIGHT = Number(process.env.INFLIGHT ?? 300);
const RUNS = Number(process.env.RUNS ?? 3);

interface Store {
  set(k: number, v: object): void;
  get(k: number): object | undefined;
  delete(k: number): unknown;
}

let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ["gc"] });

async function run(store: Store): Promise<{ ns: number; gc: number }> {
  const gc0 = gcMs;
  const t0 = process.cpuUsage();
  for (let k = 0; k < ENTRIES; k++) {
    store.set(k, { k, body: [k, { text: "x".repeat(16) + k }], more: new Array(8).fill(k) });
    if (k >= INFLIGHT) store.get(k - INFLIGHT) !== undefined && store.delete(k - INFLIGHT);
    if (k === ENTRIES >> 1) {
      // Other work allocating while the store's table stays current: two scavenges or more.
      let g: object[] = [];
      for (let j = 0; j < 2_000_000; j++) {
        g.push({ j });
        if (g.length > 1000) g = [];
      }
    }
  }
  const u = process.cpuUsage(t0);
  // The observer hears of the loop's collections once the loop has let go of the thread.
  await new Promise((r) => setTimeout(r, 50));
  return { ns: ((u.user + u.system) * 1000) / ENTRIES, gc: ((gcMs - gc0) * 1e6) / ENTRIES };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const results: Record<string, { ns: number[]; gc: number[] }> = { Map: { ns: [], gc: [] }, KeyRing: { ns: [], gc: [] } };
for (let r = 0; r < RUNS; r++) {
  for (const name of ["Map", "KeyRing"] as const) {
    const m = await run(name === "Map" ? new Map<number, object>() : new KeyRing<object>());
    results[name].ns.push(m.ns);
    results[name].gc.push(m.gc);
  }
}
for (const [name, r] of Object.entries(results)) {
  console.log(
    `${name}: ${median(r.ns).toFixed(0)} ns an entry (runs ${r.ns.map((x) => x.toFixed(0)).join(", ")}), of it in the collector's pauses ${median(r.gc).toFixed(0)} ns (${ENTRIES} entries, ${INFLIGHT} in flight)`,
  );
}
