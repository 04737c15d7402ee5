#!/bin/bash
# cpu-per-message.sh - user and system CPU per delivered message of each daemon and of the
# benchmark process, during a one-sender throughput run (the per-process figures of
# Benchmarks/ANALYSIS.md "Where the time goes"). Needs root and a release build.
#
# usage: scripts/cpu-per-message.sh [NODES=5] [SIZE=1024]
#        DAEMON=PATH scripts/cpu-per-message.sh ...   (another build's devclusterd, for an A/B)
# Reads /proc/PID/stat (utime, stime) of every process 3.5 s into an 8 s run and again 4 s later.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NODES=${1:-5}; SIZE=${2:-1024}
[ "$(id -u)" = 0 ] || { echo "cpu-per-message.sh: must run as root (network namespaces)" >&2; exit 1; }
BENCH=$(cd "$ROOT" && swift build -c release --show-bin-path)/devcluster-bench
[ -x "$BENCH" ] || { echo "cpu-per-message.sh: build first: swift build -c release" >&2; exit 1; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
DAEMON_ARGS=()
[ -n "${DAEMON:-}" ] && DAEMON_ARGS=(--daemon "$DAEMON")
"$BENCH" throughput --nodes "$NODES" --size "$SIZE" --senders 1 --duration 8 --reps 1 ${DAEMON_ARGS[@]+"${DAEMON_ARGS[@]}"} > "$OUT/run.json" 2>/dev/null &
RUN=$!
sleep 3.5
# The daemons of this run are the children of the benchmark process (started in namespaces).
PIDS="$RUN $(pgrep -P "$RUN" | tr '\n' ' ')"
TICKS=$(getconf CLK_TCK)
for pid in $PIDS; do echo "$pid $(awk '{print $14, $15}' "/proc/$pid/stat" 2>/dev/null)"; done > "$OUT/before"
sleep 4
for pid in $PIDS; do
  echo "$pid $(awk '{print $14, $15}' "/proc/$pid/stat" 2>/dev/null) $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -o 'n[0-9]*/devcluster.conf' || echo bench)"
done > "$OUT/after"
wait "$RUN"
RATE=$(grep -o '"delivered_msgs_per_s","value":[0-9.]*' "$OUT/run.json" | head -1 | cut -d: -f2)
python3 - "$OUT/before" "$OUT/after" "${RATE:-0}" "$TICKS" <<'PY'
import sys
before = {l.split()[0]: l.split()[1:3] for l in open(sys.argv[1]) if len(l.split()) >= 3}
rate, ticks = float(sys.argv[3]), float(sys.argv[4])
if rate == 0:
    sys.exit("no delivered_msgs_per_s figure from the run")
print(f"delivered {rate:,.0f} msg/s")
for line in open(sys.argv[2]):
    fields = line.split()
    if len(fields) < 4 or fields[0] not in before:
        continue
    user = (int(fields[1]) - int(before[fields[0]][0])) / ticks / 4
    system = (int(fields[2]) - int(before[fields[0]][1])) / ticks / 4
    name = fields[3].replace("/devcluster.conf", "")
    print(f"{name:6s} user {user * 1e6 / rate:5.2f} us/msg  sys {system * 1e6 / rate:5.2f} us/msg  ({(user + system) * 100:3.0f}% of a core)")
PY
