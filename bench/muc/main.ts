/**
 * `npm run bench:muc -- …`: issue 16's room of 1,000 occupants receiving 100 messages/s (100,000
 * deliveries/s), beside a one-to-one yardstick measured in the same sitting (bench/muc/run.ts,
 * docs/benchmarks.md "A room of 1,000 occupants").
 *
 *   --occupants N   occupants of the one room (1000)     --senders S   of them post to it (4)
 *   --rate R        room messages/s, all senders (100)   --seconds T   sending phase (15)
 *   --procs P       generator processes (4)              --runs K      repeat; medians (3)
 *   --workers LIST  Switchboard's workers per configuration, e.g. 1,2 (default 1,2): 1 on core 0 with the
 *                   generator spinning on core 1; 2 over a nats-server, server and sleeping generator
 *                   sharing both cores (as bench:xmpp --workers 2 runs)
 *   --yardstick R   also bench:xmpp's one-to-one messages, N users × R/N msg/s, at R msg/s (10000; 0: none)
 *   --generator G   c (default: pump.c) or node       --deadline MS   delivered when within (5000)
 *   --server-cpu, --gen-cpu   for one worker (0 and 1)
 *   --server-node-args="A B"  more node flags for Switchboard (e.g. --cpu-prof --cpu-prof-dir=DIR)
 *   --json FILE     every run                         --markdown   the table for docs/benchmarks.md
 * Runs alternate configuration by configuration within each round, so all see the same hour of a shared machine.
 */
import { writeFileSync } from "node:fs";
import { median, medianRun } from "../lib/stats.js";
import { waitQuiet } from "../lib/proc.js";
import { benchArgs } from "../lib/args.js";
import { fmt } from "../lib/docs.js";
import { buildPump, runXmpp, type XmppResult } from "../xmpp/run.js";
import { runRoom, type RoomParams, type RoomResult } from "./run.js";

type Row = { what: string; room: RoomResult | null; xmpp: XmppResult | null };

function roomLine(r: RoomResult): string {
  return (
    `room ${r.occupants} × ${r.rate}/s, ${r.workers} worker(s): sent ${r.sent} → ${r.received}/${r.expected} (${(r.deliveryRate * 100).toFixed(2)} % in deadline, ${r.duplicates} dup)  ${Math.round(r.deliveriesPerSecond)} deliveries/s  ` +
    `p50 ${r.p50Ms.toFixed(2)} p99 ${r.p99Ms.toFixed(2)} max ${r.maxMs.toFixed(0)} ms  server ${r.serverCpuSeconds.toFixed(1)} CPU-s = ${r.serverUsPerDelivery.toFixed(1)} µs/delivery (main threads ${r.serverMainUsPerDelivery.toFixed(1)}, ${(r.serverSysShare * 100).toFixed(0)} % kernel)  ${r.serverPeakRssMiB.toFixed(0)} MiB  ` +
    `gen ${r.generatorCpuCores.toFixed(2)} cores (busy ${r.generatorBusyCores.toFixed(2)})  others ${r.otherCpuCores.toFixed(2)}  steal ${(r.serverCoreStealShare * 100).toFixed(1)} %  join ${r.joinSeconds.toFixed(1)} s (${r.joinCpuSeconds.toFixed(1)} CPU-s)  errors ${r.errors}`
  );
}

function xmppLine(r: XmppResult): string {
  return `one-to-one ${r.users} × ${r.rate}/s: sent ${r.sent} recv ${r.received} (${(r.deliveryRate * 100).toFixed(2)} %)  p50 ${r.p50Ms.toFixed(2)} p99 ${r.p99Ms.toFixed(2)} max ${r.maxMs.toFixed(0)} ms  server ${r.serverCpuSeconds.toFixed(1)} CPU-s = ${r.serverUsPerMessage.toFixed(1)} µs/msg (main threads ${(r.serverMainUsPerMessage ?? NaN).toFixed(1)})  ${r.serverPeakRssMiB.toFixed(0)} MiB  gen ${r.generatorCpuCores.toFixed(2)} (busy ${(r.generatorBusyCores ?? NaN).toFixed(2)})  others ${r.otherCpuCores.toFixed(2)}`;
}

/** The table: one line per configuration, medians over its runs (and each run's µs in parentheses). */
function table(rows: Row[], labels: string[]): string {
  const head = "| configuration | deliveries/s | delivered % (exact) | p50 ms | p99 ms | max ms | server CPU-s | µs per delivery (runs) | main threads µs per delivery | peak RSS MiB | generator cores (busy) | others cores |";
  const out = [head, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"];
  for (const what of labels) {
    const mine = rows.filter((r) => r.what === what);
    const rs = mine.map((r) => r.room).filter((r): r is RoomResult => r !== null);
    const xs = mine.map((r) => r.xmpp).filter((r): r is XmppResult => r !== null);
    if (rs.length > 0) {
      const m = medianRun(rs, (r) => r.p99Ms);
      const exact = rs.map((r) => `${fmt(r.received, 0)}/${fmt(r.expected, 0)}${r.duplicates > 0 ? ` +${r.duplicates} dup` : ""}`).join(" · ");
      out.push(`| ${what} | ${fmt(median(rs.map((r) => r.deliveriesPerSecond)), 0)} | ${fmt(median(rs.map((r) => r.deliveryRate * 100)), 2)} (${exact}) | ${fmt(median(rs.map((r) => r.p50Ms)), 2)} | ${fmt(median(rs.map((r) => r.p99Ms)), 2)} | ${fmt(median(rs.map((r) => r.maxMs)), 0)} | ${fmt(m.serverCpuSeconds, 1)} | ${fmt(median(rs.map((r) => r.serverUsPerDelivery)), 1)} (${rs.map((r) => fmt(r.serverUsPerDelivery, 1)).join(" · ")}) | ${fmt(median(rs.map((r) => r.serverMainUsPerDelivery)), 1)} | ${fmt(median(rs.map((r) => r.serverPeakRssMiB)), 0)} | ${fmt(median(rs.map((r) => r.generatorCpuCores)), 2)} (${fmt(median(rs.map((r) => r.generatorBusyCores)), 2)}) | ${fmt(median(rs.map((r) => r.otherCpuCores)), 2)} |`);
    }
    if (xs.length > 0) {
      const m = medianRun(xs, (r) => r.p99Ms);
      const exact = xs.map((r) => `${fmt(r.received, 0)}/${fmt(r.sent, 0)}`).join(" · ");
      out.push(`| ${what} | ${fmt(median(xs.map((r) => r.received / (r.messages / r.rate))), 0)} | ${fmt(median(xs.map((r) => r.deliveryRate * 100)), 2)} (${exact}) | ${fmt(median(xs.map((r) => r.p50Ms)), 2)} | ${fmt(median(xs.map((r) => r.p99Ms)), 2)} | ${fmt(median(xs.map((r) => r.maxMs)), 0)} | ${fmt(m.serverCpuSeconds, 1)} | ${fmt(median(xs.map((r) => r.serverUsPerMessage)), 1)} (${xs.map((r) => fmt(r.serverUsPerMessage, 1)).join(" · ")}) | ${fmt(median(xs.map((r) => r.serverMainUsPerMessage ?? NaN)), 1)} | ${fmt(median(xs.map((r) => r.serverPeakRssMiB)), 0)} | ${fmt(median(xs.map((r) => r.generatorCpuCores)), 2)} (${fmt(median(xs.map((r) => r.generatorBusyCores ?? NaN)), 2)}) | ${fmt(median(xs.map((r) => r.otherCpuCores)), 2)} |`);
    }
  }
  return out.join("\n");
}

async function main(): Promise<void> {
  const a = benchArgs();
  const occupants = Number(a.occupants ?? 1000);
  const runs = Number(a.runs ?? 3);
  const seconds = Number(a.seconds ?? 15);
  const yard = Number(a.yardstick ?? 10000);
  const workers = (a.workers ?? "1,2").split(",").map(Number);
  const pump = a.generator === "node" ? null : buildPump();
  const nodeArgs = a["server-node-args"] ? a["server-node-args"].split(" ") : [];
  const deadlineMs = Number(a.deadline ?? 5000);
  const procs = Number(a.procs ?? 4);
  const room = (w: number): RoomParams => ({
    occupants,
    senders: Number(a.senders ?? 4),
    rate: Number(a.rate ?? 100),
    seconds,
    deadlineMs,
    procs,
    rampMs: Number(a.ramp ?? Math.max(2, occupants / 500)) * 1000,
    // One worker: its core, the generator spinning on the other. Two: both cores shared, the pump sleeping (bench:xmpp --workers 2).
    serverCpu: w === 1 ? (a["server-cpu"] ?? "0") : "0,1",
    genCpu: w === 1 ? (a["gen-cpu"] ?? "1") : "0,1",
    workers: w,
    nodeArgs,
    pump,
    spin: pump !== null && w === 1,
  });
  const configs: { what: string; run: () => Promise<Row> }[] = [];
  for (const w of workers) {
    const what = `room of ${occupants}, ${a.rate ?? 100} msg/s, ${w} worker${w === 1 ? " (core 0)" : "s + nats-server (both cores)"}`;
    configs.push({ what, run: async () => ({ what, room: await runRoom(room(w)), xmpp: null }) });
  }
  if (yard > 0) {
    // The same connections (N users) and generator, one-to-one chat messages at a rate one worker holds.
    const what = `one-to-one, ${occupants} users × ${yard / occupants} msg/s = ${yard} msg/s, 1 worker (core 0)`;
    const rate = yard / occupants;
    configs.push({
      what,
      run: async () => ({
        what,
        room: null,
        xmpp: await runXmpp({ target: "switchboard", users: occupants, messages: Math.round(rate * seconds), rate, rampMs: Math.max(2, occupants / 1000) * 1000, deadlineMs, procs, host: "127.0.0.1", domain: "localhost", nodeArgs, serverCpu: a["server-cpu"] ?? "0", genCpu: a["gen-cpu"] ?? "1", workers: 1, pump, spin: pump !== null, sm: false, smEvery: 1 }),
      }),
    });
  }
  const rows: Row[] = [];
  const loads: string[] = [];
  for (let k = 0; k < runs; k++) {
    for (const c of configs) {
      await waitQuiet();
      loads.push(`${new Date().toISOString().slice(11, 19)} load ${(await import("node:os")).loadavg().map((x) => x.toFixed(2)).join(" ")}`);
      let row: Row;
      try {
        row = await c.run();
      } catch (e) {
        console.log(`${c.what}: failed: ${(e as Error).message}`);
        continue;
      }
      rows.push(row);
      console.log(row.room !== null ? roomLine(row.room) : xmppLine(row.xmpp!));
    }
  }
  console.log(`\nload averages before each run: ${loads.join("; ")}`);
  const md = table(rows, configs.map((c) => c.what));
  console.log(`\n${md}`);
  if (a.json) writeFileSync(a.json, JSON.stringify({ date: new Date().toISOString(), command: `npm run bench:muc -- ${process.argv.slice(2).join(" ")}`, loads, rows }, null, 2));
  const settings = rows.find((r) => r.room !== null)?.room?.settings;
  if (settings !== undefined) console.log(`\nSwitchboard's settings (room runs):\n${settings.map((s) => `- ${s}`).join("\n")}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
