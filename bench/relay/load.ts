/**
 * The load side of the relay benchmark, a child process pinned to the other
 * core. Closed loop: every requester keeps `inflight` requests outstanding.
 * Talks to the parent over IPC: "measuring" when the window opens, the result
 * when it closes, so the parent reads the server's CPU over the same window.
 */
import { Loop, type LoadResult, type LoadSpec } from "./loop.js";
import { relayLoop } from "./relay-load.js";
import { natsLoop } from "./nats-load.js";

export type { LoadResult, LoadSpec } from "./loop.js";


async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]) as LoadSpec;
  const loop = new Loop();
  const close = spec.target === "nats" ? await natsLoop(spec, loop) : await relayLoop(spec, loop);
  loop.start();
  await new Promise((r) => setTimeout(r, spec.warmupMs));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  loop.measuring = true;
  process.send!({ phase: "measuring" });
  await new Promise((r) => setTimeout(r, spec.measureMs));
  loop.measuring = false;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const result: LoadResult = {
    target: spec.target,
    roundTrips: loop.hist.n,
    errors: loop.errors,
    firstError: loop.firstError,
    seconds,
    latency: loop.hist.toJSON(),
    clientCpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
  process.send!({ phase: "done", result });
  loop.running = false;
  await new Promise((r) => setTimeout(r, 200));
  close();
  process.disconnect();
  setTimeout(() => process.exit(0), 500).unref();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
