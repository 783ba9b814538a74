#!/usr/bin/env python3
"""Names V8's generated code in a callgrind dump (docs/benchmarks.md, session 18).

callgrind shows JIT code as bare addresses (???:0x...); node run with --perf-basic-prof writes
/tmp/perf-PID.map (start, size, name of each code object), which names them. Run
bench:xmpp-path-callgrind with KEEP=1 NODE_ARGS="--predictable --perf-basic-prof", then:

  bench/callgrind-jit.py DUMP /tmp/perf-PID.map [inclusive] [MESSAGES]

prints instructions per message (MESSAGES, default 2000) and name, exclusive by default, largest first,
counts of one name summed (exclusive) or its largest (inclusive). Two such lists (SM on and off) diffed
name by name show where a mode's instructions go. Code moved or freed during the run keeps the name it
last had at its address: a rough map, good for the large items.
"""
import bisect
import collections
import re
import subprocess
import sys

dump, perf_map = sys.argv[1], sys.argv[2]
inclusive = len(sys.argv) > 3 and sys.argv[3] == "inclusive"
messages = float(sys.argv[4]) if len(sys.argv) > 4 else 2000.0

by_start = {}
for line in open(perf_map):
    start, size, name = line.rstrip("\n").split(" ", 2)
    by_start[int(start, 16)] = (int(size, 16), name)
entries = sorted((a, s, n) for a, (s, n) in by_start.items())
starts = [e[0] for e in entries]


def name_of(addr):
    i = bisect.bisect_right(starts, addr) - 1
    if i >= 0:
        a, s, n = entries[i]
        if a <= addr < a + s:
            return n
    return "?%x" % addr


out = subprocess.run(["callgrind_annotate", "--inclusive=" + ("yes" if inclusive else "no"), "--threshold=100", dump], capture_output=True, text=True, check=True).stdout
counts = collections.Counter()
for line in out.splitlines():
    m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(.*)$", line)
    if not m:
        continue
    n = int(m.group(1).replace(",", ""))
    fn = m.group(2)
    jit = re.match(r"\?\?\?:0x([0-9a-f]+) \[\?\?\?\]", fn)
    fn = name_of(int(jit.group(1), 16)) if jit else re.sub(r"^\S*?:", "", fn, count=1)
    counts[fn] = max(counts[fn], n) if inclusive else counts[fn] + n
for fn, n in counts.most_common():
    print(f"{n / messages:10.0f} {fn}")
