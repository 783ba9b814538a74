/*
 * A diagnostic preload for a server under bench:xmpp (docs/benchmarks.md, session 20):
 *   PHASE_STALL_MS=100 PHASE_PROF=/tmp/p node dist/bench/xmpp/main.js ... "--server-node-args=--require $PWD/bench/xmpp/phase-probe.cjs"
 * The bench's first /metrics scrape comes ~2 s into the messaging phase (run.ts, sampleUnacked); from it:
 *   PHASE_STALL_MS=N  the loop is held N ms right after that scrape (a busy wait: a stall such as a slow
 *                     scrape or a foreign process makes), to start the phase's standing queue on demand;
 *   PHASE_PROF=PATH   a CPU profile of the next PHASE_PROF_MS ms (default 6000) is written to PATH.PID.cpuprofile
 *                     (V8's sampling profiler, PHASE_PROF_US µs between samples, default 1000), phase only: no logins;
 *   PHASE_GC=PATH     the collector's pauses in the same PHASE_PROF_MS from the scrape, by kind (count, ms), written to
 *                     PATH.PID at exit as "kind count ms" lines (a PerformanceObserver of 'gc' entries: no profiler's cost);
 *   PHASE_CANARY=PATH every 250 ms from the start, two fixed pieces of work are timed, best of three, and written to
 *                     PATH.PID at exit as "epoch-ms alu-µs mem-µs" lines: arithmetic in L1 (no allocation), and
 *                     4,096 dependent reads at random over 32 MiB (outside the caches: what memory costs now). If they
 *                     slow down, the machine did (a neighbour, the hypervisor, the clock), not the server's code or heap.
 */
const http = require("http");
const fs = require("fs");
const stallMs = Number(process.env.PHASE_STALL_MS ?? 0);
const profPath = process.env.PHASE_PROF ?? "";
const profMs = Number(process.env.PHASE_PROF_MS ?? 6000);
const profUs = Number(process.env.PHASE_PROF_US ?? 1000);
let started = false;
const emit = http.Server.prototype.emit;
http.Server.prototype.emit = function (ev, req) {
  if (ev === "request" && !started && req.url.startsWith("/metrics")) {
    started = true;
    setImmediate(begin);
  }
  return emit.apply(this, arguments);
};
const gcPath = process.env.PHASE_GC ?? "";
const gcKinds = { 1: "minor", 2: "major", 4: "incremental", 8: "weakcb" };
const gcSeen = new Map();
let gcFrom = Infinity;
let gcTo = Infinity;
if (gcPath !== "") {
  const { PerformanceObserver } = require("perf_hooks");
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.startTime < gcFrom || e.startTime > gcTo) continue;
      const k = gcKinds[e.detail?.kind ?? e.kind] ?? String(e.detail?.kind ?? e.kind);
      const v = gcSeen.get(k) ?? [0, 0];
      v[0]++;
      v[1] += e.duration;
      gcSeen.set(k, v);
    }
  });
  obs.observe({ entryTypes: ["gc"] });
  process.on("exit", () => fs.writeFileSync(`${gcPath}.${process.pid}`, [...gcSeen].map(([k, [n, ms]]) => `${k} ${n} ${ms.toFixed(1)}`).join("\n") + "\n"));
}

function begin() {
  if (gcPath !== "") {
    const { performance } = require("perf_hooks");
    gcFrom = performance.now();
    gcTo = gcFrom + profMs;
  }
  if (profPath !== "") {
    const inspector = require("inspector");
    const s = new inspector.Session();
    s.connect();
    s.post("Profiler.enable", () =>
      s.post("Profiler.setSamplingInterval", { interval: profUs }, () =>
        s.post("Profiler.start", () => {
          const t = setTimeout(() => {
            s.post("Profiler.stop", (err, r) => {
              if (!err) fs.writeFileSync(`${profPath}.${process.pid}.cpuprofile`, JSON.stringify(r.profile));
              s.disconnect();
            });
          }, profMs);
          t.unref();
        }),
      ),
    );
  }
  if (stallMs > 0) {
    const end = Date.now() + stallMs;
    while (Date.now() < end);
  }
}

const canaryPath = process.env.PHASE_CANARY ?? "";
if (canaryPath !== "") {
  const { performance } = require("perf_hooks");
  const lines = [];
  const work = new Int32Array(2048);
  const once = () => {
    const t = performance.now();
    let x = 1;
    for (let r = 0; r < 10; r++) for (let i = 0; i < 2048; i++) { x = (x * 1103515245 + 12345 + work[i]) | 0; work[i] = x; }
    return (performance.now() - t) * 1000;
  };
  // A random cycle through 8 Mi slots (Sattolo's shuffle): every read depends on the one before.
  const ring = new Int32Array(8 << 20);
  for (let i = 0; i < ring.length; i++) ring[i] = i;
  for (let i = ring.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * i);
    const t = ring[i];
    ring[i] = ring[j];
    ring[j] = t;
  }
  let at = 0;
  const chase = () => {
    const t = performance.now();
    let p = at;
    for (let k = 0; k < 4096; k++) p = ring[p];
    at = p;
    return (performance.now() - t) * 1000;
  };
  const iv = setInterval(() => {
    const us = Math.min(once(), once(), once());
    const mem = Math.min(chase(), chase(), chase());
    lines.push(`${(performance.timeOrigin + performance.now()).toFixed(1)} ${us.toFixed(1)} ${mem.toFixed(1)}`);
  }, 250);
  iv.unref();
  process.on("exit", () => fs.writeFileSync(`${canaryPath}.${process.pid}`, lines.join("\n") + "\n"));
}
