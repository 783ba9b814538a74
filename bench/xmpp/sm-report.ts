import { fmt } from "../lib/docs.js";
import { median } from "../lib/stats.js";
import type { XmppResult } from "./run.js";

/**
 * What `--sm` prints (docs/benchmarks.md, "Stream management"): per run, the
 * clients' and the server's side of XEP-0198; at the end, the runs without
 * and with it side by side, CPU per message first.
 */

/** What must hold in a run with stream management, or why it does not. */
export function smFaults(r: XmppResult): string[] {
  const s = r.sm;
  if (s === undefined) return [];
  const out: string[] = [];
  if (r.deliveryRate < 1) out.push(`${fmt(r.deliveryRate * 100, 2)} % delivered`);
  if (s.enabled < r.loggedIn) out.push(`${r.loggedIn - s.enabled} of ${r.loggedIn} not enabled`);
  if (s.failed > 0) out.push(`${s.failed} <failed/>`);
  if (s.badAcks > 0) out.push(`${s.badAcks} wrong <a/>`);
  if ((r.slowConsumers ?? 0) > 0) out.push(`${r.slowConsumers} cut as slow consumers`);
  if (s.unackedSettled > 0) out.push(`${s.unackedSettled} stanzas still unacked after the last <r/> was answered`);
  if (Number.isNaN(s.unackedSettled) && r.target === "switchboard") out.push("the server's unacked gauge could not be read");
  return out;
}

const n = (x: number) => (Number.isNaN(x) ? "–" : x.toLocaleString("en-US"));

/** One run's stream management in a line (or "SM off"). */
export function smText(r: XmppResult): string {
  const slow = r.slowConsumers === undefined ? "" : `, slow consumers ${r.slowConsumers}`;
  const s = r.sm;
  if (s === undefined) return `SM off${slow}`;
  const faults = smFaults(r);
  return (
    `SM on (client <r/> ${s.clientEvery > 0 ? `every ${s.clientEvery} msg` : "never"}; server <r/> every ${s.policy.ackEveryStanzas} stanzas or ${s.policy.ackEveryMs} ms, maxUnacked ${s.policy.maxUnacked}): ` +
    `enabled ${n(s.enabled)}, <r/> from server ${n(s.serverRequests)} from clients ${n(s.clientRequests)}, wrong <a/> ${s.badAcks}, <failed/> ${s.failed}, ` +
    `unacked max ${n(s.unackedMax)} (${fmt(s.unackedMax / Math.max(1, r.loggedIn), 1)} per session) at end ${n(s.unackedEnd)} after settling ${n(s.unackedSettled)} (${fmt(s.settleSeconds, 1)} s)${slow} — ${faults.length === 0 ? "SM checks passed" : `SM FAULTS: ${faults.join("; ")}`}`
  );
}

const list = (xs: number[], d = 0) => xs.map((x) => fmt(x, d)).join(" · ");

/**
 * Markdown: for each load, the runs without and with stream management, their
 * CPU per message, and the ratio of the medians and of each alternating pair.
 */
export function smComparison(every: XmppResult[], command: string): string {
  const keys = [...new Set(every.map((r) => `${r.target}|${r.load}|${r.users}|${r.rate}`))];
  const withSm = every.find((r) => r.sm !== undefined)?.sm;
  const rows: string[] = [];
  for (const key of keys) {
    const group = every.filter((r) => `${r.target}|${r.load}|${r.users}|${r.rate}` === key);
    const off = group.filter((r) => r.sm === undefined);
    const on = group.filter((r) => r.sm !== undefined);
    const medOff = median(off.map((r) => r.serverUsPerMessage));
    for (const [label, rs] of [
      ["off", off],
      ["on", on],
    ] as const) {
      if (rs.length === 0) continue;
      const x = rs[0];
      const med = median(rs.map((r) => r.serverUsPerMessage));
      const pairs = label === "on" ? rs.map((r, i) => (off[i] ? r.serverUsPerMessage / off[i].serverUsPerMessage : NaN)) : [];
      const ratio = label === "on" && off.length > 0 ? `${fmt(med / medOff, 2)} (pairs ${list(pairs, 2)})` : "";
      const per1k = (f: (r: XmppResult) => number) => (label === "on" ? fmt(median(rs.map((r) => (f(r) / r.sent) * 1000)), 0) : "");
      const faults = rs.flatMap((r) => smFaults(r));
      rows.push(
        `| ${x.target} | ${fmt(x.load, 0)} | ${fmt(x.users, 0)}×${x.rate} | ${label} | ${rs.length} | ${fmt(Math.min(...rs.map((r) => r.deliveryRate)) * 100, 2)} | ${list(rs.map((r) => r.p99Ms), 1)} | ${list(rs.map((r) => r.serverUsPerMessage))} | **${fmt(med, 1)}** | ${ratio} | ${fmt(median(rs.map((r) => (r.serverCoreStealShare ?? NaN) * 100)), 1)} | ${per1k((r) => r.sm!.serverRequests)} | ${per1k((r) => r.sm!.clientRequests)} | ${label === "on" ? n(Math.max(...rs.map((r) => r.sm!.unackedMax))) : ""} | ${Math.max(...rs.map((r) => r.slowConsumers ?? NaN))} | ${label === "on" ? (faults.length === 0 ? "passed" : faults.join("; ")) : ""} |`,
      );
    }
  }
  const policy = withSm ? `Server: Switchboard's default \`xmpp.sm\` (<r/> every ${withSm.policy.ackEveryStanzas} stanzas or ${withSm.policy.ackEveryMs} ms, maxUnacked ${withSm.policy.maxUnacked}, resumeTimeoutMs ${withSm.policy.resumeTimeoutMs}); clients: enable with resume='true', answer every <r/>, ${withSm.clientEvery > 0 ? `an <r/> of their own with every ${withSm.clientEvery === 1 ? "" : `${withSm.clientEvery}th `}message` : "no <r/> of their own"}.` : "";
  return `Command: \`${command}\` — ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC. ${policy}

| server | load msg/s | users × msg/s | SM | runs | delivered % (lowest) | p99 ms (runs) | server µs/msg (runs) | median µs/msg | with ÷ without | steal % | server <r/> per 1,000 msg | client <r/> per 1,000 msg | unacked max | slow consumers | SM checks |
| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
${rows.join("\n")}`;
}
