#!/usr/bin/env python3
"""latency-breakdown.py - where a message's one-way latency goes, from a syscall trace.

Splits each message of a `devcluster-bench latency` run into four legs, from system-wide syscall
tracepoints: the bench publisher's write -> node 1's read of it -> node 1's multicast send (the
wait for the token) -> node 2's write of the channel_event to its client -> that client's read.

Capture (as root, during `devcluster-bench latency --nodes 3 --size 64 --rate 1000 --duration 6`):

    C=$(ls -d /tmp/dcb-*/n2 | head -1); C=${C%/n2}
    for n in 1 2 3; do echo "n$n $(pgrep -f "devclusterd --foreground --config $C/n$n/")"; done > pids.txt
    perf record -k mono -a -o lat.data -e syscalls:sys_enter_write,syscalls:sys_enter_sendto,\
syscalls:sys_enter_sendmmsg,syscalls:sys_enter_recvmmsg,syscalls:sys_exit_recvmmsg,\
syscalls:sys_enter_read,syscalls:sys_exit_read,syscalls:sys_exit_epoll_wait,syscalls:sys_exit_poll -- sleep 1
    perf script -i lat.data -F comm,pid,tid,cpu,time,event,trace > lat.txt
    scripts/latency-breakdown.py lat.txt pids.txt

Tracing adds its own cost (totals come out ~30 us above the bench's figure); compare legs, not
totals. A multicast send is a sendmmsg on a descriptor the daemon never receives on.
"""
import collections
import re
import statistics
import sys

EVENT = re.compile(r'^\s*(\S+)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+syscalls:(\w+):\s*(.*)$')
LEGS = ['client write -> node 1 reads it', 'node 1 read -> multicast sent (token wait)',
        'multicast sent -> node 2 writes channel_event', 'node 2 write -> client reads it', 'total']


def main(trace_path, pids_path):
    node_of = {}
    for line in open(pids_path):
        fields = line.split()
        if len(fields) == 2 and fields[0].startswith('n') and fields[1].isdigit():
            node_of[int(fields[1])] = int(fields[0][1:])
    pid_of = {node: pid for pid, node in node_of.items()}
    if 1 not in pid_of or 2 not in pid_of:
        sys.exit('latency-breakdown: the pids file must name n1 and n2')
    events = []
    for line in open(trace_path):
        match = EVENT.match(line)
        if not match or match.group(1) == 'perf':
            continue
        comm, pid, _tid, _cpu, time, name, args = match.groups()
        fd = re.search(r'fd: 0x([0-9a-f]+)', args)
        events.append((float(time) * 1e6, comm, int(pid), name, int(fd.group(1), 16) if fd else None, args.strip()))
    received_on = collections.defaultdict(set)
    sent_on = collections.defaultdict(set)
    for _, _, pid, name, fd, _ in events:
        if name == 'sys_enter_recvmmsg':
            received_on[pid].add(fd)
        if name == 'sys_enter_sendmmsg':
            sent_on[pid].add(fd)
    multicast_fds = sent_on[pid_of[1]] - received_on[pid_of[1]]

    def following(start, test, window=4000):
        for index in range(start, min(len(events), start + window)):
            if test(events[index]):
                return index
        return None

    def is_bench(event):
        return event[1].startswith('devcluster-ben')

    rows = []
    for index, event in enumerate(events):
        if not (is_bench(event) and event[3] == 'sys_enter_write'):
            continue
        read = following(index, lambda e: e[2] == pid_of[1] and e[3] == 'sys_exit_read' and not e[5].startswith('0xfff'))
        if read is None:
            continue
        sent = following(read, lambda e: e[2] == pid_of[1] and e[3] == 'sys_enter_sendmmsg' and e[4] in multicast_fds)
        if sent is None:
            continue
        pushed = following(sent, lambda e: e[2] == pid_of[2] and e[3] == 'sys_enter_sendto')
        if pushed is None:
            continue
        # The next read of a whole channel_event by a bench thread (0x37 is a publish reply).
        client = following(pushed, lambda e: is_bench(e) and e[3] == 'sys_exit_read' and e[5] not in ('0x37',)
                           and not e[5].startswith('0xfff'))
        if client is None:
            continue
        stamps = [event[0], events[read][0], events[sent][0], events[pushed][0], events[client][0]]
        rows.append([stamps[i + 1] - stamps[i] for i in range(4)] + [stamps[4] - stamps[0]])
    if not rows:
        sys.exit('latency-breakdown: no complete message found in the trace')
    print(f'messages: {len(rows)}')
    for column, leg in enumerate(LEGS):
        values = sorted(row[column] for row in rows)
        print(f'{leg:46s} p50 {values[len(values) // 2]:7.1f} us  mean {statistics.mean(values):7.1f}  '
              f'p90 {values[int(len(values) * 0.9)]:7.1f}')


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
