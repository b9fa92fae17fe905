#!/usr/bin/env python3
"""GPU kernel time by the ATen op (and input shapes) that launched it, from a Kineto trace written by
`diffbench bench --profile TRACE.json` (which records input shapes).

    tools/trace-ops.py TRACE.json [KERNEL_SUBSTRING [N [OP_SUBSTRING]]]

Prints the N largest (default 14) groups by innermost op, then by op chain (up to three ops) with
shapes. Kernels launched outside ATen ops (the own CUDA kernels, cuDNN's attention, some cuBLASLt
GEMMs) show as '?' (no runtime call found) or '' (no enclosing op)."""
import collections
import json
import sys


def owners(events):
    """Correlation id of each CUDA runtime call -> the chain of ATen ops enclosing it, innermost first."""
    ops = [e for e in events if e.get('cat') == 'cpu_op' and 'dur' in e]
    calls = [e for e in events if e.get('cat') == 'cuda_runtime' and 'args' in e]
    by_thread = collections.defaultdict(list)
    for i, e in enumerate(ops):  # at equal start times: ops before calls, longer ops first
        by_thread[e.get('tid')].append((e['ts'], 0, -e['dur'], i))
    for i, e in enumerate(calls):
        by_thread[e.get('tid')].append((e['ts'], 1, 0, i))
    owner = {}
    for items in by_thread.values():
        items.sort()
        stack = []
        for ts, kind, _, i in items:
            while stack and ops[stack[-1]]['ts'] + ops[stack[-1]]['dur'] < ts:
                stack.pop()
            if kind == 0:
                stack.append(i)
            else:
                chain = [ops[j]['name'] + str(ops[j]['args'].get('Input Dims', ''))[:70] for j in reversed(stack[-3:])]
                owner[calls[i]['args'].get('correlation')] = ' <- '.join(chain)
    return owner


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        trace = json.load(f)
    pattern = argv[2] if len(argv) > 2 else ''
    top = int(argv[3]) if len(argv) > 3 else 14
    op_filter = argv[4] if len(argv) > 4 else None
    events = trace['traceEvents'] if isinstance(trace, dict) else trace
    owner = owners(events)
    by_chain = collections.defaultdict(lambda: [0.0, 0])
    by_op = collections.defaultdict(lambda: [0.0, 0])
    for k in events:
        if k.get('cat') != 'kernel' or pattern not in k['name']:
            continue
        chain = owner.get(k['args'].get('correlation'), '?')
        if op_filter and op_filter not in chain:
            continue
        for table, key in ((by_chain, chain), (by_op, chain.split('[')[0])):
            table[key][0] += k['dur'] / 1000.0
            table[key][1] += 1
    for title, table in (('by innermost op', by_op), ('by op chain with shapes', by_chain)):
        print('-- ' + title)
        for key, (ms, n) in sorted(table.items(), key=lambda x: -x[1][0])[:top]:
            print('%8.2f ms %7d  %s' % (ms, n, key[:230]))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
