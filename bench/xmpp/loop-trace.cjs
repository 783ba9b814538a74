/*
 * A diagnostic preload for a server under bench:xmpp (docs/benchmarks.md, session 19):
 *   LOOP_TRACE=/tmp/x node dist/bench/xmpp/main.js ... "--server-node-args=--require $PWD/bench/xmpp/loop-trace.cjs"
 * writes LOOP_TRACE.PID at exit, one line per event, epoch ms (the pump's PUMP_TIMELINE clock):
 *   gap T MS idle= cpu= oncpu= rqwait=  a 2 ms interval came MS late: the loop's idle time, the process's CPU,
 *                                       the main thread's time on CPU and waiting for it (schedstat) meanwhile
 *   gc T MS KIND                        (1 scavenge, 2 mark-compact, 4 incremental marking, 8 weak callbacks)
 *   metric T MS NAME / registry T MS    a /metrics collection (over 0.5 ms) and the whole scrape
 * bench/xmpp/loop-trace.py relates them to the deliveries' latencies.
 */
const { PerformanceObserver, performance } = require("perf_hooks");
const fs = require("fs");
const out = [];
const T0 = performance.timeOrigin;
const now = () => T0 + performance.now();
const sched = () => { const p = fs.readFileSync(`/proc/self/task/${process.pid}/schedstat`, "latin1").split(" "); return [Number(p[0]) / 1e6, Number(p[1]) / 1e6]; };
let last = now(), lastElu = performance.eventLoopUtilization(), lastCpu = process.cpuUsage(), lastSched = sched();
const iv = setInterval(() => {
  const t = now();
  const gap = t - last;
  const elu = performance.eventLoopUtilization();
  const s = sched();
  if (gap > 6) {
    const c = process.cpuUsage(lastCpu);
    out.push(`gap ${(t - gap).toFixed(1)} ${gap.toFixed(1)} idle=${(elu.idle - lastElu.idle).toFixed(1)} cpu=${((c.user + c.system) / 1000).toFixed(1)} oncpu=${(s[0] - lastSched[0]).toFixed(1)} rqwait=${(s[1] - lastSched[1]).toFixed(1)}`);
  }
  last = t; lastElu = elu; lastCpu = process.cpuUsage(); lastSched = s;
}, 2);
iv.unref();
new PerformanceObserver((l) => {
  for (const e of l.getEntries()) out.push(`gc ${(T0 + e.startTime).toFixed(1)} ${e.duration.toFixed(2)} ${e.detail ? e.detail.kind : e.kind}`);
}).observe({ entryTypes: ["gc"] });
const wrap = (obj, name, label) => {
  const f = obj[name];
  obj[name] = function (...a) {
    const t = now();
    try { return f.apply(this, a); } finally { const d = now() - t; if (d > 0.5) out.push(`${label} ${t.toFixed(1)} ${d.toFixed(2)} ${this && this.name ? this.name : ""}`); }
  };
};
wrap(fs, "readdirSync", "readdir");
try {
  const pc = require(require.resolve("prom-client", { paths: [require("path").dirname(process.argv[1] || "."), process.cwd()] }));
  for (const k of ["Gauge", "Counter", "Histogram", "Summary"]) wrap(pc[k].prototype, "get", "metric");
  wrap(pc.Registry.prototype, "metrics", "registry");
} catch (e) { out.push(`noprom 0 0 ${e.message}`); }
const http = require("http");
const emit = http.Server.prototype.emit;
http.Server.prototype.emit = function (ev, req, res) {
  if (ev === "request") {
    const t = now();
    res.on("finish", () => out.push(`http ${t.toFixed(1)} ${(now() - t).toFixed(2)} ${req.url}`));
  }
  return emit.apply(this, arguments);
};
const file = `${process.env.LOOP_TRACE || "/tmp/loop-trace"}.${process.pid}`;
process.on("exit", () => fs.writeFileSync(file, out.join("\n") + "\n"));
