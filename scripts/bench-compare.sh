#!/bin/bash
# bench-compare.sh - corosync 3 and devcluster on this machine, back to back, same matrix;
# writes BENCHMARKS.md at the project root. Needs root (network namespaces), apt-get for corosync.
#
# usage: scripts/bench-compare.sh [--reps N] [--duration S] [--quick]
#   --quick: 1 rep, 3 s, 3 nodes only (checks that the script works).
# Environment: COROSYNC_HARNESS=DIR (default: ../shared/bench/corosync relative to the project root).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=3; DUR=5; NODES="3 5"
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS=$2; shift 2;;
    --duration) DUR=$2; shift 2;;
    --quick) REPS=1; DUR=3; NODES="3"; shift;;
    *) sed -n '2,9p' "$0"; exit 2;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench-compare.sh: must run as root (network namespaces)" >&2; exit 1; }
HARNESS_SRC=${COROSYNC_HARNESS:-$ROOT/../shared/bench/corosync}
[ -d "$HARNESS_SRC" ] || { echo "bench-compare.sh: corosync harness not found at $HARNESS_SRC (set COROSYNC_HARNESS)" >&2; exit 1; }
STAMP=$(date +%Y%m%d-%H%M%S)
WORK=$ROOT/.build-bench/$STAMP
CORO=$WORK/corosync
OURS=$WORK/devcluster.jsonl
LOG=$WORK/log.txt
mkdir -p "$WORK"
cp -r "$HARNESS_SRC" "$CORO"; chmod -R u+w "$CORO"; rm -rf "$CORO/run" "$CORO/out"
echo "work dir: $WORK" | tee -a "$LOG"

cleanup() {
  # corosync harness: its own down (stops its daemons by PID file, deletes cgb-* namespaces).
  [ -e "$CORO/run/cluster.state" ] && (cd "$CORO" && timeout 60 ./corosync-cluster.sh down >>"$LOG" 2>&1)
  true
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

# 1. Builds.
cd "$ROOT"
timeout 1800 swift build -c release --product devclusterd >>"$LOG" 2>&1 || { echo "build of devclusterd failed (see $LOG)"; exit 1; }
timeout 1800 swift build -c release --product devcluster-bench >>"$LOG" 2>&1 || { echo "build of devcluster-bench failed (see $LOG)"; exit 1; }
BIN=$(swift build -c release --show-bin-path)
BENCH=$BIN/devcluster-bench

# 2. corosync and cpgbench.
if ! command -v corosync >/dev/null || [ ! -e /usr/include/corosync/cpg.h ]; then
  timeout 600 apt-get install -y corosync libcpg-dev >>"$LOG" 2>&1 || { echo "apt-get install corosync libcpg-dev failed"; exit 1; }
fi
# Debian starts corosync as a service on install; the harness runs its own instances only.
(cd "$CORO" && gcc -O2 -Wall -o cpgbench cpgbench.c -lcpg) || { echo "cpgbench build failed"; exit 1; }

# 3. corosync matrix.
CMDS=$WORK/commands.txt
: > "$CMDS"
for n in $NODES; do
  echo "corosync-cluster.sh up $n udp; bench.sh udp$n $REPS $DUR; failover.sh fo-udp$n $REPS kill; corosync-cluster.sh down" >> "$CMDS"
  # A cluster that does not form would make bench.sh wait 60 s per trial for nothing: try a
  # second time from scratch, then skip this size and say so in the report.
  formed=no
  for attempt in 1 2; do
    if (cd "$CORO" && timeout 120 ./corosync-cluster.sh up "$n" udp) 2>&1 | tee -a "$LOG"; [ "${PIPESTATUS[0]}" = 0 ]; then
      formed=yes; break
    fi
    echo "corosync: $n-node cluster did not form (attempt $attempt)" | tee -a "$LOG"
    (cd "$CORO" && timeout 60 ./corosync-cluster.sh down) >>"$LOG" 2>&1
  done
  if [ "$formed" = no ]; then
    echo "note: corosync's $n-node cluster did not form in two attempts (corosync-cluster.sh up $n udp); no corosync $n-node figures in this run" >> "$WORK/notes.txt"
    continue
  fi
  (cd "$CORO" && timeout $(( REPS * 8 * (DUR + 70) + 60 )) ./bench.sh "udp$n" "$REPS" "$DUR") 2>&1 | tee -a "$LOG"
  (cd "$CORO" && timeout $(( REPS * 200 + 60 )) ./failover.sh "fo-udp$n" "$REPS" kill) 2>&1 | tee -a "$LOG"
  (cd "$CORO" && timeout 60 ./corosync-cluster.sh down) 2>&1 | tee -a "$LOG"
done

# 4. devcluster, same matrix (each invocation builds and tears down its own cluster).
run() { # args...
  echo "devcluster-bench $* --reps $REPS --out $OURS" >> "$CMDS"
  timeout $(( REPS * (DUR + 120) + 120 )) "$BENCH" "$@" --reps "$REPS" --out "$OURS" >/dev/null 2>>"$LOG" \
    || echo "WARNING: devcluster-bench $* failed (see $LOG)" | tee -a "$LOG"
}
for n in $NODES; do
  for size in 64 1024 8192; do
    run throughput --nodes "$n" --size "$size" --senders 1 --duration "$DUR"
    run throughput --nodes "$n" --size "$size" --senders "$n" --duration "$DUR"
  done
  for size in 64 1024; do run latency --nodes "$n" --size "$size" --rate 1000 --duration "$DUR"; done
  run failover --nodes "$n"
  run idle --nodes "$n"
  run devstate --nodes "$n" --duration "$DUR"
  run client --nodes "$n" --size 64 --duration "$DUR"
done

# 4b. The one-sender five-node shares again, each stack's 3- and 5-node runs minutes apart at
# most (the matrix runs them up to a quarter of an hour apart, and this VM's speed drifts by
# 15% in that time): scripts/ratio-check.sh, whose figures the one-sender share targets are
# judged on.
PAIRED=""
case " $NODES " in
  *" 5 "*)
    echo "ratio-check.sh --reps $REPS --duration $DUR" >> "$CMDS"
    timeout $(( REPS * 4 * (DUR + 130) + 600 )) bash "$ROOT/scripts/ratio-check.sh" --reps "$REPS" --duration "$DUR" \
        --out "$WORK/paired.txt" 2>&1 | tee -a "$LOG"
    if [ "${PIPESTATUS[0]}" = 0 ] && [ -s "$WORK/paired.txt" ]; then
      PAIRED="--paired $WORK/paired.txt"
    else
      echo "note: the paired five-node shares (scripts/ratio-check.sh) failed; the one-sender share targets are judged on the matrix" >> "$WORK/notes.txt"
    fi;;
esac

# 5. Report.
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  echo "kernel: $(uname -r)"
  echo "corosync: $(corosync -v 2>/dev/null | head -1)"
  echo "swift: $(swift --version 2>&1 | head -1)"
  echo "devcluster commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"
  echo "reps: $REPS, duration: $DUR s, nodes: $NODES"
  [ -e "$WORK/notes.txt" ] && cat "$WORK/notes.txt"
} > "$WORK/machine.txt"
python3 "$ROOT/scripts/bench-report.py" --ours "$OURS" --corosync "$CORO" --machine "$WORK/machine.txt" \
  --commands "$CMDS" $PAIRED --out "$ROOT/BENCHMARKS.md"
echo "raw data: $WORK"
leftover=$(ip netns list 2>/dev/null | grep -E '^(cgb|dcb)-' || true)
[ -z "$leftover" ] || echo "WARNING: namespaces left behind: $leftover"
