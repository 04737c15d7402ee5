#!/usr/bin/env bash
# One-node daemon in a fresh temporary directory, filled with TABLE devices, then COUNT
# devstate_set requests timed through one control connection (scripts/devstate-set-rate.py):
# the rate, and the daemon's CPU time and bytes written per 1,000 sets.
# Usage: scripts/devstate-set-rate.sh [DEVCLUSTERD] [TABLE] [COUNT]
#   e.g. scripts/devstate-set-rate.sh .build/debug/devclusterd 10000 3000
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
binary=${1:-$here/../.build/debug/devclusterd}
table=${2:-10000}
count=${3:-3000}
directory=$(mktemp -d /tmp/devstate-set-rate.XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$directory"
}
trap cleanup EXIT
cat > "$directory/devcluster.conf" <<CONF
[totem]
cluster_name = rate
transport = udpu
mcastport = $((20000 + RANDOM % 30000))
[node]
nodeid = 1
name = one
addr = 127.0.0.1
[options]
nodeid = 1
control_socket = $directory/run/devclusterd.sock
state_dir = $directory/state
entity_id = 02:00:00:00:00:01
max_devices = 1000000
[device_state]
type = event_channel
publish_event = device_state
subscribe_event = device_state
CONF
"$binary" --foreground --config "$directory/devcluster.conf" > "$directory/daemon.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -S "$directory/run/devclusterd.sock" ] && break; sleep 0.1; done
sleep 1
python3 "$here/devstate-set-rate.py" --socket "$directory/run/devclusterd.sock" --pid "$pid" --table "$table" --count "$count"
