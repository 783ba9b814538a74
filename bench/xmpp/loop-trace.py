#!/usr/bin/env python3
"""Relates a server's loop trace (bench/xmpp/loop-trace.cjs) to the pump's deliveries (PUMP_TIMELINE).

  python3 bench/xmpp/loop-trace.py TRACE.PID 'TIMELINE.*' [SCHED.txt CLOCKOFF]

Prints the phase's p50/p99, each 250 ms with a delivery over 50 ms, and the trace's events (gaps over
20 ms, GC over 5 ms, scrapes) in seconds from the phase's first send. With the text of
`perf record -k mono -e sched:sched_switch -C <server cpu>` (perf script -F time,event,trace) and the
offset of the epoch from CLOCK_MONOTONIC, also who ran on the server's core during each gap over 50 ms.
"""
import glob, re, sys

trace, tl = sys.argv[1], sys.argv[2]
ev = []
for l in open(trace):
    p = l.split()
    if len(p) >= 3:
        ev.append((float(p[1]), p[0], float(p[2]), " ".join(p[3:])))
ev.sort()
arr = sorted(tuple(map(float, l.split())) for f in glob.glob(tl) for l in open(f))
t0 = arr[0][0] - arr[0][1]
lats = sorted(x[1] for x in arr)
print(f"deliveries {len(arr)}  p50 {lats[len(lats) // 2]:.1f} ms  p99 {lats[int(len(lats) * 0.99)]:.1f} ms")
b = {}
for a, lat in arr:
    b.setdefault(int((a - t0) // 250), []).append(lat)
for k, v in sorted(b.items()):
    if max(v) > 50:
        print(f"  {k * 0.25:6.2f} s  max {max(v):8.1f} ms  {sum(1 for x in v if x > 50)} of {len(v)} over 50 ms")

runs = None
if len(sys.argv) > 4:
    off = float(open(sys.argv[4]).read())
    pat = re.compile(r"\s*([\d.]+): sched:sched_switch: .*?==> next_comm=(.*?) next_pid=(\d+)")
    runs = []
    for l in open(sys.argv[3]):
        m = pat.match(l)
        if m:
            runs.append((((float(m.group(1)) + off) * 1000 - t0) / 1000, f"{m.group(2)}/{m.group(3)}"))

def who(lo, hi):
    use = {}
    for (t, w), (t2, _) in zip(runs, runs[1:]):
        a, c = max(t, lo), min(t2, hi)
        if c > a:
            use[w] = use.get(w, 0) + (c - a)
    return ", ".join(f"{w} {ms * 1000:.0f}" for w, ms in sorted(use.items(), key=lambda x: -x[1])[:6])

print("events, s from the first send:")
for t, kind, d, rest in ev:
    if t < t0 - 1000 or (kind == "gap" and d < 20) or (kind == "gc" and d < 5) or kind == "metric":
        continue
    line = f"  {(t - t0) / 1000:8.3f} {kind:8} {d:9.2f} {rest}"
    if runs is not None and kind == "gap" and d >= 50:
        line += f"  [core: {who((t - t0) / 1000, (t - t0 + d) / 1000)} ms]"
    print(line)
