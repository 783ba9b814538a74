import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { replaceSection, fmt } from "../lib/docs.js";
import { REPO } from "../lib/switchboard.js";
import { lineChart } from "../lib/svg.js";
import type { XmppResult } from "./run.js";

/** JSON and chart into docs/img/, the table into the XMPP section of docs/benchmarks.md. */
export function writeXmppReport(r: { date: string; command: string; runs: number; results: XmppResult[] }): void {
  const img = join(REPO, "docs", "img");
  mkdirSync(img, { recursive: true });
  writeFileSync(join(img, "xmpp-sweep.json"), JSON.stringify(r, null, 2));
  const targets = [...new Set(r.results.map((x) => x.target))];
  const series = (f: (x: XmppResult) => number) => targets.map((t) => ({ name: t, points: r.results.filter((x) => x.target === t).map((x) => [x.load, f(x)] as [number, number]) }));
  writeFileSync(join(img, "xmpp-latency.svg"), lineChart({ title: "p99 delivery latency (ms, log scale) vs load (msg/s)", series: series((x) => Math.max(0.1, x.p99Ms)), logY: true }));
  writeFileSync(join(img, "xmpp-delivery.svg"), lineChart({ title: "delivered within the deadline (%) vs load (msg/s)", series: series((x) => x.deliveryRate * 100), logY: false }));
  const rows = r.results.map(
    (x) =>
      `| ${x.target} | ${fmt(x.load, 0)} | ${fmt(x.users, 0)}×${x.rate} | ${fmt(x.loggedIn, 0)} | ${fmt(x.sent, 0)} | ${fmt(x.received, 0)} | ${fmt(x.deliveryRate * 100, 2)} | ${fmt(x.avgMs, 2)} | ${fmt(x.p50Ms, 2)} | ${fmt(x.p99Ms, 2)} | ${fmt(x.maxMs, 0)} | ${fmt(x.serverCpuSeconds, 1)} | ${fmt(x.serverUsPerMessage, 0)} | ${fmt(x.serverPeakRssMiB, 0)} | ${fmt(x.generatorCpuCores, 2)} |`,
  );
  const versions = targets.map((t) => r.results.find((x) => x.target === t)!.version).join(", ");
  const settings = targets.map((t) => `- **${t}**: ${r.results.find((x) => x.target === t)!.settings.join("; ")}.`).join("\n");
  const x0 = r.results[0];
  replaceSection(
    "XMPP",
    `Command: \`${r.command}\` — ${r.date.slice(0, 10)}; ${versions}; ${r.runs > 1 ? `medians of ${r.runs} runs` : "one run per point"}.

Seed 000's schedule: users log in (SCRAM-SHA-1; PLAIN where that is all a server offers), bind, send initial presence; once all are online each sends ${x0.messages} chat messages to random online users (bare JIDs) at its rate, its send time in the body; latency is measured on receipt. *Delivered* = received within ${fmt(5, 0)} s / sent. Server pinned to core 0, the generator (raw sockets, ${"4"} processes, each on its own 127.0.0.x source address) to core 1. Server CPU-seconds and µs per message cover the messaging phase; peak RSS is the server's VmHWM. Loads above 10,000 msg/s use 10,000 users at several messages per second: a process may hold only 20,000 open files here.

| server | load msg/s | users × msg/s | logged in | sent | received | delivered % | avg ms | p50 ms | p99 ms | max ms | server CPU-s | µs/msg | peak RSS MiB | generator cores |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.join("\n")}

![p99 latency against load](img/xmpp-latency.svg)
![delivery rate against load](img/xmpp-delivery.svg)

Raw results: [img/xmpp-sweep.json](img/xmpp-sweep.json).

Settings changed from each server's defaults (fairness):
${settings}

${XMPP_NOTES}
`,
  );
}

/** Findings from the profiles (\`--cpu-prof\`), kept here so a re-run keeps them. */
export const XMPP_NOTES = `What we found (profile of the Switchboard server at 20,000 msg/s, messaging phase only):
- Saturated at ~50 µs of CPU per message (FACTS.md: a bare ltx relay needs 24–26 µs here), so at 20,000 msg/s every message is delivered but queues build to seconds; the target (p99 < 50 ms at 20,000) is **not met** yet.
- Fixed (ours): a corked socket handed every stanza to \`writev\` as its own chunk; \`writevGeneric\` + \`writev\` were 19 % of the server's CPU. StreamConn now joins one turn's strings into one write (src/transport/stream-conn.ts).
- Left (XMPP front end, owned elsewhere): \`serializeWith\` (src/xmpp/stanza.ts) rebuilds an ltx Element per recipient and re-escapes every attribute and text node through ltx's regex escapes (escapeXML, escapeXMLText, Element.toString/write, setAttrs: ~6 % of CPU); serializing the children once per stanza and writing the start tag by hand would save most of it. The ltx SAX parse is ~8 %, the write syscalls (handleWriteReq + writeUtf8String) ~22 %, GC ~7 %; ProxyDaemon.atOwner shows ~8 % self time because XmppSession.deliver → toWire is inlined into it.`;
