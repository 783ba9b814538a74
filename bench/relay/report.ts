import { replaceSection, fmt } from "../lib/docs.js";

interface Summary {
  target: string;
  roundTripsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  serverCpuPer100k: number;
  serverPeakRssMiB: number;
  errors: number;
}

/** The measured part of the Relay section; the prose around it lives in RELAY_NOTES. */
export function writeRelaySection(r: { date: string; command: string; params: Record<string, number | boolean | string> & { requesters: number; responders: number; inflight: number; payload: number; warmupMs: number; measureMs: number; runs: number; natsMux: boolean }; versions: Record<string, string>; summary: Summary[] }): void {
  const p = r.params;
  const rows = r.summary.map((s) => `| ${s.target} | ${fmt(s.roundTripsPerSec, 0)} | ${fmt(s.p50Ms, 2)} | ${fmt(s.p99Ms, 2)} | ${fmt(s.serverCpuPer100k, 2)} | ${fmt(s.serverPeakRssMiB, 0)} |`);
  const sb = r.summary.find((s) => s.target === "switchboard");
  const nats = r.summary.find((s) => s.target === "nats");
  const ratio = sb && nats ? `Switchboard / NATS round trips/s: **${(sb.roundTripsPerSec / nats.roundTripsPerSec).toFixed(2)}×** (target ≥ 1.5×).` : "";
  replaceSection(
    "Relay",
    `${r.command.startsWith("npm") ? "Command" : "Run"}: \`${r.command}\` — ${r.date.slice(0, 10)}, Node.js ${r.versions.node}, ${r.versions.natsServer}, nats.js ${r.versions.natsClient}.

${p.requesters} requester connections × ${p.inflight} requests in flight each, against ${p.responders} responder connections that echo the ${p.payload}-byte body; requester *i* asks responder *i mod ${p.responders}*. Closed loop, ${p.measureMs / 1000} s measured after ${p.warmupMs / 1000} s of warm-up; medians of ${p.runs} runs, the targets alternating within each run. Server on core 0, all clients in one Node.js process on core 1 (\`taskset\`). NATS clients: \`noAsyncTraces: true\` on every connection and ${p.natsMux ? "the shared reply inbox (mux)" : "\`noMux: true\` on every request"}, callback subscriptions for responders — the fastest nats.js settings we know (FACTS.md).

| server | round trips/s | p50 ms | p99 ms | server CPU-s per 100k round trips | server peak RSS MiB |
| --- | ---: | ---: | ---: | ---: | ---: |
${rows.join("\n")}

${ratio}

${RELAY_NOTES}`,
  );
}

/** Findings written by hand after reading the profiles; kept here so a re-run keeps them. */
export const RELAY_NOTES = `What the figures say:
- NATS is limited by its client: nats.js uses all of core 1 (client CPU is printed per run) while nats-server uses under half of core 0. Switchboard's lean bench client (on src/relay/codec.ts, one write per connection per event-loop turn) needs about 60 % of core 1, and the Switchboard server is what runs out first, at ~0.95 of its core. The comparison is end to end, clients in Node.js for both, as issue 4 asks; it is not a claim that Switchboard's server is cheaper per round trip than nats-server.
- Server CPU per round trip, from the table: Switchboard's is printed as CPU-s per 100k round trips (two frames in, two out, JSON headers, a PendingResponse per request); nats-server's with \`noMux\` includes a SUB and UNSUB per request, and with the shared inbox (\`--nats-mux\`, same round trips/s) it is about half. Until session 24 Switchboard spent ~0.7 CPU-s per 100k here and sometimes more: its PendingList's \`Map\`, used as a queue, kept every request alive for the collector once one of its tables had lived through two scavenges (benchmarks.md, session 24).
- This machine is shared with other engineers' builds and tests: the bench waits for a quiet second before each measurement and measures again (at most twice) when others used over a quarter of a core during the window; what others used is printed as "others".`;
