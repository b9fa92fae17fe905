#!/usr/bin/env python3
"""GPU kernel time by kernel name, from a Kineto trace written by `diffbench bench --profile TRACE.json`
(best with --no-cuda-graphs, so that kernels are traced one by one).

    tools/trace-kernels.py TRACE.json [LABEL [N]]

First line: LABEL, the total GPU kernel time and the number of launches; then the N largest (default 45)
kernels by time: ms, share, launches, name (cut at 110 characters)."""
import collections
import json
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    label = sys.argv[2] if len(sys.argv) > 2 else sys.argv[1]
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 45
    events = json.load(open(sys.argv[1]))
    events = events.get("traceEvents", events) if isinstance(events, dict) else events
    time = collections.Counter()
    count = collections.Counter()
    for e in events:
        if e.get("cat") == "kernel" and "dur" in e:
            time[e["name"][:110]] += e["dur"]
            count[e["name"][:110]] += 1
    total = sum(time.values()) or 1
    print("%s: %.1f ms of GPU kernels, %d launches" % (label, total / 1e3, sum(count.values())))
    for name, us in time.most_common(top):
        print("%8.2f ms %5.1f %% %6d  %s" % (us / 1e3, 100 * us / total, count[name], name))


if __name__ == "__main__":
    main()
