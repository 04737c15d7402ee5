#!/bin/bash
# ratio-check.sh - the five-node share of the three-node one-sender throughput, corosync 3 and
# devcluster, each measured several times right after the other (the figures of
# Benchmarks/ANALYSIS.md "The five-node ratios", paired re-checks). Needs root, corosync and
# libcpg-dev (scripts/bench-compare.sh installs them), and a release build of devcluster.
#
# usage: scripts/ratio-check.sh [--reps N] [--duration S] [--out FILE]
#   --out: where the raw figures go (one "STACK NODES SIZE MSGS_PER_S" line per run; default in
#   the work directory). bench-compare.sh runs this script and reports from that file.
# Environment: COROSYNC_HARNESS=DIR (default: ../shared/bench/corosync relative to the project root).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=4; DUR=5; OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS=$2; shift 2;;
    --duration) DUR=$2; shift 2;;
    --out) OUT=$2; shift 2;;
    *) sed -n '2,11p' "$0"; exit 2;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "ratio-check.sh: must run as root (network namespaces)" >&2; exit 1; }
HARNESS_SRC=${COROSYNC_HARNESS:-$ROOT/../shared/bench/corosync}
[ -d "$HARNESS_SRC" ] || { echo "ratio-check.sh: corosync harness not found at $HARNESS_SRC" >&2; exit 1; }
BENCH=$(cd "$ROOT" && swift build -c release --show-bin-path)/devcluster-bench
[ -x "$BENCH" ] || { echo "ratio-check.sh: build first: swift build -c release" >&2; exit 1; }
WORK=$ROOT/.build-bench/ratio-$(date +%Y%m%d-%H%M%S)
CORO=$WORK/corosync
mkdir -p "$WORK"
cp -r "$HARNESS_SRC" "$CORO"; chmod -R u+w "$CORO"; rm -rf "$CORO/run" "$CORO/out"
(cd "$CORO" && gcc -O2 -Wall -o cpgbench cpgbench.c -lcpg) || { echo "cpgbench build failed"; exit 1; }
RESULTS=${OUT:-$WORK/results.txt}
: > "$RESULTS"
cleanup() {
  [ -e "$CORO/run/cluster.state" ] && (cd "$CORO" && timeout 60 ./corosync-cluster.sh down >/dev/null 2>&1)
  true
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

# corosync: one sender, the others receive; the figure is the median over the nodes.
for n in 3 5; do
  # corosync's cluster sometimes does not form: a second try from scratch, as bench-compare.sh.
  formed=no
  for attempt in 1 2; do
    if (cd "$CORO" && timeout 120 ./corosync-cluster.sh up "$n" udp >"$WORK/up.txt" 2>&1); then formed=yes; break; fi
    echo "corosync: $n-node cluster did not form (attempt $attempt)"
    (cd "$CORO" && timeout 60 ./corosync-cluster.sh down >/dev/null 2>&1)
  done
  [ "$formed" = yes ] || exit 1
  for rep in $(seq 1 "$REPS"); do
    for size in 1024 64; do
      pids=""
      for i in $(seq 1 "$n"); do
        mode=recv; [ "$i" = 1 ] && mode=send
        (cd "$CORO" && timeout $((DUR + 60)) ip netns exec "cgb-n$i" ./cpgbench -g "ratio$size$rep" -m "$mode" -s "$size" \
            -d "$DUR" -r 0 -k "$n" > "$WORK/n$i.txt" 2>&1) &
        pids="$pids $!"
      done
      for p in $pids; do wait "$p"; done
      value=$(grep -h -o 'deliv_rate=[0-9]*' "$WORK"/n*.txt | cut -d= -f2 | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
      echo "corosync $n $size ${value:-0}" | tee -a "$RESULTS"
      rm -f "$WORK"/n*.txt
      sleep 1
    done
  done
  (cd "$CORO" && timeout 60 ./corosync-cluster.sh down >/dev/null 2>&1)
done

# devcluster: three and five nodes alternating (each run builds and removes its own cluster).
for rep in $(seq 1 "$REPS"); do
  for size in 1024 64; do
    for n in 3 5; do
      value=$(timeout $((DUR + 120)) "$BENCH" throughput --nodes "$n" --size "$size" --senders 1 --duration "$DUR" --reps 1 2>/dev/null \
          | grep -o '"delivered_msgs_per_s","value":[0-9.]*' | cut -d: -f2)
      echo "devcluster $n $size ${value:-0}" | tee -a "$RESULTS"
    done
  done
done

python3 - "$RESULTS" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    stack, nodes, size, value = line.split()
    runs[(stack, int(size), int(nodes))].append(float(value))
for stack in ("corosync", "devcluster"):
    for size in (64, 1024):
        three, five = runs[(stack, size, 3)], runs[(stack, size, 5)]
        if not three or not five or statistics.median(three) == 0:
            print(f"{stack} {size} B: no figures")
            continue
        share = statistics.median(five) / statistics.median(three)
        print(f"{stack:10s} {size:5d} B one sender, msg/s: 3 nodes {[round(v) for v in three]}, "
              f"5 nodes {[round(v) for v in five]}; 5/3 of the medians {share:.3f}")
PY
echo "raw figures: $RESULTS"
