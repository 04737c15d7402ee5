#!/bin/bash
# asterisk-bench.sh - three real Asterisk servers sharing device state, through corosync +
# res_corosync (the incumbent) and through devclusterd + res_devcluster, back to back in one run,
# measured through AMI as a PBX administrator sees it. Needs root (network namespaces).
#
# usage: scripts/asterisk-bench.sh [--count N] [--burst N] [--purge-trials N] [--out FILE]
#   --count N         one-at-a-time changes per repetition (default 300; a multiple of 100, so that
#                     every repetition starts from the same states)
#   --reps N          repetitions of the latency and burst measurements (default 3)
#   --burst N         changes in the burst (default 2000)
#   --purge-trials N  kill -9 trials per stack, and link-down trials (default 3)
#   --out FILE        JSON lines (default .build-bench/asterisk-STAMP/results.jsonl); a summary goes to stdout
#
# Per stack: `asterisk-testbed.sh up 3 [--incumbent]`, then
#   1. Asterisk's own limit: ../shared/bench/asterisk/ami_devstate_bench.py with server 1 watching itself;
#   2. the cluster: the same script, set on server 1, DeviceStateChange timed on servers 2 and 3
#      (latency p50/p99 one change at a time; burst changes/s until both have seen all);
#   3. (run first) kill -9 of server 1 (Asterisk and its daemon) while it alone holds Custom:purgeK INUSE: the
#      time until server 2 raises DeviceStateChange for it (what hints, panels and phones follow)
#      and until DEVICE_STATE() there stops reading INUSE (the cache), each bounded by 30 s;
#   4. a lost host: server 1's link cut (ip link set eth0 down in its namespace), same timings.
# Then devcluster-bench's daemon path: `latency` (a plain ring event) and `devstate` (devstate_set on
# one node, the device push on another), 3 nodes, both at 200 per second, same run.
# scripts/asterisk-bench-report.py RESULTS --settings TOKEN_MS CONSENSUS_MS --out BENCHMARKS.md
# turns the results into BENCHMARKS.md's "Asterisk servers side by side" section.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
COUNT=300; BURST=2000; TRIALS=3; REPS=3; OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --count) COUNT=$2; shift 2;;
    --burst) BURST=$2; shift 2;;
    --purge-trials) TRIALS=$2; shift 2;;
    --reps) REPS=$2; shift 2;;
    --out) OUT=$2; shift 2;;
    *) sed -n '2,22p' "$0"; exit 2;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "asterisk-bench.sh: must run as root (network namespaces)" >&2; exit 1; }
AMIBENCH=${AMI_BENCH:-$ROOT/../shared/bench/asterisk/ami_devstate_bench.py}
[ -r "$AMIBENCH" ] || { echo "asterisk-bench.sh: $AMIBENCH not found (set AMI_BENCH)" >&2; exit 1; }
STAMP=$(date +%Y%m%d-%H%M%S)
WORK=$ROOT/.build-bench/asterisk-$STAMP
mkdir -p "$WORK"
OUT=${OUT:-$WORK/results.jsonl}
LOG=$WORK/log.txt
: > "$OUT"
TB="$ROOT/scripts/asterisk-testbed.sh"
PROBE="$ROOT/scripts/ami-probe.py"
echo "work dir: $WORK" | tee -a "$LOG"

cleanup() { timeout 120 bash "$TB" down >>"$LOG" 2>&1; true; }
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

# Builds: Asterisk and the module (cached), the release daemon and the benchmark.
cd "$ROOT"
timeout 1800 bash scripts/asterisk-build.sh >>"$LOG" 2>&1 || { echo "asterisk-build.sh failed (see $LOG)"; exit 1; }
timeout 1800 swift build -c release --product devclusterd >>"$LOG" 2>&1 || { echo "release build of devclusterd failed"; exit 1; }
timeout 1800 swift build -c release --product devcluster-bench >>"$LOG" 2>&1 || { echo "release build of devcluster-bench failed"; exit 1; }
BIN=$(swift build -c release --show-bin-path)
export DEVCLUSTERD=$BIN/devclusterd

emit() { echo "$1" | tee -a "$OUT"; }
CPU_BURST=5000
# {"asterisk1": seconds, "devclusterd1": seconds, ...}: CPU (user + system) of each server's processes.
cpu_snapshot() {
  timeout 20 bash "$TB" status 2>/dev/null | python3 -c '
import json, os, re, sys
ticks = os.sysconf("SC_CLK_TCK"); out = {}
for line in sys.stdin:
    m = re.match(r"server(\d+) ", line)
    if not m: continue
    for name, pid in re.findall(r"(\w+)=(\d+):alive", line):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            out[f"{name}{m.group(1)}"] = (int(fields[11]) + int(fields[12])) / ticks
        except OSError:
            pass
print(json.dumps(out))'
}
now() { python3 -c 'import time; print(f"{time.time():.6f}")'; }

# One purge trial: $1 stack, $2 kind (kill|link), $3 trial number.
purge_trial() {
  local stack=$1 kind=$2 k=$3 device="Custom:purge$2$3" t0 probe_out poll_out
  timeout 20 bash "$TB" rx 1 "devstate change $device INUSE" >>"$LOG" 2>&1
  # Seen on server 2 before the fault.
  local seen=no
  for _ in $(seq 1 100); do
    if timeout 10 bash "$TB" rx 2 "dialplan eval function DEVICE_STATE($device)" 2>/dev/null | grep -q "Result: INUSE"; then seen=yes; break; fi
    sleep 0.05
  done
  [ "$seen" = yes ] || { emit "{\"stack\":\"$stack\",\"metric\":\"purge_$kind\",\"trial\":$k,\"error\":\"$device never reached server 2\"}"; return; }
  probe_out=$WORK/probe-$stack-$kind-$k.json
  # The AMI listener on server 2 logs in first (it waits up to 30 s for the event).
  timeout 40 bash "$TB" exec 2 python3 "$PROBE" --expect 10.214.0.2 DeviceStateChange "Device=$device" --timeout 30 \
      > "$probe_out" 2>>"$LOG" &
  local probe_pid=$!
  sleep 1
  # The DEVICE_STATE() poller on server 2 (the cache), every 20 ms for 30 s at most.
  poll_out=$WORK/poll-$stack-$kind-$k.txt
  ( for _ in $(seq 1 1500); do
      if ! timeout 5 bash "$TB" rx 2 "dialplan eval function DEVICE_STATE($device)" 2>/dev/null | grep -q "Result: INUSE"; then
        now; exit 0
      fi
      sleep 0.02
    done; echo none ) > "$poll_out" &
  local poll_pid=$! fault_out
  # The fault's moment: when the kill -9 or the link-down returned, stamped by the shell that ran
  # it (not before starting the test-bed script, which takes some 25 ms to get there).
  if [ "$kind" = kill ]; then
    fault_out=$(timeout 20 bash "$TB" kill 1 2>>"$LOG")
  else
    fault_out=$(timeout 20 bash "$TB" exec 1 bash -c 'ip link set eth0 down && echo "link down at ${EPOCHREALTIME/,/.}"' 2>>"$LOG")
  fi
  echo "$fault_out" >>"$LOG"
  t0=$(sed -n 's/.* at \([0-9.]*\)$/\1/p' <<<"$fault_out" | tail -1)
  [ -n "$t0" ] || { emit "{\"stack\":\"$stack\",\"metric\":\"purge_$kind\",\"trial\":$k,\"error\":\"no fault time in: $fault_out\"}"; wait "$probe_pid"; wait "$poll_pid"; return; }
  wait "$probe_pid"; wait "$poll_pid"
  python3 - "$stack" "$kind" "$k" "$t0" "$probe_out" "$poll_out" <<'EOF' | tee -a "$OUT"
import json, sys
stack, kind, k, t0, probe_path, poll_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
try:
    probe = json.loads(open(probe_path).read().strip().splitlines()[-1])
except Exception as error:
    probe = {"error": str(error)}
events = probe.get("events") or []
event_s = round(events[0]["at"] - t0, 3) if events and "at" in events[0] else None
poll = open(poll_path).read().strip()
cache_s = round(float(poll) - t0, 3) if poll and poll != "none" else None
state = events[0]["event"].get("State") if events else None
print(json.dumps({"stack": stack, "metric": f"purge_{kind}", "trial": k, "event_s": event_s, "event_state": state,
                  "cache_s": cache_s, "bound_s": 30}))
EOF
  # Server 1 back for the next trial.
  if [ "$kind" = link ]; then timeout 20 bash "$TB" exec 1 ip link set eth0 up >>"$LOG" 2>&1
    timeout 20 bash "$TB" exec 1 ip route add 224.0.0.0/4 dev eth0 >>"$LOG" 2>&1
    # The daemons notice the merge by themselves; restart server 1 to start the next trial clean.
    timeout 20 bash "$TB" kill 1 >>"$LOG" 2>&1
  fi
  timeout 180 bash "$TB" start 1 >>"$LOG" 2>&1 || emit "{\"stack\":\"$stack\",\"error\":\"server 1 did not restart after $kind trial $k\"}"
}

run_stack() { # $1 = incumbent | devcluster
  local stack=$1 flag=""
  [ "$stack" = incumbent ] && flag=--incumbent
  echo "== $stack: up 3" | tee -a "$LOG"
  if ! timeout 300 bash "$TB" up 3 $flag >>"$LOG" 2>&1; then
    emit "{\"stack\":\"$stack\",\"error\":\"asterisk-testbed.sh up 3 $flag failed\"}"; timeout 120 bash "$TB" down >>"$LOG" 2>&1; return
  fi
  if [ "$stack" = devcluster ]; then
    timeout 20 bash "$TB" dc 1 settings --json 2>>"$LOG" | sed 's/^{/{"stack":"devcluster","metric":"settings",/' | tee -a "$OUT"
  fi
  # The purge trials first, while server 1 holds only the trial devices (the bursts below leave it
  # thousands, and clearing each costs Asterisk some 90 us: see BENCHMARKS.md).
  for k in $(seq 1 "$TRIALS"); do echo "== $stack: kill -9 trial $k" | tee -a "$LOG"; purge_trial "$stack" kill "$k"; done
  for k in $(seq 1 "$TRIALS"); do echo "== $stack: link-down trial $k" | tee -a "$LOG"; purge_trial "$stack" link "$k"; done
  local rep
  for rep in $(seq 1 "$REPS"); do
    # Alternating, so that drift in the machine's speed falls on both measurements alike.
    echo "== $stack: Asterisk's own limit, repetition $rep" | tee -a "$LOG"
    timeout 300 bash "$TB" exec 1 python3 "$AMIBENCH" --set 10.214.0.1 --watch 10.214.0.1 --count "$COUNT" --burst "$BURST" 2>>"$LOG" \
      | sed "s/^{/{\"stack\":\"$stack\",\"watch\":\"self\",\"rep\":$rep,/" | tee -a "$OUT"
    echo "== $stack: the cluster, repetition $rep" | tee -a "$LOG"
    timeout 300 bash "$TB" exec 1 python3 "$AMIBENCH" --set 10.214.0.1 --watch 10.214.0.2 10.214.0.3 --count "$COUNT" --burst "$BURST" 2>>"$LOG" \
      | sed "s/^{/{\"stack\":\"$stack\",\"watch\":\"others\",\"rep\":$rep,/" | tee -a "$OUT"
  done
  echo "== $stack: where the CPU goes in a burst" | tee -a "$LOG"
  local before after
  before=$(cpu_snapshot)
  timeout 300 bash "$TB" exec 1 python3 "$AMIBENCH" --set 10.214.0.1 --watch 10.214.0.2 10.214.0.3 --count 1 --burst "$CPU_BURST" 2>>"$LOG" \
    | sed "s/^{/{\"stack\":\"$stack\",\"watch\":\"others-cpu\",/" | tee -a "$OUT"
  after=$(cpu_snapshot)
  python3 - "$stack" "$CPU_BURST" "$before" "$after" <<'PY' | tee -a "$OUT"
import json, sys
stack, changes, before, after = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
cpu = {name: round(after[name] - before.get(name, 0.0), 3) for name in after}
print(json.dumps({"stack": stack, "metric": "burst_cpu_s", "changes": changes, "cpu_s": cpu,
                  "us_per_change": {name: round(seconds / changes * 1e6, 1) for name, seconds in cpu.items()}}))
PY
  timeout 120 bash "$TB" down >>"$LOG" 2>&1
}

run_stack incumbent
run_stack devcluster

echo "== devcluster-bench: plain event and devstate path" | tee -a "$LOG"
# Both at the same rate: an idle ring holds the token between changes, so the rate sets the latency.
timeout 600 "$BIN/devcluster-bench" latency --nodes 3 --reps 3 --rate 200 --duration 5 --out "$WORK/daemon.jsonl" >>"$LOG" 2>&1
timeout 600 "$BIN/devcluster-bench" devstate --nodes 3 --reps 3 --rate 200 --duration 5 --out "$WORK/daemon.jsonl" >>"$LOG" 2>&1
sed 's/^{/{"stack":"devcluster-daemon",/' "$WORK/daemon.jsonl" 2>/dev/null | tee -a "$OUT"
echo "results: $OUT"
echo "report:  python3 scripts/asterisk-bench-report.py $OUT --commit $(git -C "$ROOT" rev-parse --short HEAD) --out BENCHMARKS.md"
