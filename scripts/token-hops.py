#!/usr/bin/env python3
"""token-hops.py - how long the token stays at each node of a saturated ring, from a syscall trace.

Every daemon's sends of one token visit (its burst of multicasts, then the token) are sendmmsg
calls; the next daemon's sends start only once it holds the token. So the time from one daemon's
last sendmmsg to its successor's last sendmmsg is the successor's hop: waiting to run, receiving
what came before the token, handling the token and sending. Hops are printed per node (node i is
the successor of node i-1, node 1 of node N), median over the trace.

Capture (as root, during `devcluster-bench throughput --nodes N --size 1024 --senders 1 --duration 8`):

    pgrep -af "devclusterd --foreground --config /tmp/dcb-" | awk '{print $1, $NF}' > pids.txt
    perf record -e syscalls:sys_enter_sendmmsg -a -o hops.data -- sleep 0.3
    perf script -i hops.data -F pid,time,trace > hops.txt
    scripts/token-hops.py hops.txt pids.txt

pids.txt: one "PID CONFIG-PATH" line per daemon, the node number taken from ".../nN/...".
"""
import re
import statistics
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    nodes = {}
    for line in open(sys.argv[2]):
        parts = line.split()
        match = re.search(r'/n(\d+)/', parts[-1]) if len(parts) >= 2 else None
        if match:
            nodes[int(parts[0])] = int(match.group(1))
    if not nodes:
        sys.exit('no "PID .../nN/..." lines in ' + sys.argv[2])
    count = max(nodes.values())
    # Consecutive sends of one daemon collapse into one visit, timed by its last send.
    visits = []
    for line in open(sys.argv[1]):
        parts = line.split()
        if len(parts) < 2 or not parts[0].isdigit() or int(parts[0]) not in nodes:
            continue
        node, time = nodes[int(parts[0])], float(parts[1].rstrip(':'))
        if visits and visits[-1][0] == node:
            visits[-1][1] = time
        else:
            visits.append([node, time])
    hops = {}
    for (previous, left), (node, sent) in zip(visits, visits[1:]):
        if node == previous % count + 1:
            hops.setdefault(node, []).append((sent - left) * 1e6)
    if not hops:
        sys.exit('no token visits found (is the ring running with one sender?)')
    total = 0.0
    for node in sorted(hops):
        median = statistics.median(hops[node])
        total += median
        print(f'hop to node {node}: median {median:.0f} us over {len(hops[node])} visits')
    print(f'sum of medians (about one rotation): {total:.0f} us')


if __name__ == '__main__':
    main()
