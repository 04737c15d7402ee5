#!/usr/bin/env python3
"""Sets per second through one control connection of a running one-node devclusterd.

Fills the local state table with --table devices first (pipelined, not timed), then times
--count devstate_set requests sent one at a time (each waits for its answer) on one connection,
alternating two states on ten devices (every request is a change), and prints the rate. The daemon's persistence is the
only part of the answer's cost that grows with the table, so the rate at a large table against
the rate at a small one shows whether that cost grows.

With --pid, also prints the daemon's CPU time (all its threads, from /proc/PID/stat) and the
bytes it had written to storage (write_bytes, /proc/PID/io) per 1,000 timed sets: less sensitive
than the rate to other work on the machine.

Usage: scripts/devstate-set-rate.py --socket PATH [--pid PID] [--table 10000] [--count 3000]
scripts/devstate-set-rate.sh starts a one-node daemon for it. To use your own, start it with a
configuration whose [options] name a fresh state_dir and control_socket (devclusterd --foreground --config FILE).
"""

import argparse
import json
import os
import socket
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--table", type=int, default=10000)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--pid", type=int)
    options = parser.parse_args()

    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(30)
    connection.connect(options.socket)
    reader = connection.makefile("rb")

    def request(sequence, device, state):
        line = {"id": sequence, "cmd": "devstate_set", "args": {"device": device, "state": state}}
        return (json.dumps(line) + "\n").encode()

    # Fill the table, 500 requests in flight at most.
    sent = answered = 0
    while answered < options.table:
        while sent < options.table and sent - answered < 500:
            connection.sendall(request(sent, "Custom:fill%d" % sent, "INUSE"))
            sent += 1
        answer = json.loads(reader.readline())
        if not answer.get("ok"):
            raise SystemExit("fill failed: %s" % answer)
        answered += 1

    # Let the daemon write the fill before the timed part starts.
    time.sleep(3.0)

    def cpu_seconds():
        if options.pid is None:
            return 0.0
        with open("/proc/%d/stat" % options.pid) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def written_bytes():
        if options.pid is None:
            return 0
        with open("/proc/%d/io" % options.pid) as io:
            for line in io:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
        return 0

    cpu_before = cpu_seconds()
    written_before = written_bytes()
    started = time.monotonic()
    not_persisted = 0
    for sequence in range(options.count):
        state = "INUSE" if (sequence // 10) % 2 == 0 else "NOT_INUSE"
        connection.sendall(request(options.table + sequence, "Custom:timed%d" % (sequence % 10), state))
        answer = json.loads(reader.readline())
        if not answer.get("ok"):
            raise SystemExit("set failed: %s" % answer)
        if answer["result"].get("persistence") == "not_persisted":
            not_persisted += 1
    elapsed = time.monotonic() - started
    # Let the daemon finish writing what the timed sets changed before reading its CPU time.
    time.sleep(1.0)
    cpu = cpu_seconds() - cpu_before
    written = written_bytes() - written_before
    print("table %d devices: %d sets in %.2f s = %.0f sets/s (one connection, one request at a time)%s%s" % (
        options.table, options.count, elapsed, options.count / elapsed,
        "; daemon CPU %.0f ms and %.0f bytes written to disk per 1000 sets" % (
            cpu * 1000 * 1000 / options.count, written * 1000 / options.count) if options.pid else "",
        "; %d answered not_persisted" % not_persisted if not_persisted else ""))


if __name__ == "__main__":
    main()
