#!/usr/bin/env python3
"""Where the GPU waits, from a Kineto trace written by `diffbench bench --profile TRACE.json` (with CUDA graphs
or without): GPU activity (kernels, memcpys, memsets), busy time against the trace's span, the idle gaps by
length and by the pair of activities around them, the host's CUDA runtime calls (syncs, graph launches),
and 7 ms of the GPU timeline from the middle of the run; in an eager trace (--no-cuda-graphs), which op made each
memset and which kernel followed it.

    tools/trace-gaps.py TRACE.json[.gz]"""
import collections
import gzip
import json
import sys


def main(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        ev = json.load(f)
    ev = ev.get("traceEvents", ev)
    gpu = sorted([e for e in ev if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset") and "dur" in e],
                 key=lambda e: e["ts"])
    if not gpu:
        sys.exit("no GPU activity in the trace")
    time_by_cat, count_by_cat = collections.Counter(), collections.Counter()
    for e in gpu:
        time_by_cat[e["cat"]] += e["dur"]
        count_by_cat[e["cat"]] += 1
    span = gpu[-1]["ts"] + gpu[-1]["dur"] - gpu[0]["ts"]
    busy, start, end, prev, gaps = 0, gpu[0]["ts"], gpu[0]["ts"] + gpu[0]["dur"], gpu[0], []
    for e in gpu[1:]:  # the union of busy intervals; a gap is time no activity covers
        s, t = e["ts"], e["ts"] + e["dur"]
        if s > end:
            busy += end - start
            gaps.append((s - end, prev["name"][:50], e["name"][:50]))
            start, end = s, t
        else:
            end = max(end, t)
        if t >= end:
            prev = e
    busy += end - start
    print("gpu activities %d, busy %.1f ms, span %.1f ms, idle %.1f ms" % (len(gpu), busy / 1e3, span / 1e3, (span - busy) / 1e3))
    for c in time_by_cat:
        print("  %-11s %8.1f ms %7d" % (c, time_by_cat[c] / 1e3, count_by_cat[c]))
    for lo, hi in [(0, 2), (2, 5), (5, 10), (10, 20), (20, 50), (50, 200), (200, float("inf"))]:
        g = [x for x in gaps if lo <= x[0] < hi]
        print("  gaps %g-%g us: %d, %.1f ms" % (lo, hi, len(g), sum(x[0] for x in g) / 1e3))
    by_pair, n_pair = collections.Counter(), collections.Counter()
    for g in gaps:
        if g[0] >= 5:
            by_pair[(g[1], g[2])] += g[0]
            n_pair[(g[1], g[2])] += 1
    print("gaps >= 5 us by (before, after):")
    for k, us in by_pair.most_common(25):
        print("  %7.2f ms %5d  %s  ->  %s" % (us / 1e3, n_pair[k], k[0], k[1]))
    rt, rtn = collections.Counter(), collections.Counter()
    for e in ev:
        if e.get("cat") == "cuda_runtime" and "dur" in e:
            rt[e["name"]] += e["dur"]
            rtn[e["name"]] += 1
    print("CUDA runtime calls on the host:")
    for k, us in rt.most_common(14):
        print("  %8.2f ms %6d  %s" % (us / 1e3, rtn[k], k))
    memset_sources(ev)
    mid = gpu[0]["ts"] + span * 0.5
    print("timeline, 7 ms from the middle (offset us, duration us, gap before us, kind, name; kernels after a gap < 3 us left out):")
    last = None
    for e in (e for e in gpu if mid <= e["ts"] < mid + 7000):
        gap = e["ts"] - last if last is not None else 0
        if e["dur"] > 0 and (gap >= 3 or e["cat"] != "kernel"):
            print("  %7.1f %6.1f %6.1f %s %s" % (e["ts"] - mid, e["dur"], gap, e["cat"][:6], e["name"][:70]))
        last = max(last or 0, e["ts"] + e["dur"])


def memset_sources(ev):
    """Eager traces: each host memset call by the innermost CPU op around it and the next kernel launched
    after it on that thread (in a graph's replay the memsets are nodes, with no host call to attribute)."""
    calls = sorted([e for e in ev if e.get("cat") == "cuda_runtime" and "dur" in e], key=lambda e: e["ts"])
    memsets = [e for e in calls if e["name"].startswith(("cudaMemset", "cuMemset"))]
    if not memsets:
        return
    ops = collections.defaultdict(list)
    for e in ev:
        if e.get("cat") == "cpu_op" and "dur" in e:
            ops[e.get("tid")].append(e)
    kernel_of = {e.get("args", {}).get("correlation"): e["name"] for e in ev if e.get("cat") == "kernel"}
    launches = collections.defaultdict(list)
    for e in calls:
        if "Launch" in e["name"]:
            launches[e.get("tid")].append(e)
    by_source = collections.Counter()
    for m in memsets:
        around = [o for o in ops[m.get("tid")] if o["ts"] <= m["ts"] < o["ts"] + o["dur"]]
        op = min(around, key=lambda o: o["dur"])["name"] if around else "(no op)"
        nxt = next((l for l in launches[m.get("tid")] if l["ts"] > m["ts"]), None)
        kernel = kernel_of.get(nxt.get("args", {}).get("correlation"), "?") if nxt else "-"
        by_source[(op[:45], kernel[:60])] += 1
    print("host memset calls (%d) by the op around them and the next kernel launched:" % len(memsets))
    for (op, kernel), n in by_source.most_common(15):
        print("  %6d  %s  ->  %s" % (n, op, kernel))


if __name__ == "__main__":
    main(sys.argv[1])
